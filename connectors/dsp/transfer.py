"""Transfer process: the entity and its state table (DSP 2025-1).

Same shape as :mod:`connectors.dsp.negotiation`: one table of (message, sender) ->
sources -> target, and one :func:`transition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors.dsp.errors import InvalidTransitionError
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.vocabulary import Role, TransferState

S = TransferState


class TransferMessage(StrEnum):
    """The messages that move a transfer process."""

    REQUEST = "TransferRequestMessage"
    START = "TransferStartMessage"
    SUSPENSION = "TransferSuspensionMessage"
    COMPLETION = "TransferCompletionMessage"
    TERMINATION = "TransferTerminationMessage"


M = TransferMessage
BOTH = (Role.PROVIDER, Role.CONSUMER)


@dataclass(frozen=True, slots=True)
class Rule:
    """``message`` sent by ``sender`` moves a transfer from any of ``sources`` to ``target``."""

    message: TransferMessage
    sender: Role
    sources: frozenset[TransferState | None]
    target: TransferState


# DSP 2025-1 transfer process state machine. The provider starts a requested transfer;
# either side may suspend a started one and resume a suspended one (TransferStartMessage),
# complete a started one, or terminate any non-terminal one.
RULES: tuple[Rule, ...] = (
    Rule(M.REQUEST, Role.CONSUMER, frozenset({None}), S.REQUESTED),
    Rule(M.START, Role.PROVIDER, frozenset({S.REQUESTED, S.SUSPENDED}), S.STARTED),
    Rule(M.START, Role.CONSUMER, frozenset({S.SUSPENDED}), S.STARTED),
    *(Rule(M.SUSPENSION, r, frozenset({S.STARTED}), S.SUSPENDED) for r in BOTH),
    *(Rule(M.COMPLETION, r, frozenset({S.STARTED}), S.COMPLETED) for r in BOTH),
    *(
        Rule(M.TERMINATION, r, frozenset({S.REQUESTED, S.STARTED, S.SUSPENDED}), S.TERMINATED)
        for r in BOTH
    ),
)

BY_MESSAGE: dict[tuple[TransferMessage, Role], Rule] = {(r.message, r.sender): r for r in RULES}
ALLOWED: dict[TransferState | None, frozenset[TransferState]] = {
    src: frozenset(r.target for r in RULES if src in r.sources) for src in (None, *S)
}


def target_of(message: TransferMessage, sender: Role) -> TransferState | None:
    """The state ``message`` from ``sender`` leads to, or None if that sender may never send it."""
    rule = BY_MESSAGE.get((message, sender))
    return None if rule is None else rule.target


def is_allowed(
    source: TransferState | None, target: TransferState, sender: Role, message: TransferMessage
) -> bool:
    """Whether the table permits ``source -> target`` on ``message`` sent by ``sender``."""
    rule = BY_MESSAGE.get((message, sender))
    return rule is not None and rule.target == target and source in rule.sources


@dataclass(frozen=True, slots=True)
class TransferProcessEntity:
    """One transfer process as one side sees it (``id`` is our own pid).

    ``data_address`` is the push destination the consumer gave (provider side) or the pull
    endpoint the provider gave (consumer side), as the DSP DataAddress JSON.
    """

    id: str
    role: Role
    state: TransferState
    counter_party_id: str
    counter_party_address: str
    agreement_id: str
    format: str
    created_at: datetime
    updated_at: datetime
    consumer_pid: str | None = None
    provider_pid: str | None = None
    dataset_id: str | None = None
    data_address: dict[str, Any] | None = None
    error: ErrorDetail | None = None
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.state in (S.COMPLETED, S.TERMINATED)


def check(
    source: TransferState | None,
    target: TransferState,
    *,
    sender: Role,
    message: TransferMessage,
    provider_pid: str | None = None,
    consumer_pid: str | None = None,
) -> None:
    """Raise :class:`InvalidTransitionError` unless ``source -> target`` is in the table."""
    if not is_allowed(source, target, sender, message):
        raise InvalidTransitionError(
            process="transfer process",
            from_state=None if source is None else source.value,
            to_state=target.value,
            sender=sender.value,
            message=message.value,
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
        )


def transition(
    entity: TransferProcessEntity,
    target: TransferState,
    *,
    sender: Role,
    message: TransferMessage,
    now: datetime,
    **changes: Any,
) -> TransferProcessEntity:
    """Move ``entity`` to ``target`` if the table allows it.

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
