"""What goes into a leaf: record types, their schemas, and the salted leaf encoding.

Leaf data is the RFC 8785 canonical JSON of ``{"record": ..., "salt": ..., "type": ...}``
where the salt is 128 random bits (hex). The salt makes low-entropy business records
(an agreement between two known parties about a known asset) impossible to confirm by
guessing and hashing; it stays on the node and goes into a proof bundle only for the
record that bundle proves.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from ledger.errors import RecordError

# 128-bit salt (issue 4: "a 128-bit random salt").
SALT_SIZE = 16
MAX_RECORD_BYTES = 1 << 20

CONTRACT_AGREEMENT = "contract-agreement"
TRANSFER_EVENT = "transfer-event"
DATA_USE = "data-use"
FL_ROUND = "fl-round"
EPCIS_EVENT = "epcis-event"

EPCIS_EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)


# Integers up to 2**53 print the same in RFC 8785 (ECMAScript) and Python.
_MAX_SAFE_INT = 2**53


def _plain(value: Any) -> bool:
    """True when Python's sorted compact JSON is already RFC 8785 canonical: ASCII keys
    (code-point order = UTF-16 order), safe integers, no floats. Exact types only."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and not _plain(item):
                return False
        return True
    if kind is list:
        return all(type(item) is str or _plain(item) for item in value)
    return False


# Built once: json.dumps with options builds a new encoder on every call.
_SORTED_COMPACT = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON value, through the same fast path as
    :func:`canonical_record` (used for hashes of policies and messages, several per
    negotiation). Errors are the ``rfc8785`` package's."""
    if _plain(value):
        try:
            return _SORTED_COMPACT.encode(value).encode()
        except UnicodeEncodeError:  # lone surrogates: let rfc8785 refuse them
            pass
    return rfc8785.dumps(value)


def canonical_record(record: Mapping[str, Any]) -> str:
    """RFC 8785 canonical JSON of a record (RecordError if it is not JSON).

    Plain records (the common case) take a fast path through ``json.dumps``; anything
    else (floats, non-ASCII keys) goes through the ``rfc8785`` package. A test checks the
    two agree on generated documents.
    """
    try:
        if _plain(record):
            text = _SORTED_COMPACT.encode(record)
            text.encode()  # lone surrogates are not JSON text
        else:
            text = rfc8785.dumps(record).decode()
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise RecordError("record is not canonicalisable JSON", found=str(exc)[:200]) from None
    if len(text) > MAX_RECORD_BYTES:
        raise RecordError(
            "record too large", expected=f"<= {MAX_RECORD_BYTES} bytes", found=len(text)
        )
    return text


def leaf_data(record_type: str, record_json: str, salt: bytes) -> bytes:
    """Leaf bytes from an already canonical record text.

    Equal to ``rfc8785.dumps({"record": record, "salt": salt.hex(), "type": record_type})``
    (keys in RFC 8785 order), built by concatenation so bulk appends do not re-canonicalise.
    """
    return (
        '{"record":'
        + record_json
        + ',"salt":"'
        + salt.hex()
        + '","type":'
        + _json_string(record_type)
        + "}"
    ).encode()


@functools.lru_cache(maxsize=64)
def _json_string(value: str) -> str:
    """JSON string literal of a record type (a handful of distinct values, so cached)."""
    return json.dumps(value)


# -- a small schema language for our own record types -----------------------------------
Check = Callable[[Any], bool]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TZ_OFFSET = re.compile(r"^[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)$")


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 2048


