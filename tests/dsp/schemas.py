"""Load the official DSP 2025-1 JSON Schemas from ../shared (tests only).

Known upstream defect (../shared/spec/README.md): three transfer schemas reference
``transfer-schema.json#definitions/...`` without the ``/`` after ``#``; we patch those
refs in memory. Nothing is copied into the project.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

DSP_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "dsp-2025-1"

# @type (or document kind) -> schema file, relative to DSP_DIR.
SCHEMA_FOR_TYPE = {
    "CatalogRequestMessage": "catalog/catalog-request-message-schema.json",
    "DatasetRequestMessage": "catalog/dataset-request-message-schema.json",
    "Catalog": "catalog/catalog-schema.json",
    "Dataset": "catalog/dataset-schema.json",
    "CatalogError": "catalog/catalog-error-schema.json",
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": (
        "negotiation/contract-agreement-verification-message-schema.json"
    ),
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": (
        "negotiation/contract-negotiation-termination-message-schema.json"
    ),
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
    "VersionResponse": "common/protocol-version-schema.json",
}


def _patch(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _patch(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and "#definitions/" in ref:
            out["$ref"] = ref.replace("#definitions/", "#/definitions/")
        return out
    if isinstance(node, list):
        return [_patch(x) for x in node]
    return node


@cache
def _schemas() -> tuple[Registry, dict[str, dict]]:
    by_path: dict[str, dict] = {}
    registry: Registry = Registry()
    for path in sorted(DSP_DIR.glob("*/*-schema.json")):
        doc = _patch(json.loads(path.read_text()))
        by_path[str(path.relative_to(DSP_DIR))] = doc
        registry = registry.with_resource(
            doc["$id"], Resource.from_contents(doc, default_specification=DRAFT201909)
        )
    return registry, by_path


def validator_for(kind: str) -> Draft201909Validator:
    registry, by_path = _schemas()
    return Draft201909Validator(by_path[SCHEMA_FOR_TYPE[kind]], registry=registry)


def schema_errors(doc: dict, kind: str | None = None) -> list[str]:
    """Messages of every schema violation of ``doc`` (kind defaults to its @type)."""
    kind = kind or doc["@type"]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_for(kind).iter_errors(doc)
    ]


def assert_valid(doc: dict, kind: str | None = None) -> None:
    errors = schema_errors(doc, kind)
    assert not errors, f"{kind or doc.get('@type')} violates the DSP 2025-1 schema: {errors}"
