"""Operator endpoints (management surface, X-Api-Key): EPCIS 2.0 capture/query, bundles.

| route | answer |
|---|---|
| ``POST /management/epcis/capture`` | 201: events + ledger entries; 400 lists ``errors`` |
| ``GET /management/epcis/events/{eventID}`` | the event and its ledger entry |
| ``GET /management/epcis/events?…`` | an ``EPCISQueryDocument`` (query parameters below) |
| ``GET /management/ledger`` | log status: size, checkpoints, chain, anchors, last error |
| ``GET /management/ledger/records/{id}`` | one entry (record + salt) |
| ``GET /management/ledger/records/{id}/bundle[?size=N]`` | the record's proof bundle |

EPCIS 2.0 query parameters (REST binding names where they fit): ``eventType``,
``GE_eventTime`` / ``LT_eventTime`` (RFC 3339 with offset), ``MATCH_anyEPC`` /
``MATCH_anyEPCClass`` (exact identifier, any role: epc, parent, child, input, output,
quantity class), ``perPage`` (1..1000, default 100). ``epc`` and ``identifier`` are
accepted as short aliases of ``MATCH_anyEPC``. One identifier per query; patterns
and ``nextPageToken`` paging are not supported (refused with a 400, never ignored).
Capture is synchronous: the answer is 201 with the ledger positions, not 202 + job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Response, request
from flask_smorest import Blueprint

from connectors.http.problem import ProblemError
from connectors.ledger_api.problems import ledger_errors, refuse_unknown, uint_param
from connectors.ledger_api.service import LedgerService, entry_json
from ledger import epcis
from ledger.errors import RecordError
from ledger.records import EPCIS_EVENT_TYPES, validate_epcis_event

PREFIX = "/management"
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
JSON_TYPES = ("application/json", "application/ld+json")
IDENTIFIER_PARAMS = ("MATCH_anyEPC", "MATCH_anyEPCClass", "epc", "identifier")
QUERY_PARAMS = frozenset({"eventType", "GE_eventTime", "LT_eventTime", "perPage",
                          *IDENTIFIER_PARAMS})
DEFAULT_PER_PAGE = 100
MAX_LISTED_ERRORS = 100


def _respond(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), status=status,
                    mimetype="application/json")


def _json_body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype not in JSON_TYPES:
        raise ProblemError(415, "Unsupported Media Type",
                           f"send the EPCISDocument as {' or '.join(JSON_TYPES)}")
    try:
        return json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Bad Request", f"the body is not valid JSON: {exc}") from None


def document_errors(document: Any) -> list[dict[str, Any]]:
    """Every problem of an EPCISDocument (envelope first, then each event), at most 100.

    Empty when the document is valid. The library stops at the first problem; the
    operator fixing a batch wants all of them at once.
    """
    try:
        epcis.validate_document(document)
    except RecordError as exc:
        first = exc
    else:
        return []
    errors: list[dict[str, Any]] = []
    body = document.get("epcisBody") if isinstance(document, Mapping) else None
    events = body.get("eventList") if isinstance(body, Mapping) else None
    if not first.message.startswith("event "):
        errors.append({"where": "document", "error": first.diagnosis})
    if isinstance(events, list):
        for i, event in enumerate(events):
            if len(errors) >= MAX_LISTED_ERRORS:
                break
            try:
                validate_epcis_event(event)
            except RecordError as exc:
                event_id = event.get("eventID") if isinstance(event, Mapping) else None
                errors.append({"where": f"eventList[{i}]", "eventID": event_id,
                               "error": exc.diagnosis})
    return errors or [{"where": "document", "error": first.diagnosis}]


def _time_param(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    text = raw.replace(" ", "+")  # an unencoded '+' of an offset arrives as a space
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ProblemError(400, "Bad Request",
                           f"{name} must be an RFC 3339 date-time with offset, "
                           f"e.g. 2026-01-01T00:00:00Z", parameter=name)
    return value.astimezone(UTC)


def _query_args() -> dict[str, Any]:
    refuse_unknown(request.args, QUERY_PARAMS)
    given = [p for p in IDENTIFIER_PARAMS if request.args.get(p)]
    if len(given) > 1:
        raise ProblemError(400, "Bad Request",
                           f"give one identifier parameter, not {', '.join(given)}")
    identifier = request.args.get(given[0]) if given else None
    event_type = request.args.get("eventType") or None
    if event_type is not None and event_type not in EPCIS_EVENT_TYPES:
        raise ProblemError(400, "Bad Request",
                           f"eventType must be one of {', '.join(EPCIS_EVENT_TYPES)}",
                           parameter="eventType")
    limit = uint_param(request.args, "perPage", default=DEFAULT_PER_PAGE)
    if not 0 < limit <= epcis.MAX_QUERY_LIMIT:
        raise ProblemError(400, "Bad Request",
                           f"perPage must be in 1..{epcis.MAX_QUERY_LIMIT}", parameter="perPage")
    since, until = _time_param("GE_eventTime"), _time_param("LT_eventTime")
    return {"identifier": identifier, "event_type": event_type, "since": since,
            "until": until, "limit": limit}


def query_document(events: list[epcis.CapturedEvent]) -> dict[str, Any]:
    """An EPCIS 2.0 ``EPCISQueryDocument`` of ``events``, plus where each one is logged."""
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "epcisBody": {"queryResults": {
            "queryName": "SimpleEventQuery",
            "resultsBody": {"eventList": [e.event for e in events]},
        }},
        "ledgerEntries": [{"eventID": e.event_id, "leafIndex": e.leaf_index,
                           "recordId": e.event_id} for e in events],
    }


def management_blueprint(service: LedgerService) -> Blueprint:
    bp = Blueprint("ledger_management", __name__, url_prefix=PREFIX,
                   description="EPCIS 2.0 traceability capture/query and the transparency log")

    @bp.route("/epcis/capture", methods=["POST"])
    def capture() -> Any:
        """Capture an EPCISDocument: every event becomes a ledger entry, or none does."""
        document = _json_body()
        errors = document_errors(document)
        if errors:
            raise ProblemError(400, "Invalid EPCIS document",
                               f"{len(errors)} problem(s); nothing was captured", errors=errors)
        try:
            with ledger_errors():
                captured = service.capture(document)
        except ProblemError as exc:
            if exc.status == 400:  # e.g. an eventID captured before
                raise ProblemError(400, "Invalid EPCIS document",
                                   "nothing was captured",
                                   errors=[{"where": "document", "error": exc.detail}]) from None
            raise
        return _respond({"eventCount": len(captured),
                         "events": [c.to_json() for c in captured]}, 201)

    @bp.route("/epcis/events/<path:event_id>", methods=["GET"])
    def get_event(event_id: str) -> Any:
        """One captured event and its ledger entry."""
        refuse_unknown(request.args, set())
        with ledger_errors():
            return _respond(service.event(event_id).to_json())

    @bp.route("/epcis/events", methods=["GET"])
    def query_events() -> Any:
        """Events by identifier, type and time range, oldest first (EPCISQueryDocument)."""
        args = _query_args()
        with ledger_errors():
            return _respond(query_document(service.query(**args)))

    @bp.route("/ledger", methods=["GET"])
    def status() -> Any:
        """The log: size, latest checkpoint, verifier key, chain, anchors, last error."""
        refuse_unknown(request.args, set())
        with ledger_errors():
            return _respond(service.status())

    @bp.route("/ledger/records/<path:record_id>/bundle", methods=["GET"])
    def bundle(record_id: str) -> Any:
        """The proof bundle of one record (``autospace audit verify`` checks it)."""
        refuse_unknown(request.args, {"size"})
        size = uint_param(request.args, "size") if request.args.get("size") else None
        with ledger_errors():
            return _respond(service.bundle(record_id, size))

    @bp.route("/ledger/records/<path:record_id>", methods=["GET"])
    def record(record_id: str) -> Any:
        """One entry: the record, its salt and its leaf."""
        refuse_unknown(request.args, set())
        with ledger_errors():
            return _respond(entry_json(service.entry(record_id=record_id)))

    return bp
