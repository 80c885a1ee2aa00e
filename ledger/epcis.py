"""GS1 EPCIS 2.0 capture and query over the transparency log (library level).

Every captured event becomes one ledger entry (record type ``epcis-event``, record id =
its eventID), plus index rows so that events can be found by identifier and time. The
HTTP binding (``POST /epcis/capture``, ``GET /epcis/events/{eventID}``, the query) is a
thin translation onto `capture`, `get_event` and `query_events`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ledger import tables
from ledger.errors import NotFoundError, RecordError
from ledger.log import Log, NewRecord
from ledger.records import EPCIS_EVENT, validate_epcis_event

# Where an event names an identifier, and the role we index it under (EPCIS 2.0 §7.3).
_ID_LISTS = {
    "epcList": "epc",
    "childEPCs": "child",
    "inputEPCList": "input",
    "outputEPCList": "output",
}
_QUANTITY_LISTS = {
    "quantityList": "class",
    "childQuantityList": "class",
    "inputQuantityList": "input-class",
    "outputQuantityList": "output-class",
}
MAX_EVENTS_PER_CAPTURE = 10_000
MAX_QUERY_LIMIT = 1000


@dataclass(frozen=True)
class CapturedEvent:
    """An event as logged: its id and type, event time, and ledger position."""

    event_id: str
    event_type: str
    event_time: datetime
    leaf_index: int
    event: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "eventID": self.event_id,
            "type": self.event_type,
            "ledger": {"leafIndex": self.leaf_index, "recordId": self.event_id},
            "event": self.event,
        }


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def identifiers(event: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(identifier, role) pairs an event mentions, for the query index."""
    found: set[tuple[str, str]] = set()
    if isinstance(event.get("parentID"), str):
        found.add((event["parentID"], "parent"))
    for key, role in _ID_LISTS.items():
        for epc in event.get(key) or ():
            found.add((epc, role))
    for key, role in _QUANTITY_LISTS.items():
        for q in event.get(key) or ():
            found.add((q["epcClass"], role))
    return {(i, r) for i, r in found if len(i) <= 512}


def validate_document(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check an EPCISDocument's envelope and every event; return the events."""
    if not isinstance(document, Mapping) or document.get("type") != "EPCISDocument":
        raise RecordError(
            "not an EPCISDocument",
            found=str(document.get("type")) if isinstance(document, Mapping) else None,
        )
    for key in ("@context", "schemaVersion", "creationDate", "epcisBody"):
        if key not in document:
            raise RecordError(f"EPCISDocument lacks {key!r}")
    if str(document["schemaVersion"]) not in ("2.0", "2"):
        raise RecordError(
            "unsupported EPCIS schemaVersion", expected="2.0", found=document["schemaVersion"]
        )
    body = document["epcisBody"]
    events = body.get("eventList") if isinstance(body, Mapping) else None
    if not isinstance(events, list):
        raise RecordError("epcisBody.eventList must be a list")
    if len(events) > MAX_EVENTS_PER_CAPTURE:
        raise RecordError(
            "too many events in one capture",
            expected=f"<= {MAX_EVENTS_PER_CAPTURE}",
            found=len(events),
        )
    for i, event in enumerate(events):
        try:
            validate_epcis_event(event)
        except RecordError as exc:
            raise RecordError(
                f"event {i}: {exc.message}", expected=exc.expected, found=exc.found
            ) from None
    return [dict(e) for e in events]


def capture(conn: Connection, log: Log, document: Mapping[str, Any]) -> list[CapturedEvent]:
    """Capture an EPCISDocument: all its events are logged and indexed, or none.

    Events without an eventID get a ``urn:uuid:`` one (recorded in the logged event).
    Raises RecordError for invalid documents and for eventIDs already captured.
    """
    events = validate_document(document)
    for event in events:
        event.setdefault("eventID", f"urn:uuid:{uuid.uuid4()}")
    ids = [e["eventID"] for e in events]
    if len(set(ids)) != len(ids):
        raise RecordError("eventID repeats within the capture")
    t = tables.epcis_events
    dup = (
        conn.execute(
            select(t.c.event_id).where(t.c.log_id == log.log_id, t.c.event_id.in_(ids)).limit(1)
        ).first()
        if ids
        else None
    )
    if dup is not None:
        raise RecordError("event already captured", found=dup[0])
    if not events:
        return []
    entries = log.append_many(conn, [NewRecord(EPCIS_EVENT, e, e["eventID"]) for e in events])
    captured = [
        CapturedEvent(e["eventID"], e["type"], _parse_time(e["eventTime"]), entry.leaf_index, e)
        for e, entry in zip(events, entries, strict=True)
    ]
    conn.execute(
        insert(t),
        [
            {
                "log_id": log.log_id,
                "event_id": c.event_id,
                "event_type": c.event_type,
                "event_time": c.event_time,
                "leaf_index": c.leaf_index,
            }
            for c in captured
        ],
    )
    id_rows = [
        {"log_id": log.log_id, "event_id": c.event_id, "identifier": ident, "role": role}
        for c in captured
        for ident, role in sorted(identifiers(c.event))
    ]
    if id_rows:
        conn.execute(insert(tables.epcis_identifiers), id_rows)
    return captured


def _load(conn: Connection, log: Log, row: Any) -> CapturedEvent:
    entry = log.entry(conn, int(row.leaf_index))
    event_time = row.event_time if row.event_time.tzinfo else row.event_time.replace(tzinfo=UTC)
    return CapturedEvent(
        row.event_id, row.event_type, event_time, int(row.leaf_index), json.loads(entry.record_json)
    )


def get_event(conn: Connection, log: Log, event_id: str) -> CapturedEvent:
    """The captured event with ``event_id`` (NotFoundError if none)."""
    t = tables.epcis_events
    row = conn.execute(select(t).where(t.c.log_id == log.log_id, t.c.event_id == event_id)).first()
    if row is None:
        raise NotFoundError("no EPCIS event with this eventID", found=event_id)
    return _load(conn, log, row)


def query_events(
    conn: Connection,
    log: Log,
    *,
    identifier: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[CapturedEvent]:
    """Events mentioning ``identifier`` (any role), of ``event_type``, with
    since <= eventTime < until, oldest first, at most ``limit`` (<= 1000)."""
    if not 0 < limit <= MAX_QUERY_LIMIT:
        raise RecordError("query limit out of range", expected=f"1..{MAX_QUERY_LIMIT}", found=limit)
    t = tables.epcis_events
    q = select(t).where(t.c.log_id == log.log_id)
    if identifier is not None:
        i = tables.epcis_identifiers
        q = q.where(
            t.c.event_id.in_(
                select(i.c.event_id).where(i.c.log_id == log.log_id, i.c.identifier == identifier)
            )
        )
    if event_type is not None:
        q = q.where(t.c.event_type == event_type)
    if since is not None:
        q = q.where(t.c.event_time >= since.astimezone(UTC))
    if until is not None:
        q = q.where(t.c.event_time < until.astimezone(UTC))
    rows = conn.execute(q.order_by(t.c.event_time, t.c.leaf_index).limit(limit)).all()
    return [_load(conn, log, r) for r in rows]
