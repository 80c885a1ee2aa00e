"""Record schemas, EPCIS validation (checked against the shared GS1 JSON schema) and capture."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger import epcis, records
from ledger.errors import NotFoundError, RecordError
from tests.ledger.conftest import agreement

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")
DOC = json.loads((Path(__file__).parent / "data" / "epcis_capture.json").read_text())

GOOD = {
    records.CONTRACT_AGREEMENT: agreement(1),
    records.TRANSFER_EVENT: {
        "transferId": "t1",
        "agreementId": "a1",
        "state": "STARTED",
        "at": "2026-01-01T00:00:00+01:00",
        "bytes": 10,
    },
    records.DATA_USE: {
        "agreementId": "a1",
        "assetId": "x",
        "consumerId": "c",
        "action": "use",
        "at": "2026-01-01T00:00:00Z",
        "decision": "permit",
    },
    records.FL_ROUND: {
        "taskId": "task",
        "round": 3,
        "modelHash": "ab" * 32,
        "participants": ["p1", "p2"],
        "at": "2026-01-01T00:00:00Z",
    },
}


@pytest.fixture(scope="module")
def epcis_schema(shared_dir):
    import jsonschema

    schema = json.loads((shared_dir / "spec" / "epcis-2.0" / "EPCIS-JSON-Schema.json").read_text())
    # The schema relies on the "uri" and "date-time" formats, which jsonschema only checks
    # with optional packages; give it strict checks of our own so those constraints apply.
    checker = jsonschema.FormatChecker()
    checker.checks("uri")(lambda v: not isinstance(v, str) or bool(_URI.match(v)))
    checker.checks("date-time")(lambda v: not isinstance(v, str) or records._is_datetime(v))
    return jsonschema.Draft7Validator(schema, format_checker=checker)


@pytest.mark.parametrize("rtype", list(GOOD))
def test_good_records_validate(rtype):
    records.validate_record(rtype, GOOD[rtype])


@pytest.mark.parametrize("rtype", list(GOOD))
def test_each_required_field_is_required(rtype):
    for name, field in records.SCHEMAS[rtype].items():
        if field.required and name in GOOD[rtype]:
            bad = dict(GOOD[rtype])
            del bad[name]
            with pytest.raises(RecordError, match=name):
                records.validate_record(rtype, bad)


@pytest.mark.parametrize(
    "rtype,field,value",
    [
        (records.CONTRACT_AGREEMENT, "signedAt", "yesterday"),
        (records.CONTRACT_AGREEMENT, "signedAt", "2026-01-01T00:00:00"),  # no offset
        (records.CONTRACT_AGREEMENT, "policyHash", "XYZ"),
        (records.TRANSFER_EVENT, "state", "FLYING"),
        (records.TRANSFER_EVENT, "bytes", -1),
        (records.FL_ROUND, "round", True),
        (records.FL_ROUND, "participants", []),
        (records.DATA_USE, "decision", "maybe"),
        (records.DATA_USE, "surprise", 1),
    ],
)
def test_bad_field_values(rtype, field, value):
    with pytest.raises(RecordError):
        records.validate_record(rtype, {**GOOD[rtype], field: value})


def test_unknown_type_and_non_object():
    with pytest.raises(RecordError):
        records.validate_record("nope", {})
    with pytest.raises(RecordError):
        records.validate_record(records.DATA_USE, ["not", "an", "object"])
    with pytest.raises(RecordError):
        records.canonical_record({"x": float("nan")})


def test_sample_document_matches_gs1_schema(epcis_schema):
    errors = list(epcis_schema.iter_errors(DOC))
    assert not errors, [e.message for e in errors]
    epcis.validate_document(DOC)


def _in_doc(event):
    doc = copy.deepcopy(DOC)
    doc["epcisBody"]["eventList"] = [event]
    return doc


def _mutations():
    """Invalid variants of each sample event; both our validator and GS1's schema reject them."""
    for event in DOC["epcisBody"]["eventList"]:
        t = event["type"]
        yield f"{t} no eventTime", {k: v for k, v in event.items() if k != "eventTime"}
        yield f"{t} bad offset", {**event, "eventTimeZoneOffset": "+8"}
        if "action" in event:
            yield f"{t} bad action", {**event, "action": "MOVE"}
            yield f"{t} no action", {k: v for k, v in event.items() if k != "action"}
        yield f"{t} unknown member", {**event, "colour": "red"}
        yield f"{t} bad bizStep", {**event, "bizStep": "teleporting"}
        yield f"{t} CBV-namespace bizStep", {**event, "bizStep": "urn:epcglobal:cbv:bizstep:x"}
        yield f"{t} bad disposition", {**event, "disposition": "happy"}
    yield "unknown type", {**DOC["epcisBody"]["eventList"][0], "type": "TeleportEvent"}
    tx = DOC["epcisBody"]["eventList"][2]
    yield (
        "transaction without bizTransactionList",
        {k: v for k, v in tx.items() if k != "bizTransactionList"},
    )
    yield "transaction empty bizTransactionList", {**tx, "bizTransactionList": []}
    assoc = DOC["epcisBody"]["eventList"][4]
    yield "association without parentID", {k: v for k, v in assoc.items() if k != "parentID"}
    yield "association without children", {k: v for k, v in assoc.items() if k != "childEPCs"}
    yield (
        "quantity without class",
        {**DOC["epcisBody"]["eventList"][3], "outputQuantityList": [{"quantity": 1}]},
    )


