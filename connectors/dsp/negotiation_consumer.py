"""The consumer's contract-negotiation machine (sans I/O): requests offers, verifies
agreements that match them, terminates (saying why) on any that does not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.dsp import negotiation as n
from connectors.dsp.agreement import (
    agreement_problems,
    agreement_record,
)
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    Message,
)
from connectors.dsp.negotiation import ContractNegotiationEntity, ErrorDetail, NegotiationMessage
from connectors.dsp.negotiation_handlers import (
    NegotiationMachineBase,
    NegotiationOutcome,
    ack,
    check_pids,
    owned,
)
from connectors.dsp.outcome import Outcome, urn_uuid
from connectors.dsp.policy import (
    Caller,
    PolicyNormaliser,
    structural_normaliser,
)
from connectors.dsp.vocabulary import (
    ErrorCode,
    NegotiationEventType,
    NegotiationState,
    Path,
    Role,
)

S = NegotiationState
M = NegotiationMessage


class ConsumerNegotiationMachine(NegotiationMachineBase):
    """The consumer's side: requests offers, verifies matching agreements."""

    role = Role.CONSUMER

    def __init__(
        self,
        *,
        participant_id: str,
        callback_address: str,
        clock: Callable[[], datetime],
        normaliser: PolicyNormaliser = structural_normaliser,
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        super().__init__(
            participant_id=participant_id, clock=clock, normaliser=normaliser, new_id=new_id
        )
        self.callback_address = callback_address

    def handle(
        self, caller: Caller, msg: Message, current: ContractNegotiationEntity | None
    ) -> NegotiationOutcome:
        """Dispatch a provider message arriving on a consumer callback endpoint."""
        if isinstance(msg, ContractOfferMessage):
            return self.on_offer(caller, msg, current)
        if isinstance(msg, ContractAgreementMessage):
            return self.on_agreement(caller, msg, current)
        if isinstance(msg, ContractNegotiationEventMessage):
            return self.on_event(caller, msg, current)
        if isinstance(msg, ContractNegotiationTerminationMessage):
            return self.on_termination(caller, msg, current)
        raise InvalidMessageError(f"a consumer does not accept {msg.TYPE.value}")

    def request(
        self, *, provider_id: str, provider_address: str, offer: Mapping[str, Any]
    ) -> NegotiationOutcome:
        """Local command: ask ``provider_id`` for ``offer`` (an Offer with @id and target)."""
        if not isinstance(offer.get("@id"), str) or not isinstance(offer.get("target"), str):
            raise InvalidMessageError("the offer to request needs an @id and a target (dataset id)")
        now = self.clock()
        n.check(None, S.REQUESTED, sender=Role.CONSUMER, message=M.REQUEST)
        pid = self.new_id()
        entity = ContractNegotiationEntity(
            id=pid,
            role=Role.CONSUMER,
            state=S.REQUESTED,
            counter_party_id=provider_id,
            counter_party_address=provider_address,
            created_at=now,
            updated_at=now,
            consumer_pid=pid,
            dataset_id=str(offer["target"]),
            offer=dict(offer),
        )
        msg = ContractRequestMessage(
            consumer_pid=pid, offer=dict(offer), callback_address=self.callback_address
        )
        return Outcome(
            entity,
            ack(entity),
            (self._out(entity, msg, Path.NEGOTIATIONS_REQUEST, None),),
            created=True,
        )

    def on_acknowledged(
        self, entity: ContractNegotiationEntity, response: Mapping[str, Any]
    ) -> NegotiationOutcome:
        """Our initial request was ACKed: learn the providerPid (may already be known)."""
        if entity.provider_pid is not None:
            return Outcome(None, replayed=True)
        answer = ContractNegotiation.from_json(response)
        return Outcome(replace(entity, provider_pid=answer.provider_pid, updated_at=self.clock()))

    def on_offer(
        self, caller: Caller, msg: ContractOfferMessage, current: ContractNegotiationEntity | None
    ) -> NegotiationOutcome:
        """An initial offer (new negotiation, 201) or a counter-offer to our request."""
        now = self.clock()
        if msg.consumer_pid is None:
            if current is not None:
                owned(caller, current, Role.CONSUMER, current.id)
                return Outcome(None, ack(replace(current, state=S.OFFERED)), replayed=True)
            n.check(None, S.OFFERED, sender=Role.PROVIDER, message=M.OFFER)
            pid = self.new_id()
            entity = ContractNegotiationEntity(
                id=pid,
                role=Role.CONSUMER,
                state=S.OFFERED,
                counter_party_id=caller.participant_id,
                counter_party_address=msg.callback_address or "",
                created_at=now,
                updated_at=now,
                consumer_pid=pid,
                provider_pid=msg.provider_pid,
                dataset_id=str(msg.offer.get("target")),
                offer=dict(msg.offer),
            )
            return Outcome(entity, ack(entity), created=True)
        entity = owned(caller, current, Role.CONSUMER, msg.consumer_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if entity.state is S.OFFERED and entity.offer == msg.offer:
            return Outcome(None, ack(entity), replayed=True)
        offered = n.transition(
            entity,
            S.OFFERED,
            sender=Role.PROVIDER,
            message=M.OFFER,
            now=now,
            offer=dict(msg.offer),
            provider_pid=msg.provider_pid,
        )
        return Outcome(offered, ack(offered))

    def accept(self, entity: ContractNegotiationEntity) -> NegotiationOutcome:
        """Local command: accept the provider's offer (ACCEPTED event out)."""
        accepted = n.transition(
            entity, S.ACCEPTED, sender=Role.CONSUMER, message=M.ACCEPTED, now=self.clock()
        )
        event = ContractNegotiationEventMessage(
            provider_pid=accepted.provider_pid or "",
            consumer_pid=accepted.consumer_pid or "",
            event_type=NegotiationEventType.ACCEPTED,
        )
        return Outcome(
            accepted,
            ack(accepted),
            (self._out(accepted, event, Path.NEGOTIATION_EVENTS, accepted.provider_pid),),
        )

    def counter(
        self, entity: ContractNegotiationEntity, offer: Mapping[str, Any]
    ) -> NegotiationOutcome:
        """Local command: answer an offer with our own (counter) request."""
        requested = n.transition(
            entity,
            S.REQUESTED,
            sender=Role.CONSUMER,
            message=M.REQUEST,
            now=self.clock(),
            offer=dict(offer),
        )
        msg = ContractRequestMessage(
            consumer_pid=requested.id, offer=dict(offer), provider_pid=requested.provider_pid
        )
        return Outcome(
            requested,
            ack(requested),
            (self._out(requested, msg, Path.NEGOTIATION_REQUEST, requested.provider_pid),),
        )

    def on_agreement(
        self,
        caller: Caller,
        msg: ContractAgreementMessage,
        current: ContractNegotiationEntity | None,
    ) -> NegotiationOutcome:
        """Check the agreement against our offer; verify it, or terminate saying why."""
        entity = owned(caller, current, Role.CONSUMER, msg.consumer_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if entity.agreement_id == msg.agreement.get("@id") and entity.state in (
            S.AGREED,
            S.VERIFIED,
            S.FINALIZED,
        ):
            return Outcome(None, ack(replace(entity, state=S.AGREED)), replayed=True)
        now = self.clock()
        entity = replace(entity, provider_pid=entity.provider_pid or msg.provider_pid)
        problems = agreement_problems(
            msg.agreement,
            offer=entity.offer,
            expected_target=entity.dataset_id,
            provider_id=caller.participant_id,
            consumer_id=self.participant_id,
            normaliser=self.normaliser,
        )
        if problems:
            n.check(
                entity.state,
                S.AGREED,
                sender=Role.PROVIDER,
                message=M.AGREEMENT,
                provider_pid=entity.provider_pid,
                consumer_pid=entity.consumer_pid,
            )
            detail = ErrorDetail(ErrorCode.AGREEMENT_MISMATCH, tuple(problems))
            ended = n.transition(
                entity,
                S.TERMINATED,
                sender=Role.CONSUMER,
                message=M.TERMINATION,
                now=now,
                error=detail,
            )
            return Outcome(ended, ack(ended), (self._termination_out(ended, detail),))
        agreed = n.transition(
            entity,
            S.AGREED,
            sender=Role.PROVIDER,
            message=M.AGREEMENT,
            now=now,
            agreement_id=str(msg.agreement["@id"]),
        )
        verified = n.transition(
            agreed, S.VERIFIED, sender=Role.CONSUMER, message=M.VERIFICATION, now=now
        )
        verification = ContractAgreementVerificationMessage(
            provider_pid=verified.provider_pid or "", consumer_pid=verified.consumer_pid or ""
        )
        out = self._out(
            verified, verification, Path.NEGOTIATION_VERIFICATION, verified.provider_pid
        )
        return Outcome(
            verified,
            ack(agreed),
            (out,),
            agreement=agreement_record(msg.agreement, negotiation_id=entity.id),
        )

    def on_event(
        self,
        caller: Caller,
        msg: ContractNegotiationEventMessage,
        current: ContractNegotiationEntity | None,
    ) -> NegotiationOutcome:
        """FINALIZED from the provider; ACCEPTED from a provider is invalid."""
        entity = owned(caller, current, Role.CONSUMER, msg.consumer_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if msg.event_type is NegotiationEventType.ACCEPTED:
            n.check(
                entity.state,
                S.ACCEPTED,
                sender=Role.PROVIDER,
                message=M.ACCEPTED,
                provider_pid=entity.provider_pid,
                consumer_pid=entity.consumer_pid,
            )
        if entity.state is S.FINALIZED:
            return Outcome(None, ack(entity), replayed=True)
        final = n.transition(
            entity, S.FINALIZED, sender=Role.PROVIDER, message=M.FINALIZED, now=self.clock()
        )
        return Outcome(final, ack(final))
