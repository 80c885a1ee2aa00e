"""Fixtures for the ledger tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from ledger import tables as ledger_tables
from ledger.checkpoint import Ed25519Signer
from ledger.log import Log

ORIGIN = "ledger.test.example/oem-a"


class FakeClock:
    """A deterministic clock that advances one second per call."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self._ticks))


def agreement(i: int) -> dict:
    return {
        "agreementId": f"agr-{i}",
        "assetId": f"asset-{i % 7}",
        "providerId": "BPNL000000000001",
        "consumerId": "BPNL000000000002",
        "signedAt": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def engine(db_url: str):
    """Engine with only the ledger's tables: the ledger is a library and needs no others."""
    from node.db import make_engine

    eng = make_engine(db_url)
    ledger_tables.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer.from_seed(bytes(range(32)))


@pytest.fixture
def log(engine) -> Log:
    with engine.begin() as conn:
        return Log.open(conn, ORIGIN, clock=FakeClock())


@pytest.fixture
def anvil():
    """A real anvil node on 127.0.0.1 (skips with a clear message when not installed)."""
    from tests.support.anvil import MISSING, anvil_path, running_anvil

    if anvil_path() is None:
        pytest.skip(MISSING)
    with running_anvil() as node:
        yield node
