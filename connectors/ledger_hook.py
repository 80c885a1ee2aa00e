"""Agreements and transfer events in the node's transparency log, atomically with the state.

A :class:`LedgerRecorder` is a :data:`connectors.dsp.store.ApplyHook`: the connector store
calls it inside the transaction of every applied protocol step. A new agreement becomes a
``contract-agreement`` record (record id = agreement id, with the SHA-256 of its RFC 8785
policy, so both parties log the same hash); each transfer state change becomes a
``transfer-event`` record (record id = ``<transfer id>#<version>``). If the append fails
the whole step rolls back: the ledger never misses a committed agreement.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from connectors.dsp.outcome import Outcome
from connectors.dsp.timestamps import format_xsd_datetime
from connectors.dsp.transfer import TransferProcessEntity
from ledger.records import canonical_bytes


def policy_hash(policy: dict[str, Any]) -> str:
    """SHA-256 (hex) of the RFC 8785 bytes of an agreement's policy."""
    return hashlib.sha256(canonical_bytes(policy)).hexdigest()


class LedgerRecorder:
    """Append agreement and transfer records to the log named ``origin``.

    Args:
        origin: the node's log origin (``[ledger] origin``, default ``<host>/ledger``).
        clock: the node clock (UTC datetimes), for the log's own timestamps.
    """

    def __init__(self, origin: str, *, clock: Callable[[], datetime]) -> None:
        from ledger.checkpoint import check_origin

        check_origin(origin)
        self.origin = origin
        self.clock = clock
        # log row id per database: looked up (or created) once, not in every protocol step
        self._log_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def __call__(self, conn: Connection, outcome: Outcome[Any], saved: Any) -> None:
        from ledger.log import Log
        from ledger.records import CONTRACT_AGREEMENT, TRANSFER_EVENT

        records: list[tuple[str, dict[str, Any], str]] = []
        a = outcome.agreement
        if a is not None:
            records.append((CONTRACT_AGREEMENT, {
                "agreementId": a.id, "assetId": a.asset_id, "providerId": a.provider_id,
                "consumerId": a.consumer_id, "signedAt": format_xsd_datetime(a.signed_at),
                "policyHash": policy_hash(a.policy),
            }, a.id))
        if isinstance(saved, TransferProcessEntity):
            records.append((TRANSFER_EVENT, {
                "transferId": saved.id, "agreementId": saved.agreement_id,
                "state": saved.state.value, "at": format_xsd_datetime(saved.updated_at),
                "transferType": saved.format,
            }, f"{saved.id}#{saved.version}"))
        if not records:
            return
        from ledger.log import NewRecord

        log_id = self._log_ids.get(conn.engine)
        if log_id is None:
            log = Log.open(conn, self.origin, clock=self.clock)
            # remembered only once the step commits: a rolled-back creation leaves no row
            event.listen(conn, "commit", lambda _c: self._log_ids.setdefault(
                conn.engine, log.log_id), once=True)
        else:
            log = Log(log_id, self.origin, clock=self.clock)
        log.append_many(conn, [NewRecord(t, r, i) for t, r, i in records])


def recorder_for(config: Any, clock: Callable[[], datetime]) -> LedgerRecorder | None:
    """The recorder for a node configuration (None when ``[connector] ledger = false``)."""
    section = config.section("connector")
    if section.get("ledger", True) in (False, "false", 0):
        return None
    from ledger.settings import LedgerSettings

    settings = LedgerSettings.from_mapping(config.section("ledger"), public_url=config.public_url)
    return LedgerRecorder(settings.origin, clock=clock)
