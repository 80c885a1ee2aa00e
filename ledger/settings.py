"""The ``[ledger]`` configuration section, parsed and checked by the ledger itself.

The node reads ``HOME/autospace.toml`` and hands this module the section as a mapping
(`NodeConfig.section("ledger")`); nothing here knows about the node.

Keys (all optional)::

    origin = "oem-a.example/ledger"   # default: host of public_url + "/ledger"
    backend = "embedded"              # or "rpc"
    rpc_url = "http://127.0.0.1:8545" # rpc backend only
    chain_id = 31337                  # rpc: refuse to anchor on any other chain
    contract = "0x..."                # rpc: LogAnchor address (`autospace ledger deploy`)
    anchor_interval_seconds = 300
    anchor_max_records = 10000
    confirmations = 2
    gas_limit = 120000
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ledger.anchor import AnchorPolicy
from ledger.checkpoint import check_origin
from ledger.errors import FormatError

BACKENDS = ("embedded", "rpc")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def default_origin(public_url: str) -> str:
    """``<host[:port]>/ledger`` from the node's public URL (C2SP origins look like this)."""
    netloc = urlsplit(public_url).netloc or public_url
    return f"{netloc}/ledger"


@dataclass(frozen=True)
class LedgerSettings:
    origin: str
    backend: str = "embedded"
    rpc_url: str | None = None
    chain_id: int | None = None
    contract: str | None = None
    policy: AnchorPolicy = field(default_factory=AnchorPolicy)

    @property
    def ephemeral(self) -> bool:
        """The embedded chain lives in the process memory: anchors vanish on restart."""
        return self.backend == "embedded"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, public_url: str) -> LedgerSettings:
        """Parse and validate the section; FormatError names the offending key."""
        known = {
            "origin",
            "backend",
            "rpc_url",
            "chain_id",
            "contract",
            "anchor_interval_seconds",
            "anchor_max_records",
            "confirmations",
            "gas_limit",
        }
        unknown = sorted(set(values) - known)
        if unknown:
            raise FormatError(
                "[ledger] has unknown keys",
                expected=", ".join(sorted(known)),
                found=", ".join(unknown),
            )
        origin = str(values.get("origin") or default_origin(public_url))
        check_origin(origin)
        backend = values.get("backend", "embedded")
        if backend not in BACKENDS:
            raise FormatError("[ledger] backend", expected=" or ".join(BACKENDS), found=backend)
        rpc_url = values.get("rpc_url")
        contract = values.get("contract")
        chain_id = values.get("chain_id")
        bad_url = not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://"))
        if backend == "rpc" and bad_url:
            raise FormatError(
                "[ledger] rpc_url must be an http(s) URL for the rpc backend", found=rpc_url
            )
        if contract is not None and (not isinstance(contract, str) or not _ADDRESS.match(contract)):
            raise FormatError("[ledger] contract must be a 0x address", found=contract)
        if chain_id is not None and (not isinstance(chain_id, int) or chain_id <= 0):
            raise FormatError("[ledger] chain_id must be a positive integer", found=chain_id)

        def positive(key: str, default: float, kind: type) -> Any:
            value = values.get(key, default)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise FormatError(f"[ledger] {key} must be a positive number", found=value)
            return kind(value)

        policy = AnchorPolicy(
            interval_seconds=positive("anchor_interval_seconds", 300.0, float),
            max_records=positive("anchor_max_records", 10_000, int),
            confirmations=positive("confirmations", 2, int),
            gas_limit=positive("gas_limit", 120_000, int),
        )
        return cls(origin, backend, rpc_url, chain_id, contract, policy)
