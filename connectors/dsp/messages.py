"""All DSP 2025-1 messages in one namespace, and :func:`parse_message` to pick the class
from ``@type``; error bodies for :class:`~connectors.dsp.errors.DspError` values.

The classes live in :mod:`negotiation_messages`, :mod:`transfer_messages`,
:mod:`catalog_messages` and :mod:`version`; import them from here.
"""

from __future__ import annotations

from typing import Any

from connectors.dsp import validation as v
from connectors.dsp.catalog_messages import (
    CATALOG_CLASSES,
    Catalog,
    CatalogRequestMessage,
    DataService,
    Dataset,
    DatasetRequestMessage,
    Distribution,
)
from connectors.dsp.errors import DspError, InvalidMessageError
from connectors.dsp.message_base import Json, Message
from connectors.dsp.negotiation_messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationError,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connectors.dsp.transfer_messages import (
    DataAddress,
    EndpointProperty,
    TransferCompletionMessage,
    TransferError,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connectors.dsp.version import CatalogError, ProtocolVersion, VersionDocument
from connectors.dsp.vocabulary import NegotiationEventType

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogRequestMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiation",
    "ContractNegotiationError",
    "ContractNegotiationEventMessage",
    "ContractNegotiationTerminationMessage",
    "ContractOfferMessage",
    "ContractRequestMessage",
    "DataAddress",
    "DataService",
    "Dataset",
    "DatasetRequestMessage",
    "Distribution",
    "EndpointProperty",
    "Json",
    "Message",
    "NegotiationEventType",
    "ProtocolVersion",
    "TransferCompletionMessage",
    "TransferError",
    "TransferProcess",
    "TransferRequestMessage",
    "TransferStartMessage",
    "TransferSuspensionMessage",
    "TransferTerminationMessage",
    "VersionDocument",
    "catalog_error",
    "negotiation_error",
    "parse_message",
    "transfer_error",
]


MESSAGE_CLASSES: dict[str, type[Message]] = {
    cls.TYPE.value: cls
    for cls in (
        ContractRequestMessage,
        ContractOfferMessage,
        ContractAgreementMessage,
        ContractAgreementVerificationMessage,
        ContractNegotiationEventMessage,
        ContractNegotiationTerminationMessage,
        ContractNegotiation,
        ContractNegotiationError,
        TransferRequestMessage,
        TransferStartMessage,
        TransferCompletionMessage,
        TransferSuspensionMessage,
        TransferTerminationMessage,
        TransferProcess,
        TransferError,
        CatalogError,
    )
}


def parse_message(doc: Any, *expected: type[Message]) -> Message:
    """Parse any negotiation/transfer/catalog-error document; restrict to ``expected`` if given."""
    doc = v.require_object(doc, "message")
    cls = MESSAGE_CLASSES.get(v.compact_type(doc.get("@type")) or "")
    if cls is None:
        cls = CATALOG_CLASSES.get(v.compact_type(doc.get("@type")) or "")
    if cls is None:
        raise InvalidMessageError(f"unknown message @type {doc.get('@type')!r}")
    if expected and cls not in expected:
        names = ", ".join(e.TYPE.value for e in expected)
        raise InvalidMessageError(f"expected {names}, got {cls.TYPE.value}")
    return cls.from_json(doc)


def negotiation_error(
    err: DspError, *, provider_pid: str | None = None, consumer_pid: str | None = None
) -> ContractNegotiationError:
    """The ContractNegotiationError body for ``err`` (pids the error knows win)."""
    return ContractNegotiationError(
        provider_pid=err.provider_pid or provider_pid or UNKNOWN_PID,
        consumer_pid=err.consumer_pid or consumer_pid or UNKNOWN_PID,
        code=err.code,
        reason=err.reasons,
    )


def transfer_error(
    err: DspError, *, provider_pid: str | None = None, consumer_pid: str | None = None
) -> TransferError:
    """The TransferError body for ``err``."""
    return TransferError(
        provider_pid=err.provider_pid or provider_pid or UNKNOWN_PID,
        consumer_pid=err.consumer_pid or consumer_pid or UNKNOWN_PID,
        code=err.code,
        reason=err.reasons,
    )


def catalog_error(err: DspError) -> CatalogError:
    """The CatalogError body for ``err``."""
    return CatalogError(code=err.code, reason=err.reasons)


# Error bodies must carry both pids (schema); this stands in for one we never learnt.
UNKNOWN_PID = "urn:dspace:unknown"
