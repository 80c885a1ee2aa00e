"""The [ledger] configuration section."""

from __future__ import annotations

import pytest

from ledger.errors import FormatError
from ledger.settings import LedgerSettings, default_origin


def test_defaults():
    s = LedgerSettings.from_mapping({}, public_url="https://oem-a.example:8443")
    assert s.origin == "oem-a.example:8443/ledger"
    assert s.backend == "embedded" and s.ephemeral
    assert s.policy.confirmations == 2


def test_rpc_settings():
    s = LedgerSettings.from_mapping(
        {
            "backend": "rpc",
            "rpc_url": "http://127.0.0.1:8545",
            "chain_id": 31337,
            "contract": "0x" + "ab" * 20,
            "anchor_max_records": 50,
            "anchor_interval_seconds": 5,
        },
        public_url="https://x.example",
    )
    assert not s.ephemeral and s.policy.max_records == 50 and s.policy.interval_seconds == 5.0


@pytest.mark.parametrize(
    "values",
    [
        {"backend": "ipfs"},
        {"backend": "rpc"},
        {"backend": "rpc", "rpc_url": "ftp://x"},
        {"contract": "0x12"},
        {"chain_id": 0},
        {"confirmations": -1},
        {"gas_limit": "lots"},
        {"origin": "has space"},
        {"colour": "blue"},
    ],
)
def test_bad_settings(values):
    with pytest.raises(FormatError):
        LedgerSettings.from_mapping(values, public_url="https://x.example")


def test_default_origin_without_scheme():
    assert default_origin("node.example") == "node.example/ledger"
