"""Builders shared by the node-level ledger tests: EPCIS documents, node homes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.config import NodeConfig
from node.home import InitResult, init_home


def epcis_document(count: int = 3, *, epc: str = "urn:epc:id:sgtin:4012345.011111.1001",
                   source: str | None = None, destination: str | None = None,
                   day: int = 1) -> dict[str, Any]:
    """A valid EPCISDocument with ``count`` ObjectEvents (fresh eventIDs) about ``epc``.

    ``source`` / ``destination`` (a participant DID or id) make those participants the
    parties of every event (``sourceList`` / ``destinationList`` of owning parties).
    """
    events = []
    for i in range(count):
        event: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventID": f"urn:uuid:{uuid.uuid4()}",
            "eventTime": f"2026-03-{day:02d}T{8 + i:02d}:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "epcList": [epc],
            "action": "OBSERVE",
            "bizStep": "shipping",
        }
        if source:
            event["sourceList"] = [{"type": "owning_party", "source": source}]
        if destination:
            event["destinationList"] = [{"type": "owning_party", "destination": destination}]
        events.append(event)
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T08:00:00Z",
        "epcisBody": {"eventList": events},
    }


@dataclass
class LedgerHome:
    path: Path
    result: InitResult

    def config(self, **env: str) -> NodeConfig:
        return NodeConfig.load(self.path,
                               env={f"AUTOSPACE_{k.upper()}": v for k, v in env.items()})


@pytest.fixture
def ledger_home(tmp_path: Path, db_url: str) -> LedgerHome:
    path = tmp_path / "node"
    result = init_home(path, participant_id="BPNL-OEM", name="OEM",
                       public_url="http://127.0.0.1:18282", database_url=db_url)
    return LedgerHome(path, result)
