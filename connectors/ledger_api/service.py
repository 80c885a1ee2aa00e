"""The node's log as a service: what the HTTP surfaces and other components call.

One `LedgerService` per node process wraps the opened `ledger.log.Log`, the engine and
the node's signer. Other components append their records through :meth:`append` /
:meth:`append_many` with *their own* connection, so a business change and its log entry
commit together or not at all::

    with engine.begin() as conn:
        store.save_agreement(conn, agreement)
        ledger.append(conn, "contract-agreement", record, record_id=agreement.id)
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from connectors.ledger_api.access import AccessDecision, decide, record_parties
from ledger import audit, epcis, tables
from ledger.anchor import AnchorState, anchor_status
from ledger.checkpoint import Checkpoint, Signer, verifier_key
from ledger.errors import FormatError, NotFoundError
from ledger.log import Entry, Log, NewRecord, durable_transaction
from ledger.records import CONTRACT_AGREEMENT
from ledger.settings import LedgerSettings


def entry_json(entry: Entry) -> dict[str, Any]:
    """An entry as served to those allowed to read it (record, salt, position)."""
    return {
        "recordId": entry.record_id,
        "recordType": entry.record_type,
        "leafIndex": entry.leaf_index,
        "loggedAt": entry.logged_at.isoformat(),
        "record": json.loads(entry.record_json),
        "salt": entry.salt.hex(),
        "leafHash": base64.b64encode(entry.leaf_hash()).decode(),
    }


class LedgerService:
    """The node's transparency log: appends, checkpoints, proofs, entries, EPCIS, bundles.

    Args:
        engine: the node database.
        log: the node's log, or a function that opens it on first use. The node passes the
            function only when the database is down at start-up, so the worker boots and
            answers 503 until it is back (gunicorn stops the whole server when a worker
            cannot boot).
        signer: the node key store (signs checkpoints; its public key is the verifier key).
        settings: the ``[ledger]`` section.
    """

    def __init__(self, engine: Engine, log: Log | Callable[[], Log], signer: Signer,
                 settings: LedgerSettings) -> None:
        self.engine = engine
        self.signer = signer
        self.settings = settings
        self._log = log if isinstance(log, Log) else None
        self._open = None if isinstance(log, Log) else log
        self._lock = threading.Lock()

    @property
    def log(self) -> Log:
        """The opened log (opened now if this is the first use)."""
        found = self._log
        if found is not None:
            return found
        with self._lock:
            if self._log is None:
                assert self._open is not None
                self._log = self._open()
            return self._log

    # -- appending (for other components, inside their transaction) -------------------------
    def append(self, conn: Connection, record_type: str, record: Mapping[str, Any], *,
               record_id: str | None = None) -> Entry:
        """Validate and append one record in the caller's transaction (see module docs)."""
        return self.log.append(conn, record_type, record, record_id=record_id)

    def append_many(self, conn: Connection, records: Sequence[NewRecord]) -> list[Entry]:
        """Append several records in the caller's transaction, all or none."""
        return self.log.append_many(conn, records)

    # -- public reads --------------------------------------------------------------------------
    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key auditors pin (``origin+keyid+base64``)."""
        return verifier_key(self.log.origin, self.signer.public_key_bytes())

    def info(self) -> dict[str, Any]:
        """Public description of the log: origin, key, size, chain and newest anchor."""
        with self.engine.connect() as conn:
            size = self.log.size(conn)
            latest = self.log.latest_checkpoint(conn)
            anchor = newest_confirmed_anchor(conn, self.log)
        return {
            "origin": self.log.origin,
            "verifierKey": self.verifier_key,
            "treeSize": size,
            "latestCheckpointSize": latest.size if latest else None,
            "chain": {
                "backend": self.settings.backend,
                "ephemeral": self.settings.ephemeral,
                "chainId": self.settings.chain_id,
                "contract": self.settings.contract,
            },
            "latestAnchor": anchor,
        }

    def current_checkpoint(self) -> Checkpoint:
        """The signed checkpoint of the whole tree as it is now (signed on first request)."""
        with self.engine.connect() as conn:
            cp = self.log.checkpoint_at(conn, self.log.size(conn))
        if cp is not None:
            return cp
        try:
            with durable_transaction(self.engine) as conn:
                return self.log.sign_checkpoint(conn, self.signer)
        except IntegrityError:  # another request signed the same size first
            with self.engine.connect() as conn:
                cp = self.log.latest_checkpoint(conn)
            if cp is None:
                raise
            return cp

    def checkpoint_at(self, size: int) -> Checkpoint:
        """The stored checkpoint of ``size`` (NotFoundError if none was signed at that size)."""
        with self.engine.connect() as conn:
            cp = self.log.checkpoint_at(conn, size)
        if cp is None:
            raise NotFoundError("no checkpoint was signed at this tree size", found=size)
        return cp

    def inclusion_proof(self, index: int, size: int | None) -> dict[str, Any]:
        """RFC 9162 inclusion proof JSON (default size: the current tree)."""
        with self.engine.connect() as conn:
            if size is None:
                size = self.log.size(conn)
            return audit.inclusion_proof_json(conn, self.log, index, size)

    def consistency_proof(self, first: int, second: int) -> dict[str, Any]:
        """RFC 9162 consistency proof JSON (what `ledger.audit.http_fetcher` reads)."""
        if first > second:
            raise FormatError("a consistency proof goes from a smaller to a larger tree",
                              expected=f"first <= second ({second})", found=first)
        with self.engine.connect() as conn:
            return audit.consistency_proof_json(conn, self.log, first, second)

    # -- entries (parties and auditors) ---------------------------------------------------------
    def entry(self, *, leaf_index: int | None = None, record_id: str | None = None) -> Entry:
        with self.engine.connect() as conn:
            if record_id is not None:
                return self.log.entry_by_record_id(conn, record_id)
            if leaf_index is None:
                raise ValueError("leaf_index or record_id is required")
            return self.log.entry(conn, leaf_index)

    def may_read(self, entry: Entry, *, participant_id: str, did: str,
                 role: str) -> AccessDecision:
        """The access rule of `connectors.ledger_api.access` for one entry."""
        with self.engine.connect() as conn:
            def agreement(agreement_id: str) -> Mapping[str, Any] | None:
                try:
                    found = self.log.entry_by_record_id(conn, agreement_id)
                except NotFoundError:
                    return None
                if found.record_type != CONTRACT_AGREEMENT:
                    return None
                value = json.loads(found.record_json)
                return value if value.get("agreementId") == agreement_id else None

            parties = record_parties(entry.record_type, json.loads(entry.record_json), agreement)
        return decide(participant_id=participant_id, did=did, role=role, parties=parties)

    # -- operator ----------------------------------------------------------------------------
    def bundle(self, record_id: str, tree_size: int | None = None) -> dict[str, Any]:
        """The auditor's proof bundle for ``record_id`` (may sign a checkpoint: writes)."""
        with durable_transaction(self.engine) as conn:
            return audit.build_bundle(conn, self.log, record_id, self.signer,
                                      tree_size=tree_size)

    def capture(self, document: Mapping[str, Any]) -> list[epcis.CapturedEvent]:
        """Capture an EPCISDocument: every event logged and indexed, or none."""
        with self.engine.begin() as conn:
            return epcis.capture(conn, self.log, document)

    def event(self, event_id: str) -> epcis.CapturedEvent:
        with self.engine.connect() as conn:
            return epcis.get_event(conn, self.log, event_id)

    def query(self, *, identifier: str | None, event_type: str | None,
              since: datetime | None, until: datetime | None,
              limit: int) -> list[epcis.CapturedEvent]:
        with self.engine.connect() as conn:
            return epcis.query_events(conn, self.log, identifier=identifier,
                                      event_type=event_type, since=since, until=until,
                                      limit=limit)

    def status(self) -> dict[str, Any]:
        """Operator status: info plus anchor counts and the last anchoring error."""
        with self.engine.connect() as conn:
            anchors = anchor_status(conn, self.log)
        return {**self.info(), "anchors": anchors["anchors"], "lastError": anchors["last_error"]}


def newest_confirmed_anchor(conn: Connection, log: Log) -> dict[str, Any] | None:
    """The confirmed anchor of the largest tree, as JSON (None before the first one)."""
    t = tables.anchors
    row = conn.execute(
        select(t)
        .where(t.c.log_id == log.log_id, t.c.state == AnchorState.CONFIRMED.value)
        .order_by(t.c.tree_size.desc(), t.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return {
        "chainId": int(row.chain_id),
        "contract": row.contract,
        "txHash": row.tx_hash,
        "blockNumber": int(row.block_number) if row.block_number is not None else None,
        "treeSize": int(row.tree_size),
        "root": base64.b64encode(bytes(row.root)).decode(),
        "confirmedAt": row.confirmed_at.isoformat() if row.confirmed_at else None,
    }