@pytest.mark.parametrize(
    "desc,event", list(_mutations()), ids=lambda x: x if isinstance(x, str) else ""
)
def test_invalid_events_rejected_like_gs1_schema(desc, event, epcis_schema):
    assert list(epcis_schema.iter_errors(_in_doc(event))), f"GS1 schema accepts {desc}"
    with pytest.raises(RecordError):
        epcis.validate_document(_in_doc(event))


def test_extension_members_allowed(epcis_schema):
    event = {**DOC["epcisBody"]["eventList"][0], "example:colour": "red"}
    doc = _in_doc(event)
    doc["@context"] = [*doc["@context"], {"example": "https://example.org/ns/"}]
    assert not list(epcis_schema.iter_errors(doc))
    epcis.validate_document(doc)


def test_capture_get_and_query(engine, log):
    with engine.begin() as conn:
        captured = epcis.capture(conn, log, DOC)
    assert [c.leaf_index for c in captured] == [0, 1, 2, 3, 4]
    with engine.connect() as conn:
        got = epcis.get_event(conn, log, "urn:uuid:5c1a7d8e-0001-4a00-8000-000000000003")
        assert got.event == DOC["epcisBody"]["eventList"][2]
        assert log.entry(conn, got.leaf_index).record_id == got.event_id
        epc = "urn:epc:id:sgtin:4012345.011111.1002"
        hits = epcis.query_events(conn, log, identifier=epc)
        assert [h.event_type for h in hits] == [
            "ObjectEvent",
            "TransactionEvent",
            "TransformationEvent",
        ]
        lot = epcis.query_events(conn, log, identifier="urn:epc:class:lgtin:4012345.022222.LOT7")
        assert [h.event_type for h in lot] == ["TransformationEvent"]
        window = epcis.query_events(
            conn,
            log,
            since=datetime(2026, 3, 2, tzinfo=UTC),
            until=datetime(2026, 3, 4, tzinfo=UTC),
        )
        assert [h.event_type for h in window] == ["TransactionEvent", "TransformationEvent"]
        # 07:00+08:00 is 23:00Z the day before: times are compared in UTC
        early = epcis.query_events(conn, log, until=datetime(2026, 3, 1, tzinfo=UTC))
        assert [h.event_type for h in early] == ["ObjectEvent"]
        with pytest.raises(NotFoundError):
            epcis.get_event(conn, log, "urn:uuid:none")


def test_capture_is_all_or_nothing(engine, log):
    doc = copy.deepcopy(DOC)
    doc["epcisBody"]["eventList"][3]["bizStep"] = 5  # invalid: the whole capture fails
    with engine.begin() as conn:
        with pytest.raises(RecordError, match="event 3"):
            epcis.capture(conn, log, doc)
        assert log.size(conn) == 0
        epcis.capture(conn, log, DOC)
        with pytest.raises(RecordError, match="already captured"):
            epcis.capture(conn, log, DOC)
        assert log.size(conn) == 5


def test_capture_assigns_missing_event_ids(engine, log):
    doc = copy.deepcopy(DOC)
    del doc["epcisBody"]["eventList"][0]["eventID"]
    with engine.begin() as conn:
        captured = epcis.capture(conn, log, doc)
        assert captured[0].event_id.startswith("urn:uuid:")
        assert (
            epcis.get_event(conn, log, captured[0].event_id).event["eventID"]
            == captured[0].event_id
        )
