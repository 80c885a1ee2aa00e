"""The access log: every access (permitted or denied) with who, what, when, bytes and hash.

:class:`AccessRecorder` is the interface the data plane calls once per access, after the
last byte (or the refusal). :class:`SqlAccessRecorder` writes ``dataplane_access_log``;
with a ledger origin it also appends a ``data-use`` record to the node's transparency log
(``ledger.log.Log``) in the same transaction, so the row and its ledger entry commit
together; the ledger record carries the bytes sent and their SHA-256 (``contentHash``).

A permitted access that delivered no byte hands the recorder a ``release`` step (give the
reserved use back to the usage counter). It runs in the same transaction as the row and
the ledger entry, so a use is never given back without the record saying so; if it fails,
the use stays counted (fail closed) and the record says ``use_released`` false.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from connectors.dataplane.tables import access_log

log = logging.getLogger("autospace.dataplane")


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One access. ``sha256`` is the hex SHA-256 of exactly the bytes sent (None if none)."""

    at: datetime
    kind: str  # pull | push
    transfer_id: str | None
    agreement_id: str | None
    asset_id: str | None
    consumer_id: str | None
    purpose: str | None
    decision: str  # permit | deny
    status: str  # complete | aborted (cut while streaming) | failed (never opened) | denied
    bytes: int = 0  # bytes handed to the consumer
    sha256: str | None = None
    reason: str | None = None
    detail: str | None = None
    use_released: bool = False  # the counted use was given back (nothing was delivered)


#: Gives back a counted use inside the recorder's transaction; True if one was given back.
Release = Callable[[Connection], bool]


class AccessRecorder(Protocol):
    """Where accesses are recorded (table, ledger); must not raise into the data path.

    ``release``, when given, gives the access's use back in the same transaction as the
    record; the record's ``use_released`` is what it returned (False if it failed).
    """

    def record(self, rec: AccessRecord, *, release: Release | None = None) -> None: ...


def _ledger_record(rec: AccessRecord, fields: frozenset[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "agreementId": rec.agreement_id or "",
        "assetId": rec.asset_id or "",
        "consumerId": rec.consumer_id or "",
        "action": "use",
        "at": rec.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "decision": rec.decision,
    }
    if rec.purpose:
        doc["purpose"] = rec.purpose
    optional: dict[str, Any] = {"bytes": rec.bytes, "contentHash": rec.sha256,
                                "transferId": rec.transfer_id, "status": rec.status}
    if rec.decision == "permit":
        optional["useReleased"] = rec.use_released
    doc.update({k: v for k, v in optional.items() if k in fields and v is not None})
    return {k: v for k, v in doc.items() if k in fields}


class SqlAccessRecorder:
    """Writes ``dataplane_access_log`` and, with ``ledger_origin``, the transparency log.

    Args:
        engine: the node database.
        ledger_origin: origin of the node's log (e.g. ``host/ledger``); None: table only.
        clock: time source for the ledger's own timestamps.
    """

    def __init__(self, engine: Engine, *, ledger_origin: str | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.ledger_origin = ledger_origin
        self.clock = clock
        self._fields: frozenset[str] | None = None
        if ledger_origin:
            from ledger.records import DATA_USE, SCHEMAS

            self._fields = frozenset(SCHEMAS[DATA_USE])

    def _row(self, rec: AccessRecord, ledger_id: str | None) -> dict[str, Any]:
        return {
            "at": rec.at, "kind": rec.kind, "transfer_id": rec.transfer_id,
            "agreement_id": rec.agreement_id, "asset_id": rec.asset_id,
            "consumer_id": rec.consumer_id, "purpose": rec.purpose, "decision": rec.decision,
            "reason": rec.reason, "status": rec.status, "bytes": rec.bytes, "sha256": rec.sha256,
            "detail": (rec.detail or None) and rec.detail[:1024], "ledger_record_id": ledger_id,
            "use_released": rec.use_released,
        }

    def _append_ledger(self, conn: Connection, rec: AccessRecord) -> str:
        from ledger.log import Log
        from ledger.records import DATA_USE

        kw: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}
        ledger = Log.open(conn, self.ledger_origin or "", **kw)
        assert self._fields is not None
        return ledger.append(conn, DATA_USE, _ledger_record(rec, self._fields)).record_id

    @staticmethod
    def _released(conn: Connection, rec: AccessRecord, release: Release | None) -> AccessRecord:
        """Run ``release`` in a savepoint of ``conn``; the record says whether it gave back."""
        if release is None:
            return replace(rec, use_released=False)
        try:
            with conn.begin_nested():
                done = bool(release(conn))
        except Exception as exc:  # fail closed: the use stays counted
            log.error("could not give back the use of a failed access: %s", exc)
            done = False
        return replace(rec, use_released=done)

    def record(self, rec: AccessRecord, *, release: Release | None = None) -> None:
        """Write the record (and give the use back with ``release``, same transaction); a
        failing ledger append still leaves the table row and the release (logged)."""
        if self.ledger_origin and rec.agreement_id:
            try:
                with self.engine.begin() as conn:
                    done = self._released(conn, rec, release)
                    ledger_id = self._append_ledger(conn, done)
                    conn.execute(insert(access_log).values(self._row(done, ledger_id)))
                return
            except Exception as exc:  # the access happened: never lose its row
                log.error("ledger append of a data access failed: %s", exc)
        try:
            with self.engine.begin() as conn:
                done = self._released(conn, rec, release)
                conn.execute(insert(access_log).values(self._row(done, None)))
        except Exception:  # no row, and the use stays counted (rolled back with it)
            log.exception("could not record a data access")

    def entries(self, *, transfer_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded accesses, oldest first (optionally of one transfer)."""
        q = select(access_log).order_by(access_log.c.id)
        if transfer_id is not None:
            q = q.where(access_log.c.transfer_id == transfer_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]
