"""DSP 2025-1 messages: official examples parse and round-trip, what we build validates
against the official schemas, and schema-invalid documents are rejected before use."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from connectors.dsp import messages as m
from connectors.dsp.catalog_messages import (
    Catalog,
    CatalogRequestMessage,
    DataService,
    Dataset,
    DatasetRequestMessage,
    Distribution,
)
from connectors.dsp.errors import InvalidMessageError, ProcessNotFoundError
from connectors.dsp.vocabulary import (
    DSP_CONTEXT_URL,
    NegotiationEventType,
    NegotiationState,
    TransferState,
)
from tests.dsp.schemas import DSP_DIR, assert_valid, schema_errors

pytestmark = pytest.mark.skipif(not DSP_DIR.is_dir(), reason="../shared/spec is not present")

# Examples that are not DSP protocol messages we parse, with the reason (README of ../shared).
NOT_PARSED = {
    "common/example/catalogservice-did-service.json": (
        "a DID document service entry (identity layer), not a DSP message"
    ),
    "common/example/dataservice-did-service.json": (
        "a DID document service entry; upstream defect: does not match did-service-schema.json"
    ),
}


def _examples() -> list[str]:
    return sorted(str(p.relative_to(DSP_DIR)) for p in DSP_DIR.glob("*/example/*.json"))


def _load(rel: str) -> dict:
    return json.loads((DSP_DIR / rel).read_text())


@pytest.mark.parametrize("rel", _examples())
def test_official_example_parses_and_round_trips(rel: str) -> None:
    doc = _load(rel)
    if rel in NOT_PARSED:
        with pytest.raises(InvalidMessageError):
            m.parse_message(doc)
        return
    if rel.endswith("protocol-version.json"):
        parsed = m.VersionDocument.from_json(doc)
        assert parsed.to_json() == doc
        return
    parsed = m.parse_message(doc)
    assert parsed.TYPE.value == doc["@type"]
    assert parsed.to_json() == doc, "building the parsed example gives back the example"


def test_every_example_is_covered() -> None:
    assert len(_examples()) == 27  # the DSP 2025-1 tag ships 27 examples


@pytest.mark.parametrize(
    "rel",
    [r for r in _examples() if r not in NOT_PARSED and not r.endswith("protocol-version.json")],
)
def test_schema_invalid_variants_of_examples_are_rejected(rel: str) -> None:
    """Delete or corrupt each top-level field: whenever the schema says invalid, so do we."""
    doc = _load(rel)
    probes = 0
    for key in doc:
        for variant in ("delete", "number", "empty-list"):
            bad = copy.deepcopy(doc)
            if variant == "delete":
                del bad[key]
            elif variant == "number":
                bad[key] = 42
            else:
                bad[key] = []
            if not schema_errors(bad, doc["@type"]):
                continue
            probes += 1
            with pytest.raises(InvalidMessageError):
                m.parse_message(bad)
    assert probes >= 2


OFFER = {
    "@id": "urn:uuid:offer-1",
    "@type": "Offer",
    "target": "urn:uuid:ds-1",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"}],
        }
    ],
}
AGREEMENT = {
    "@id": "urn:uuid:agr-1",
    "@type": "Agreement",
    "target": "urn:uuid:ds-1",
    "assigner": "did:web:provider",
    "assignee": "did:web:consumer",
    "timestamp": "2026-01-01T00:00:00Z",
    "permission": OFFER["permission"],
}
PULL = m.DataAddress(
    "https://w3id.org/idsa/v4.1/HTTP",
    "https://p.example/public",
    (m.EndpointProperty("authorization", "token"), m.EndpointProperty("authType", "bearer")),
)
PP, CP = "urn:uuid:p-1", "urn:uuid:c-1"


def built_messages() -> list:
    """One of each message we build, in every shape we send."""
    catalog_offer = {k: v for k, v in OFFER.items() if k != "target"}
    svc = DataService("urn:svc", "https://p.example/dsp")
    dataset = Dataset(
        "urn:uuid:ds-1",
        (catalog_offer,),
        (Distribution("HttpData-PULL", svc.id),),
        {"dct:title": "inspections"},
    )
    return [
        CatalogRequestMessage(),
        CatalogRequestMessage(filter=({"k": "v"},)),
        DatasetRequestMessage("urn:uuid:ds-1"),
        Catalog("urn:cat", "did:web:provider", (dataset,), (svc,)),
        dataset,
        m.CatalogError("NOT_FOUND", ("no such dataset",)),
        m.ContractRequestMessage(CP, OFFER, callback_address="https://c.example/dsp"),
        m.ContractRequestMessage(CP, OFFER, provider_pid=PP),
        m.ContractOfferMessage(PP, OFFER, callback_address="https://p.example/dsp"),
        m.ContractOfferMessage(PP, OFFER, consumer_pid=CP),
        m.ContractAgreementMessage(PP, CP, AGREEMENT),
        m.ContractAgreementVerificationMessage(PP, CP),
        m.ContractNegotiationEventMessage(PP, CP, NegotiationEventType.ACCEPTED),
        m.ContractNegotiationEventMessage(PP, CP, NegotiationEventType.FINALIZED),
        m.ContractNegotiationTerminationMessage(PP, CP, "POLICY_DENIED", ("membership missing",)),
        m.ContractNegotiationTerminationMessage(PP, CP),
        *(m.ContractNegotiation(PP, CP, s) for s in NegotiationState),
        m.ContractNegotiationError(PP, CP, "INVALID_TRANSITION", ("no",)),
        m.negotiation_error(ProcessNotFoundError("unknown"), provider_pid=PP),
        m.TransferRequestMessage(CP, "urn:uuid:agr-1", "HttpData-PULL", "https://c.example/dsp"),
        m.TransferRequestMessage(
            CP,
            "urn:uuid:agr-1",
            "HttpData-PUSH",
            "https://c.example/dsp",
            m.DataAddress("https://w3id.org/idsa/v4.1/HTTP", "https://c.example/sink"),
        ),
        m.TransferStartMessage(PP, CP, PULL),
        m.TransferStartMessage(PP, CP),
        m.TransferSuspensionMessage(PP, CP, "POLICY", ("count used up",)),
        m.TransferCompletionMessage(PP, CP),
        m.TransferTerminationMessage(PP, CP, "OPERATOR", ("revoked",)),
        *(m.TransferProcess(PP, CP, s) for s in TransferState),
        m.TransferError(PP, CP, "NOT_FOUND", ("unknown",)),
        m.transfer_error(ProcessNotFoundError("unknown"), consumer_pid=CP),
    ]


@pytest.mark.parametrize("msg", built_messages(), ids=lambda x: type(x).__name__)
def test_built_messages_validate_and_parse_back(msg) -> None:
    doc = msg.to_json()
    assert doc["@context"] == [DSP_CONTEXT_URL]
    assert_valid(doc)
    assert m.parse_message(doc) == msg


def test_version_document_validates() -> None:
    doc = m.VersionDocument(
        (m.ProtocolVersion("2025-1", "/api/dsp", identifier_type="did:web", service_id="dsp"),)
    ).to_json()
    assert_valid(doc, "VersionResponse")
    assert m.VersionDocument.from_json(doc).to_json() == doc


def _with(doc: dict, **changes) -> dict:
    out = copy.deepcopy(doc)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                **{"@context": None},
            ),
            "@context",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                **{"@context": ["https://example.com/other"]},
            ),
            "@context",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                callbackAddress=None,
            ),
            "callbackAddress",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                offer={**OFFER, "@type": "Agreement"},
            ),
            "offer.@type",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                offer={k: v for k, v in OFFER.items() if k != "target"},
            ),
            "target",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                offer={**OFFER, "permission": [{"action": "use", "target": "x"}]},
            ),
            "target",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                offer={**OFFER, "permission": [{"constraint": []}]},
            ),
            "action",
        ),
        (
            _with(
                m.ContractRequestMessage(CP, OFFER, callback_address="x").to_json(),
                offer={
                    **OFFER,
                    "permission": [
                        {
                            "action": "use",
                            "constraint": [
                                {
                                    "leftOperand": "a",
                                    "operator": "approximately",
                                    "rightOperand": "b",
                                }
                            ],
                        }
                    ],
                },
            ),
            "operator",
        ),
        (
            _with(
                m.ContractAgreementMessage(PP, CP, AGREEMENT).to_json(),
                agreement={**AGREEMENT, "timestamp": "yesterday"},
            ),
            "timestamp",
        ),
        (
            _with(
                m.ContractAgreementMessage(PP, CP, AGREEMENT).to_json(),
                agreement={k: v for k, v in AGREEMENT.items() if k != "assignee"},
            ),
            "assignee",
        ),
        (
            _with(
                m.ContractNegotiationEventMessage(PP, CP, NegotiationEventType.ACCEPTED).to_json(),
                eventType="REJECTED",
            ),
            "eventType",
        ),
        (
            _with(
                m.TransferStartMessage(PP, CP, PULL).to_json(), dataAddress={"@type": "DataAddress"}
            ),
            "endpointType",
        ),
        (
            _with(m.TransferProcess(PP, CP, TransferState.STARTED).to_json(), state="RUNNING"),
            "state",
        ),
        ({"@type": "ContractNegotiationSurprise", "@context": [DSP_CONTEXT_URL]}, "unknown"),
        ([1, 2], "object"),
    ],
)
def test_invalid_documents_are_rejected_with_a_reason(doc, fragment: str) -> None:
    with pytest.raises(InvalidMessageError) as err:
        m.parse_message(doc)
    assert fragment in str(err.value)


def test_parse_restricted_to_expected_types() -> None:
    doc = m.TransferCompletionMessage(PP, CP).to_json()
    with pytest.raises(InvalidMessageError, match="expected ContractRequestMessage"):
        m.parse_message(doc, m.ContractRequestMessage)
    assert isinstance(
        m.parse_message(doc, m.TransferCompletionMessage), m.TransferCompletionMessage
    )


def test_prefixed_types_are_accepted() -> None:
    doc = _with(
        m.TransferCompletionMessage(PP, CP).to_json(),
        **{"@type": "dspace:TransferCompletionMessage"},
    )
    assert m.parse_message(doc) == m.TransferCompletionMessage(PP, CP)


def test_catalog_offer_with_target_is_rejected() -> None:
    dataset = _load("catalog/example/dataset.json")
    dataset["hasPolicy"][0]["target"] = "urn:x"
    with pytest.raises(InvalidMessageError, match="target"):
        m.parse_message(dataset)


def test_timestamps_round_trip() -> None:
    from connectors.dsp.timestamps import format_xsd_datetime, parse_xsd_datetime

    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert parse_xsd_datetime(format_xsd_datetime(moment)) == moment
    assert parse_xsd_datetime("2023-12-31T06:00Z") is None  # seconds are required by xsd
    with pytest.raises(ValueError):
        format_xsd_datetime(datetime(2026, 1, 1))