def _is_datetime(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_uri(v: Any) -> bool:
    return _is_str(v) and ":" in v and not any(c.isspace() for c in v)


def _enum(*values: str) -> Check:
    return lambda v: v in values


def _list_of(check: Check, min_items: int = 0) -> Check:
    return lambda v: isinstance(v, list) and len(v) >= min_items and all(check(x) for x in v)


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False
    describe: str = "a value"


def _req(check: Check, describe: str) -> Field:
    return Field(check, True, describe)


def _opt(check: Check, describe: str) -> Field:
    return Field(check, False, describe)


SCHEMAS: dict[str, dict[str, Field]] = {
    CONTRACT_AGREEMENT: {
        "agreementId": _req(_is_str, "a string"),
        "assetId": _req(_is_str, "a string"),
        "providerId": _req(_is_str, "a string"),
        "consumerId": _req(_is_str, "a string"),
        "signedAt": _req(_is_datetime, "an RFC 3339 date-time with offset"),
        "policyHash": _opt(lambda v: isinstance(v, str) and bool(_HEX64.match(v)), "64 hex digits"),
        "policy": _opt(lambda v: isinstance(v, dict), "an object (ODRL policy)"),
    },
    TRANSFER_EVENT: {
        "transferId": _req(_is_str, "a string"),
        "agreementId": _req(_is_str, "a string"),
        "state": _req(
            _enum("REQUESTED", "STARTED", "COMPLETED", "SUSPENDED", "TERMINATED"),
            "a DSP transfer state",
        ),
        "at": _req(_is_datetime, "an RFC 3339 date-time with offset"),
        "transferType": _opt(_is_str, "a string"),
        "bytes": _opt(_is_count, "a non-negative integer"),
    },
    DATA_USE: {
        "agreementId": _req(_is_str, "a string"),
        "assetId": _req(_is_str, "a string"),
        "consumerId": _req(_is_str, "a string"),
        "action": _req(_is_str, "an ODRL action"),
        "at": _req(_is_datetime, "an RFC 3339 date-time with offset"),
        "purpose": _opt(_is_str, "a string"),
        "decision": _opt(_enum("permit", "deny"), "permit or deny"),
        "count": _opt(_is_count, "a non-negative integer"),
        "transferId": _opt(_is_str, "a string"),
        "bytes": _opt(_is_count, "a non-negative integer"),
        "contentHash": _opt(
            lambda v: isinstance(v, str) and bool(_HEX64.match(v)), "64 hex digits (SHA-256)"
        ),
        "status": _opt(_enum("complete", "aborted", "failed", "denied"),
                       "complete, aborted, failed or denied"),
        "useReleased": _opt(lambda v: isinstance(v, bool), "true or false"),
    },
    FL_ROUND: {
        "taskId": _req(_is_str, "a string"),
        "round": _req(_is_count, "a non-negative integer"),
        "modelHash": _req(
            lambda v: isinstance(v, str) and bool(_HEX64.match(v)), "64 hex digits (SHA-256)"
        ),
        "participants": _req(_list_of(_is_str, 1), "a non-empty list of participant ids"),
        "at": _req(_is_datetime, "an RFC 3339 date-time with offset"),
        "metrics": _opt(lambda v: isinstance(v, dict), "an object"),
        "agreementIds": _opt(_list_of(_is_str, 0), "a list of contract agreement ids"),
        "runId": _opt(_is_str, "a string"),
        "status": _opt(lambda v: v in ("completed", "aborted"), "completed or aborted"),
    },
}


def _check_fields(record_type: str, record: Mapping[str, Any], schema: Mapping[str, Field]) -> None:
    for name, f in schema.items():
        if name not in record:
            if f.required:
                raise RecordError(f"{record_type}: missing field {name!r}", expected=f.describe)
            continue
        if not f.check(record[name]):
            raise RecordError(
                f"{record_type}: field {name!r} is invalid",
                expected=f.describe,
                found=repr(record[name])[:80],
            )
    unknown = sorted(set(record) - set(schema))
    if unknown:
        raise RecordError(f"{record_type}: unknown fields", found=", ".join(unknown)[:200])


# -- GS1 EPCIS 2.0 events (EPCIS 2.0 §7 and its JSON schema) -----------------------------
_EPCIS_COMMON: dict[str, Field] = {
    "@context": _opt(lambda v: isinstance(v, str | list | dict), "a JSON-LD context"),
    "type": _req(_enum(*EPCIS_EVENT_TYPES), "an EPCIS event type"),
    "eventTime": _req(_is_datetime, "an RFC 3339 date-time with offset"),
    "recordTime": _opt(_is_datetime, "an RFC 3339 date-time with offset"),
    "eventTimeZoneOffset": _req(
        lambda v: isinstance(v, str) and bool(_TZ_OFFSET.match(v)), "+hh:mm"
    ),
    "eventID": _opt(_is_uri, "a URI"),
    "certificationInfo": _opt(lambda v: _is_uri(v) or _list_of(_is_uri)(v), "URI(s)"),
    "errorDeclaration": _opt(
        lambda v: isinstance(v, dict) and _is_datetime(v.get("declarationTime")),
        "an object with declarationTime",
    ),
}
_ACTION = _enum("OBSERVE", "ADD", "DELETE")
# GS1 CBV 2.0 §7.1 business steps and §7.2 dispositions (bare-word form); any other value
# must be a URI outside the CBV namespaces (a user vocabulary).
CBV_BIZ_STEPS = frozenset(
    [
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
        "sensor_reporting",
        "sampling",
    ]
)
CBV_DISPOSITIONS = frozenset(
    [
        "active",
        "container_closed",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "no_pedigree_match",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unknown",
        "available",
        "completeness_verified",
        "completeness_inferred",
        "conformant",
        "container_open",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "non_conformant",
        "unavailable",
    ]
)
_CBV_NAMESPACES = re.compile(r"^(urn:epcglobal:cbv|https?://ns\.gs1\.org/cbv/)")


def _vocab(words: frozenset[str]) -> Check:
    return lambda v: v in words or (_is_uri(v) and not _CBV_NAMESPACES.match(v))


_QUANTITY = _list_of(lambda q: isinstance(q, dict) and _is_uri(q.get("epcClass")))
_URIS = _list_of(_is_uri)
_OBJ_LIST = _list_of(lambda v: isinstance(v, dict))
_OBJ = lambda v: isinstance(v, dict)  # noqa: E731
_WHERE_WHY: dict[str, Field] = {
    "bizStep": _opt(_vocab(CBV_BIZ_STEPS), "a CBV business step or a non-CBV URI"),
    "disposition": _opt(_vocab(CBV_DISPOSITIONS), "a CBV disposition or a non-CBV URI"),
    "readPoint": _opt(lambda v: isinstance(v, dict) and _is_uri(v.get("id")), "an object with id"),
    "bizLocation": _opt(
        lambda v: isinstance(v, dict) and _is_uri(v.get("id")), "an object with id"
    ),
    "bizTransactionList": _opt(
        _list_of(lambda v: isinstance(v, dict) and _is_uri(v.get("bizTransaction"))),
        "a list of {bizTransaction}",
    ),
    "sourceList": _opt(_OBJ_LIST, "a list of objects"),
    "destinationList": _opt(_OBJ_LIST, "a list of objects"),
    "sensorElementList": _opt(_OBJ_LIST, "a list of objects"),
}
_PARENT_CHILD: dict[str, Field] = {
    "parentID": _opt(_is_uri, "a URI"),
    "childEPCs": _opt(_URIS, "a list of URIs"),
    "childQuantityList": _opt(_QUANTITY, "a list of quantity elements"),
    "action": _req(_ACTION, "OBSERVE, ADD or DELETE"),
}
EPCIS_SCHEMAS: dict[str, dict[str, Field]] = {
    "ObjectEvent": {
        **_EPCIS_COMMON,
        **_WHERE_WHY,
        "epcList": _opt(_URIS, "a list of URIs"),
        "quantityList": _opt(_QUANTITY, "quantity elements"),
        "action": _req(_ACTION, "OBSERVE, ADD or DELETE"),
        "persistentDisposition": _opt(_OBJ, "an object"),
        "ilmd": _opt(_OBJ, "an object"),
    },
    "AggregationEvent": {**_EPCIS_COMMON, **_WHERE_WHY, **_PARENT_CHILD},
    "AssociationEvent": {
        **_EPCIS_COMMON,
        **_WHERE_WHY,
        **_PARENT_CHILD,
        "parentID": _req(_is_uri, "a URI"),
    },
    "TransactionEvent": {
        **_EPCIS_COMMON,
        **_WHERE_WHY,
        "bizTransactionList": _req(
            _list_of(lambda v: isinstance(v, dict) and _is_uri(v.get("bizTransaction")), 1),
            "a non-empty list of {bizTransaction}",
        ),
        "parentID": _opt(_is_uri, "a URI"),
        "epcList": _opt(_URIS, "a list of URIs"),
        "quantityList": _opt(_QUANTITY, "quantity elements"),
        "action": _req(_ACTION, "OBSERVE, ADD or DELETE"),
    },
    "TransformationEvent": {
        **_EPCIS_COMMON,
        **_WHERE_WHY,
        "inputEPCList": _opt(_URIS, "a list of URIs"),
        "inputQuantityList": _opt(_QUANTITY, "quantities"),
        "outputEPCList": _opt(_URIS, "a list of URIs"),
        "outputQuantityList": _opt(_QUANTITY, "quantities"),
        "transformationID": _opt(_is_uri, "a URI"),
        "persistentDisposition": _opt(_OBJ, "an object"),
        "ilmd": _opt(_OBJ, "an object"),
    },
}


def _is_extension_key(key: str) -> bool:
    # EPCIS allows user extension members named by a namespace prefix or full URI.
    return ":" in key and not key.startswith("@")


def validate_epcis_event(event: Mapping[str, Any]) -> None:
    """Check an EPCIS 2.0 event (as found in an EPCISDocument's eventList)."""
    if not isinstance(event, Mapping):
        raise RecordError("EPCIS event must be a JSON object", found=type(event).__name__)
    etype = event.get("type")
    if etype not in EPCIS_SCHEMAS:
        raise RecordError(
            "unsupported EPCIS event type", expected="|".join(EPCIS_EVENT_TYPES), found=etype
        )
    core = {k: v for k, v in event.items() if not _is_extension_key(k)}
    _check_fields(etype, core, EPCIS_SCHEMAS[etype])
    has = lambda *names: any(core.get(n) for n in names)  # noqa: E731
    if etype in ("AggregationEvent", "AssociationEvent") and not has(
        "childEPCs", "childQuantityList"
    ):
        raise RecordError(f"{etype}: needs childEPCs or childQuantityList")
    if (
        etype == "AggregationEvent"
        and core.get("action") in ("ADD", "DELETE")
        and "parentID" not in core
    ):
        # EPCIS 2.0 §7.4.3: parentID is optional only when the action is OBSERVE.
        raise RecordError("AggregationEvent ADD/DELETE needs a parentID")
    if (
        etype in ("ObjectEvent", "TransactionEvent")
        and "epcList" not in core
        and "quantityList" not in core
    ):
        raise RecordError(f"{etype}: needs epcList or quantityList")
    if etype == "TransformationEvent" and not (
        has("transformationID")
        or (has("inputEPCList", "inputQuantityList") and has("outputEPCList", "outputQuantityList"))
    ):
        raise RecordError("TransformationEvent: needs inputs and outputs, or a transformationID")


def validate_record(record_type: str, record: Mapping[str, Any]) -> None:
    """Check a record against its type's schema; RecordError says what is wrong."""
    if not isinstance(record, Mapping):
        raise RecordError("record must be a JSON object", found=type(record).__name__)
    if record_type == EPCIS_EVENT:
        validate_epcis_event(record)
        return
    schema = SCHEMAS.get(record_type)
    if schema is None:
        raise RecordError(
            "unknown record type", expected="|".join([*SCHEMAS, EPCIS_EVENT]), found=record_type
        )
    _check_fields(record_type, record, schema)


RECORD_TYPES: tuple[str, ...] = (*SCHEMAS, EPCIS_EVENT)
