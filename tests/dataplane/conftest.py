"""A provider's data plane over a migrated database: asset, agreement, STARTED transfer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from connectors.dataplane.service import DataPlane, build_dataplane
from connectors.dataplane.tokens import Grant
from connectors.dataplane.web import DATAFLOW_EXTENSION, DATAPLANE_EXTENSION, make_blueprint
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.definitions import Asset, Classification
from connectors.dsp.store import ConnectorStore
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import Role, TransferState
from connectors.http.problem import register_error_handlers
from node.keystore import KeyStore

PROVIDER = "did:web:supplier.example"
CONSUMER = "did:web:oem.example"
T0 = 1_780_000_000.0  # 2026-05-28


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def policy(*constraints: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"action": "use"}
    if constraints:
        rule["constraint"] = list(constraints)
    return {"@type": "Agreement", "permission": [rule], **(extra or {})}


@dataclass
class World:
    engine: Any
    store: ConnectorStore
    keys: KeyStore
    clock: Clock
    plane: DataPlane
    app: Flask
    tmp: Path
    made: list[str] = field(default_factory=list)

    def asset(self, data_address: dict[str, Any], *, classification: str = "general",
              home_region: str | None = "CN") -> str:
        asset_id = f"urn:asset:{uuid.uuid4().hex[:8]}"
        with self.store.transaction() as tx:
            tx.create_asset(Asset(id=asset_id, data_address=data_address,
                                  classification=Classification(classification),
                                  home_region=home_region))
        return asset_id

    def transfer(self, asset_id: str, pol: dict[str, Any] | None = None, *,
                 fmt: str = "HttpData-PULL", data_address: dict[str, Any] | None = None,
                 claims: dict[str, Any] | None = None,
                 state: TransferState = TransferState.STARTED) -> tuple[ContractAgreement,
                                                                       TransferProcessEntity]:
        agreement = ContractAgreement(
            id=f"urn:agreement:{uuid.uuid4().hex[:8]}", negotiation_id="urn:neg:1",
            provider_id=PROVIDER, consumer_id=CONSUMER, asset_id=asset_id,
            policy={**(pol or policy()), "target": asset_id}, signed_at=self.clock.dt(),
        )
        pid = f"urn:uuid:{uuid.uuid4()}"
        entity = TransferProcessEntity(
            id=pid, role=Role.PROVIDER, state=state, counter_party_id=CONSUMER,
            counter_party_address="https://oem.example/dsp", agreement_id=agreement.id,
            format=fmt, created_at=self.clock.dt(), updated_at=self.clock.dt(),
            consumer_pid=f"urn:uuid:{uuid.uuid4()}", provider_pid=pid, dataset_id=asset_id,
            data_address=data_address,
            extra={"claims": claims if claims is not None else {"region": "CN"}},
        )
        with self.store.transaction() as tx:
            tx.insert_agreement(agreement)
            entity = tx.save_transfer(entity)
        return agreement, entity

    def set_state(self, pid: str, state: TransferState) -> None:
        with self.store.transaction() as tx:
            e = tx.get_transfer(pid)
            assert e is not None
            tx.save_transfer(replace(e, state=state))

    def token(self, agreement: ContractAgreement, entity: TransferProcessEntity) -> str:
        edr = self.plane.flow.start(entity, agreement)
        assert edr is not None
        value = edr.property("authorization")
        assert value
        return value


@pytest.fixture
def world(migrated_engine, tmp_path: Path) -> Iterator[World]:
    keys = KeyStore.create(tmp_path / "home")
    clock = Clock()
    plane = build_dataplane(migrated_engine, keys, participant_id=PROVIDER,
                            public_url="http://127.0.0.1:9", clock=clock)
    app = Flask("dataplane-test")
    app.extensions[DATAPLANE_EXTENSION] = plane
    app.extensions[DATAFLOW_EXTENSION] = plane.flow
    app.register_blueprint(make_blueprint())
    register_error_handlers(app)
    store = ConnectorStore(migrated_engine, clock=clock.dt)
    yield World(migrated_engine, store, keys, clock, plane, app, tmp_path)
    plane.http.close()
    plane.engines.dispose()


@dataclass
class Served:
    url: str
    stop: Callable[[], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Any], Served]]:
    """Run a WSGI app on 127.0.0.1 (free port) in a thread."""
    servers = []

    def start(wsgi: Any) -> Served:
        server = make_server("127.0.0.1", 0, wsgi, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        return Served(f"http://127.0.0.1:{server.server_port}", server.shutdown)

    yield start
    for s in servers:
        s.shutdown()


def grant_of(agreement: ContractAgreement, entity: TransferProcessEntity) -> Grant:
    return Grant(agreement.id, entity.id, agreement.asset_id, CONSUMER)
