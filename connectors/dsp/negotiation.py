"""Contract negotiation: the entity and its state table (DSP 2025-1).

The table lists, for each message and its sender, the states it may leave from and
the state it leads to; :func:`transition` is the only way an entity changes state.
Both sides use the same table: the provider moves its copy when it receives a
consumer message or commits to sending its own, and the consumer likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors.dsp.errors import InvalidTransitionError
from connectors.dsp.vocabulary import NegotiationState, Role

S = NegotiationState


class NegotiationMessage(StrEnum):
    """The messages that move a negotiation (event messages split by eventType)."""

    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    ACCEPTED = "ContractNegotiationEventMessage:ACCEPTED"
    AGREEMENT = "ContractAgreementMessage"
    VERIFICATION = "ContractAgreementVerificationMessage"
    FINALIZED = "ContractNegotiationEventMessage:FINALIZED"
    TERMINATION = "ContractNegotiationTerminationMessage"


M = NegotiationMessage
NON_TERMINAL = frozenset({S.REQUESTED, S.OFFERED, S.ACCEPTED, S.AGREED, S.VERIFIED})


@dataclass(frozen=True, slots=True)
class Rule:
    """``message`` sent by ``sender`` moves a negotiation from any of ``sources`` to ``target``.

    ``None`` in ``sources`` means "no negotiation yet": the message creates one.
    """

    message: NegotiationMessage
    sender: Role
    sources: frozenset[NegotiationState | None]
    target: NegotiationState


# DSP 2025-1 contract negotiation state machine (the figure's C/P-marked arrows).
RULES: tuple[Rule, ...] = (
    Rule(M.REQUEST, Role.CONSUMER, frozenset({None, S.OFFERED}), S.REQUESTED),
    Rule(M.OFFER, Role.PROVIDER, frozenset({None, S.REQUESTED}), S.OFFERED),
    Rule(M.ACCEPTED, Role.CONSUMER, frozenset({S.OFFERED}), S.ACCEPTED),
    Rule(M.AGREEMENT, Role.PROVIDER, frozenset({S.REQUESTED, S.ACCEPTED}), S.AGREED),
    Rule(M.VERIFICATION, Role.CONSUMER, frozenset({S.AGREED}), S.VERIFIED),
    Rule(M.FINALIZED, Role.PROVIDER, frozenset({S.VERIFIED}), S.FINALIZED),
    Rule(M.TERMINATION, Role.CONSUMER, NON_TERMINAL, S.TERMINATED),
    Rule(M.TERMINATION, Role.PROVIDER, NON_TERMINAL, S.TERMINATED),
)

# (message, sender) -> rule; and the derived view STATE -> {reachable states}.
BY_MESSAGE: dict[tuple[NegotiationMessage, Role], Rule] = {(r.message, r.sender): r for r in RULES}
ALLOWED: dict[NegotiationState | None, frozenset[NegotiationState]] = {
    src: frozenset(r.target for r in RULES if src in r.sources) for src in (None, *S)
}


def target_of(message: NegotiationMessage, sender: Role) -> NegotiationState | None:
    """The state ``message`` from ``sender`` leads to, or None if that sender may never send it."""
    rule = BY_MESSAGE.get((message, sender))
    return None if rule is None else rule.target


def is_allowed(
    source: NegotiationState | None,
    target: NegotiationState,
    sender: Role,
    message: NegotiationMessage,
) -> bool:
    """Whether the table permits ``source -> target`` on ``message`` sent by ``sender``."""
    rule = BY_MESSAGE.get((message, sender))
    return rule is not None and rule.target == target and source in rule.sources


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """Why a process ended: a code and human-readable reasons (also sent in terminations)."""

    code: str
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> ErrorDetail | None:
        if not doc:
            return None
        return cls(
            code=str(doc.get("code", "")), reasons=tuple(str(r) for r in doc.get("reasons", ()))
        )


@dataclass(frozen=True, slots=True)
class ContractNegotiationEntity:
    """One negotiation as one side sees it.

    ``id`` is our own pid (provider_pid on the provider side, consumer_pid on the consumer
    side). ``counter_party_id`` is the verified participant id of the other side: any
    message about this negotiation from someone else is answered 404. ``counter_party_address``
    is where our messages go (the consumer's callbackAddress, or the provider's protocol URL).
    ``offer`` is the latest offer on the table (compact ODRL, with ``target``).
    """

    id: str
    role: Role
    state: NegotiationState
    counter_party_id: str
    counter_party_address: str
    created_at: datetime
    updated_at: datetime
    consumer_pid: str | None = None
    provider_pid: str | None = None
    dataset_id: str | None = None
    offer: dict[str, Any] | None = None
    contract_definition_id: str | None = None
    agreement_id: str | None = None
    error: ErrorDetail | None = None
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.state in (S.FINALIZED, S.TERMINATED)


def transition(
    entity: ContractNegotiationEntity,
    target: NegotiationState,
    *,
    sender: Role,
    message: NegotiationMessage,
    now: datetime,
    **changes: Any,
) -> ContractNegotiationEntity:
    """Move ``entity`` to ``target`` if the table allows it; other fields from ``changes``.

    Raises:
        InvalidTransitionError: the table has no such arrow (caller answers 400).
    """
    check(
        entity.state,
        target,
        sender=sender,
        message=message,
        provider_pid=entity.provider_pid,
        consumer_pid=entity.consumer_pid,
    )
    return replace(entity, state=target, updated_at=now, **changes)


def check(
    source: NegotiationState | None,
    target: NegotiationState,
    *,
    sender: Role,
    message: NegotiationMessage,
    provider_pid: str | None = None,
    consumer_pid: str | None = None,
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``source -> target`` is in the table."""
    if not is_allowed(source, target, sender, message):
        raise InvalidTransitionError(
            process="contract negotiation",
            from_state=None if source is None else source.value,
            to_state=target.value,
            sender=sender.value,
            message=message.value,
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
        )
