"""Provider and consumer contract-negotiation machines (sans I/O).

Each step takes the verified caller, a parsed message and the current entity (looked up
by the binding: by pid from the path, or for an initial request by the caller's
consumerPid) and returns an :class:`~connectors.dsp.outcome.Outcome`. Nothing here reads
a clock, a database or the network except through what is injected.

Automatic progress: the provider agrees as soon as the contract policy is satisfied and
finalises as soon as the consumer verifies; the consumer verifies any agreement that
matches its offer. A replayed message (already applied) changes nothing and gets the
same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.dsp import negotiation as n
from connectors.dsp.errors import InvalidMessageError, ProcessNotFoundError
from connectors.dsp.messages import (
    ContractNegotiation,
    ContractNegotiationTerminationMessage,
    Message,
)
from connectors.dsp.negotiation import ContractNegotiationEntity, ErrorDetail, NegotiationMessage
from connectors.dsp.outcome import Outcome, Outgoing, ProcessKind, urn_uuid
from connectors.dsp.policy import (
    Caller,
    PolicyNormaliser,
    structural_normaliser,
)
from connectors.dsp.vocabulary import (
    ErrorCode,
    NegotiationState,
    Path,
    Role,
    path_for,
)

S = NegotiationState
M = NegotiationMessage
NegotiationOutcome = Outcome[ContractNegotiationEntity]


@dataclass(frozen=True, slots=True)
class ResolvedOffer:
    """An offer of ours found by its id: the dataset it is for and its policy (no target)."""

    offer_id: str
    dataset_id: str
    policy: dict[str, Any]
    contract_definition_id: str | None = None
    #: the dataset's asset as read in the resolving transaction (spares the policy
    #: check a second read); None where the resolver has no asset at hand
    asset: Any = None


class OfferResolver(Protocol):
    """Find the offer ``caller`` names (``offer.@id``); None if we never made it or the
    caller may not see it (its access policy is re-checked, not just the catalog's say)."""

    def __call__(self, offer_id: str, caller: Caller) -> ResolvedOffer | None: ...


def ack(entity: ContractNegotiationEntity) -> ContractNegotiation:
    """The ContractNegotiation ACK body for ``entity``."""
    return ContractNegotiation(
        provider_pid=entity.provider_pid or "",
        consumer_pid=entity.consumer_pid or "",
        state=entity.state,
    )


def owned(
    caller: Caller, current: ContractNegotiationEntity | None, role: Role, pid: str
) -> ContractNegotiationEntity:
    """The entity if it exists, is ours in ``role`` and the caller is its peer; else 404."""
    if (
        current is None
        or current.role is not role
        or current.counter_party_id != caller.participant_id
    ):
        raise ProcessNotFoundError(
            f"no contract negotiation {pid} for this participant",
            **{"provider_pid" if role is Role.PROVIDER else "consumer_pid": pid},
        )
    return current


def check_pids(
    entity: ContractNegotiationEntity, provider_pid: str | None, consumer_pid: str | None
) -> None:
    if provider_pid is not None and entity.provider_pid not in (None, provider_pid):
        raise InvalidMessageError(
            f"providerPid {provider_pid} does not match this negotiation",
            provider_pid=entity.provider_pid,
            consumer_pid=entity.consumer_pid,
        )
    if consumer_pid is not None and entity.consumer_pid not in (None, consumer_pid):
        raise InvalidMessageError(
            f"consumerPid {consumer_pid} does not match this negotiation",
            provider_pid=entity.provider_pid,
            consumer_pid=entity.consumer_pid,
        )


class NegotiationMachineBase:
    role: Role

    def __init__(
        self,
        *,
        participant_id: str,
        clock: Callable[[], datetime],
        normaliser: PolicyNormaliser = structural_normaliser,
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        self.participant_id = participant_id
        self.clock = clock
        self.normaliser = normaliser
        self.new_id = new_id

    def _out(
        self, entity: ContractNegotiationEntity, message: Message, template: str, pid: str | None
    ) -> Outgoing:
        path = path_for(template, pid=pid) if pid is not None else template
        return Outgoing(
            message=message,
            address=entity.counter_party_address,
            path=path,
            recipient_id=entity.counter_party_id,
            process_kind=ProcessKind.NEGOTIATION,
            process_id=entity.id,
        )

    def _termination_out(self, entity: ContractNegotiationEntity, detail: ErrorDetail) -> Outgoing:
        msg = ContractNegotiationTerminationMessage(
            provider_pid=entity.provider_pid or "",
            consumer_pid=entity.consumer_pid or "",
            code=detail.code,
            reason=detail.reasons,
        )
        other = entity.provider_pid if self.role is Role.CONSUMER else entity.consumer_pid
        return self._out(entity, msg, Path.NEGOTIATION_TERMINATION, other)

    def terminate(
        self, entity: ContractNegotiationEntity, detail: ErrorDetail
    ) -> NegotiationOutcome:
        """Local command: end a negotiation and tell the counter-party why.

        Raises:
            InvalidTransitionError: the negotiation is already FINALIZED or TERMINATED.
        """
        ended = n.transition(
            entity,
            S.TERMINATED,
            sender=self.role,
            message=M.TERMINATION,
            now=self.clock(),
            error=detail,
        )
        out: tuple[Outgoing, ...] = ()
        if entity.provider_pid and entity.consumer_pid:  # the other side knows this process
            out = (self._termination_out(ended, detail),)
        return Outcome(ended, ack(ended), out)

    def on_delivery_failed(
        self, entity: ContractNegotiationEntity, reason: str
    ) -> NegotiationOutcome:
        """A message could not be delivered after every retry: end the negotiation locally."""
        if entity.is_terminal:
            return Outcome(None, ack(entity), replayed=True)
        detail = ErrorDetail(ErrorCode.DELIVERY_FAILED, (reason,))
        ended = n.transition(
            entity,
            S.TERMINATED,
            sender=self.role,
            message=M.TERMINATION,
            now=self.clock(),
            error=detail,
        )
        return Outcome(ended, ack(ended))

    def on_termination(
        self,
        caller: Caller,
        msg: ContractNegotiationTerminationMessage,
        current: ContractNegotiationEntity | None,
    ) -> NegotiationOutcome:
        """The counter-party ends the negotiation; its code and reasons are kept."""
        mine = msg.provider_pid if self.role is Role.PROVIDER else msg.consumer_pid
        entity = owned(caller, current, self.role, mine)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if entity.state is S.TERMINATED:
            return Outcome(None, ack(entity), replayed=True)
        detail = ErrorDetail(msg.code or ErrorCode.OPERATOR, tuple(str(r) for r in msg.reason))
        ended = n.transition(
            entity,
            S.TERMINATED,
            sender=self.role.other,
            message=M.TERMINATION,
            now=self.clock(),
            error=detail,
            provider_pid=entity.provider_pid or msg.provider_pid,
            consumer_pid=entity.consumer_pid or msg.consumer_pid,
        )
        return Outcome(ended, ack(ended))

    def describe(
        self, caller: Caller, current: ContractNegotiationEntity | None, pid: str
    ) -> ContractNegotiation:
        """``GET /negotiations/:pid``: the state, only to the counter-party (404 otherwise)."""
        return ack(owned(caller, current, self.role, pid))
