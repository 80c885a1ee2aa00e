"""The DSP 2025-1 vocabulary shared by the provider and the consumer side.

Every name that travels on the wire or names a route lives here, so both sides (and
the HTTP binding) agree by construction. Source: Eclipse Dataspace Protocol 2025-1,
its JSON-LD context ``https://w3id.org/dspace/2025/1/context.jsonld`` and the HTTPS
bindings of the catalog, negotiation and transfer protocols.
"""

from __future__ import annotations

from enum import StrEnum

PROTOCOL_VERSION = "2025-1"
BINDING_HTTPS = "HTTPS"

DSPACE_NS = "https://w3id.org/dspace/2025/1/"
DSP_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
ODRL_NS = "http://www.w3.org/ns/odrl/2/"
DCAT_NS = "http://www.w3.org/ns/dcat#"
DCT_NS = "http://purl.org/dc/terms/"

# The @context every message we build carries (compact form, DSP context only).
DSP_CONTEXT: tuple[str, ...] = (DSP_CONTEXT_URL,)

WELL_KNOWN_VERSION_PATH = "/.well-known/dspace-version"


class Role(StrEnum):
    """Which side of a process a participant plays."""

    PROVIDER = "provider"
    CONSUMER = "consumer"

    @property
    def other(self) -> Role:
        return Role.CONSUMER if self is Role.PROVIDER else Role.PROVIDER


class MessageType(StrEnum):
    """The compact ``@type`` of every DSP 2025-1 document."""

    CATALOG_REQUEST = "CatalogRequestMessage"
    DATASET_REQUEST = "DatasetRequestMessage"
    CATALOG = "Catalog"
    DATASET = "Dataset"
    DISTRIBUTION = "Distribution"
    DATA_SERVICE = "DataService"
    CATALOG_ERROR = "CatalogError"
    CONTRACT_REQUEST = "ContractRequestMessage"
    CONTRACT_OFFER = "ContractOfferMessage"
    CONTRACT_AGREEMENT = "ContractAgreementMessage"
    CONTRACT_AGREEMENT_VERIFICATION = "ContractAgreementVerificationMessage"
    CONTRACT_NEGOTIATION_EVENT = "ContractNegotiationEventMessage"
    CONTRACT_NEGOTIATION_TERMINATION = "ContractNegotiationTerminationMessage"
    CONTRACT_NEGOTIATION = "ContractNegotiation"
    CONTRACT_NEGOTIATION_ERROR = "ContractNegotiationError"
    TRANSFER_REQUEST = "TransferRequestMessage"
    TRANSFER_START = "TransferStartMessage"
    TRANSFER_SUSPENSION = "TransferSuspensionMessage"
    TRANSFER_COMPLETION = "TransferCompletionMessage"
    TRANSFER_TERMINATION = "TransferTerminationMessage"
    TRANSFER_PROCESS = "TransferProcess"
    TRANSFER_ERROR = "TransferError"
    DATA_ADDRESS = "DataAddress"
    ENDPOINT_PROPERTY = "EndpointProperty"
    VERSIONS_ERROR = "VersionsError"


class OdrlType(StrEnum):
    """ODRL policy classes used in offers and agreements."""

    OFFER = "Offer"
    AGREEMENT = "Agreement"
    SET = "Set"


class NegotiationState(StrEnum):
    """Contract negotiation states (DSP 2025-1, contract negotiation protocol)."""

    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class TransferState(StrEnum):
    """Transfer process states (DSP 2025-1, transfer process protocol)."""

    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


class NegotiationEventType(StrEnum):
    """``eventType`` values of a ContractNegotiationEventMessage."""

    ACCEPTED = "ACCEPTED"
    FINALIZED = "FINALIZED"


NEGOTIATION_TERMINAL_STATES = frozenset({NegotiationState.FINALIZED, NegotiationState.TERMINATED})
TRANSFER_TERMINAL_STATES = frozenset({TransferState.COMPLETED, TransferState.TERMINATED})


class ErrorCode(StrEnum):
    """``code`` values we put in error and termination messages (the spec leaves them open)."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_OFFER = "UNKNOWN_OFFER"
    OFFER_MISMATCH = "OFFER_MISMATCH"
    POLICY_DENIED = "POLICY_DENIED"
    AGREEMENT_INVALID = "AGREEMENT_INVALID"
    AGREEMENT_MISMATCH = "AGREEMENT_MISMATCH"
    UNKNOWN_AGREEMENT = "UNKNOWN_AGREEMENT"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    UNSUPPORTED_CALLBACK = "UNSUPPORTED_CALLBACK"
    DATA_FLOW_FAILED = "DATA_FLOW_FAILED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    OPERATOR = "OPERATOR"
    CONFLICT = "CONFLICT"
    INTERNAL = "INTERNAL"


class PolicyScope(StrEnum):
    """Where a policy is evaluated; the policy checker receives one of these."""

    CATALOG = "catalog"
    NEGOTIATION = "contract.negotiation"
    TRANSFER = "transfer.process"


class Path:
    """Endpoint path templates of the DSP 2025-1 HTTPS binding (relative to the protocol URL).

    ``{pid}`` is the provider's pid on provider endpoints and the consumer's pid on
    consumer callback endpoints.
    """

    CATALOG_REQUEST = "/catalog/request"
    CATALOG_DATASET = "/catalog/datasets/{id}"
    # provider side
    NEGOTIATION = "/negotiations/{pid}"
    NEGOTIATIONS_REQUEST = "/negotiations/request"
    NEGOTIATION_REQUEST = "/negotiations/{pid}/request"
    NEGOTIATION_EVENTS = "/negotiations/{pid}/events"
    NEGOTIATION_VERIFICATION = "/negotiations/{pid}/agreement/verification"
    NEGOTIATION_TERMINATION = "/negotiations/{pid}/termination"
    # consumer callbacks
    NEGOTIATIONS_OFFERS = "/negotiations/offers"
    NEGOTIATION_OFFERS = "/negotiations/{pid}/offers"
    NEGOTIATION_AGREEMENT = "/negotiations/{pid}/agreement"
    # transfers (provider: request + {start,completion,termination,suspension}; consumer: the four)
    TRANSFER = "/transfers/{pid}"
    TRANSFERS_REQUEST = "/transfers/request"
    TRANSFER_START = "/transfers/{pid}/start"
    TRANSFER_COMPLETION = "/transfers/{pid}/completion"
    TRANSFER_TERMINATION = "/transfers/{pid}/termination"
    TRANSFER_SUSPENSION = "/transfers/{pid}/suspension"


def path_for(template: str, **values: str) -> str:
    """Fill a :class:`Path` template; pids are URL-quoted because they are IRIs."""
    from urllib.parse import quote

    return template.format(**{k: quote(v, safe="") for k, v in values.items()})
