"""The provider's contract-negotiation machine (sans I/O): answers requests, agrees when
the contract policy allows it and the requested terms are the published ones, finalises
when the consumer verifies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.dsp import negotiation as n
from connectors.dsp.agreement import (
    ContractAgreement,
    agreement_record,
    build_agreement,
)
from connectors.dsp.errors import InvalidMessageError, RequestRejectedError
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
    OfferResolver,
    ResolvedOffer,
    ack,
    check_pids,
    owned,
)
from connectors.dsp.outcome import Outcome, urn_uuid
from connectors.dsp.policy import (
    Caller,
    PolicyChecker,
    PolicyNormaliser,
    check_policy,
    same_terms,
    structural_normaliser,
)
from connectors.dsp.validation import check_callback_address
from connectors.dsp.vocabulary import (
    ErrorCode,
    NegotiationEventType,
    NegotiationState,
    Path,
    PolicyScope,
    Role,
)

S = NegotiationState
M = NegotiationMessage


class ProviderNegotiationMachine(NegotiationMachineBase):
    """The provider's side: answers requests, agrees when the contract policy allows it."""

    role = Role.PROVIDER

    def __init__(
        self,
        *,
        participant_id: str,
        offers: OfferResolver,
        checker: PolicyChecker,
        clock: Callable[[], datetime],
        protocol_address: str = "",
        normaliser: PolicyNormaliser = structural_normaliser,
        new_id: Callable[[], str] = urn_uuid,
    ) -> None:
        super().__init__(
            participant_id=participant_id, clock=clock, normaliser=normaliser, new_id=new_id
        )
        self.offers = offers
        self.checker = checker
        self.protocol_address = protocol_address

    def handle(
        self, caller: Caller, msg: Message, current: ContractNegotiationEntity | None
    ) -> NegotiationOutcome:
        """Dispatch a consumer message (the binding has already parsed and validated it)."""
        if isinstance(msg, ContractRequestMessage):
            return self.on_request(caller, msg, current)
        if isinstance(msg, ContractNegotiationEventMessage):
            return self.on_event(caller, msg, current)
        if isinstance(msg, ContractAgreementVerificationMessage):
            return self.on_verification(caller, msg, current)
        if isinstance(msg, ContractNegotiationTerminationMessage):
            return self.on_termination(caller, msg, current)
        raise InvalidMessageError(f"a provider does not accept {msg.TYPE.value}")

    def on_request(
        self, caller: Caller, msg: ContractRequestMessage, current: ContractNegotiationEntity | None
    ) -> NegotiationOutcome:
        """Initial request (no providerPid; ``current`` = the caller's negotiation with that
        consumerPid, if any) or a counter-request on an OFFERED negotiation."""
        now = self.clock()
        if msg.provider_pid is None:
            if current is not None:  # same consumer, same consumerPid: the request is a replay
                owned(caller, current, Role.PROVIDER, current.id)
                return Outcome(None, ack(replace(current, state=S.REQUESTED)), replayed=True)
            resolved = self.offers(str(msg.offer["@id"]), caller)
            if resolved is None:
                raise RequestRejectedError(
                    f"offer {msg.offer['@id']} is not one of ours",
                    code=ErrorCode.UNKNOWN_OFFER,
                    consumer_pid=msg.consumer_pid,
                )
            if msg.offer.get("target", resolved.dataset_id) != resolved.dataset_id:
                raise RequestRejectedError(
                    f"offer {resolved.offer_id} is for dataset {resolved.dataset_id}, "
                    f"not {msg.offer.get('target')}",
                    code=ErrorCode.OFFER_MISMATCH,
                    consumer_pid=msg.consumer_pid,
                )
            n.check(None, S.REQUESTED, sender=Role.CONSUMER, message=M.REQUEST)
            check_callback_address(msg.callback_address or "", consumer_pid=msg.consumer_pid)
            pid = self.new_id()
            entity = ContractNegotiationEntity(
                id=pid,
                role=Role.PROVIDER,
                state=S.REQUESTED,
                counter_party_id=caller.participant_id,
                counter_party_address=msg.callback_address or "",
                created_at=now,
                updated_at=now,
                consumer_pid=msg.consumer_pid,
                provider_pid=pid,
                dataset_id=resolved.dataset_id,
                offer=dict(msg.offer),
                contract_definition_id=resolved.contract_definition_id,
            )
            return self._decide(caller, entity, msg.offer, resolved.policy, created=True,
                                asset=resolved.asset)
        entity = owned(caller, current, Role.PROVIDER, msg.provider_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if (
            entity.state in (S.REQUESTED, S.AGREED)
            and entity.offer is not None
            and same_terms(entity.offer, msg.offer, self.normaliser)
        ):
            return Outcome(None, ack(replace(entity, state=S.REQUESTED)), replayed=True)
        our_offer = entity.offer
        entity = n.transition(
            entity,
            S.REQUESTED,
            sender=Role.CONSUMER,
            message=M.REQUEST,
            now=now,
            offer=dict(msg.offer),
            counter_party_address=msg.callback_address or entity.counter_party_address,
        )
        return self._decide(caller, entity, msg.offer, our_offer or {}, created=False)

    def on_event(
        self,
        caller: Caller,
        msg: ContractNegotiationEventMessage,
        current: ContractNegotiationEntity | None,
    ) -> NegotiationOutcome:
        """ACCEPTED from the consumer (then agree); FINALIZED from a consumer is invalid."""
        entity = owned(caller, current, Role.PROVIDER, msg.provider_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if msg.event_type is NegotiationEventType.FINALIZED:
            n.check(
                entity.state,
                S.FINALIZED,
                sender=Role.CONSUMER,
                message=M.FINALIZED,
                provider_pid=entity.provider_pid,
                consumer_pid=entity.consumer_pid,
            )
        if entity.state in (S.ACCEPTED, S.AGREED) and entity.extra.get("accepted"):
            return Outcome(None, ack(replace(entity, state=S.ACCEPTED)), replayed=True)
        offer = entity.offer or {}
        accepted = n.transition(
            entity,
            S.ACCEPTED,
            sender=Role.CONSUMER,
            message=M.ACCEPTED,
            now=self.clock(),
            extra={**entity.extra, "accepted": True},
        )
        return self._decide(caller, accepted, offer, offer, created=False)

    def on_verification(
        self,
        caller: Caller,
        msg: ContractAgreementVerificationMessage,
        current: ContractNegotiationEntity | None,
    ) -> NegotiationOutcome:
        """The consumer verified: VERIFIED, then finalise at once (FINALIZED event out)."""
        entity = owned(caller, current, Role.PROVIDER, msg.provider_pid)
        check_pids(entity, msg.provider_pid, msg.consumer_pid)
        if entity.state in (S.VERIFIED, S.FINALIZED):
            return Outcome(None, ack(replace(entity, state=S.VERIFIED)), replayed=True)
        now = self.clock()
        verified = n.transition(
            entity, S.VERIFIED, sender=Role.CONSUMER, message=M.VERIFICATION, now=now
        )
        final = n.transition(
            verified, S.FINALIZED, sender=Role.PROVIDER, message=M.FINALIZED, now=now
        )
        event = ContractNegotiationEventMessage(
            provider_pid=final.provider_pid or "",
            consumer_pid=final.consumer_pid or "",
            event_type=NegotiationEventType.FINALIZED,
        )
        out = self._out(final, event, Path.NEGOTIATION_EVENTS, final.consumer_pid)
        return Outcome(final, ack(verified), (out,))

    def offer(
        self, *, consumer_id: str, callback_address: str, resolved: ResolvedOffer
    ) -> NegotiationOutcome:
        """Local command: start a negotiation with an offer (consumerPid comes with the ACK)."""
        now = self.clock()
        n.check(None, S.OFFERED, sender=Role.PROVIDER, message=M.OFFER)
        pid = self.new_id()
        offer = {
            "@id": resolved.offer_id,
            "@type": "Offer",
            "target": resolved.dataset_id,
            **{k: v for k, v in resolved.policy.items() if k not in ("@id", "@type")},
        }
        entity = ContractNegotiationEntity(
            id=pid,
            role=Role.PROVIDER,
            state=S.OFFERED,
            counter_party_id=consumer_id,
            counter_party_address=callback_address,
            created_at=now,
            updated_at=now,
            provider_pid=pid,
            dataset_id=resolved.dataset_id,
            offer=offer,
            contract_definition_id=resolved.contract_definition_id,
        )
        msg = ContractOfferMessage(
            provider_pid=pid, offer=offer, callback_address=self.protocol_address
        )
        return Outcome(
            entity,
            ack(entity),
            (self._out(entity, msg, Path.NEGOTIATIONS_OFFERS, None),),
            created=True,
        )

    def on_acknowledged(
        self, entity: ContractNegotiationEntity, response: Mapping[str, Any]
    ) -> NegotiationOutcome:
        """Delivery of our initial offer succeeded: learn the consumerPid from the ACK."""
        if entity.consumer_pid is not None:
            return Outcome(None, replayed=True)
        answer = ContractNegotiation.from_json(response)
        return Outcome(replace(entity, consumer_pid=answer.consumer_pid, updated_at=self.clock()))

    # ------------------------------------------------------------------ decision

    def _decide(
        self,
        caller: Caller,
        entity: ContractNegotiationEntity,
        consumer_offer: Mapping[str, Any],
        our_offer: Mapping[str, Any],
        *,
        created: bool,
        asset: Any = None,
    ) -> NegotiationOutcome:
        """Agree (policy allows, terms match) or terminate with the reasons; ACK the receipt."""
        received = entity
        if not our_offer or not same_terms(consumer_offer, our_offer, self.normaliser):
            detail = ErrorDetail(
                ErrorCode.OFFER_MISMATCH,
                (
                    "the requested terms differ from the offer in our catalog; "
                    "request the offer exactly as published",
                ),
            )
            return self._end(received, detail, created)
        decision = check_policy(
            self.checker,
            our_offer,
            scope=PolicyScope.NEGOTIATION,
            caller=caller,
            context={
                "dataset_id": entity.dataset_id,
                "negotiation_id": entity.id,
                "provider_id": self.participant_id,
                **({"asset": asset} if asset is not None else {}),
            },
        )
        if not decision.allowed:
            return self._end(
                received, ErrorDetail(ErrorCode.POLICY_DENIED, decision.reasons), created
            )
        now = self.clock()
        agreement_id = self.new_id()
        agreement = build_agreement(
            our_offer,
            agreement_id=agreement_id,
            target=entity.dataset_id or "",
            assigner=self.participant_id,
            assignee=caller.participant_id,
            timestamp=now,
        )
        agreed = n.transition(
            entity,
            S.AGREED,
            sender=Role.PROVIDER,
            message=M.AGREEMENT,
            now=now,
            agreement_id=agreement_id,
        )
        msg = ContractAgreementMessage(
            provider_pid=agreed.provider_pid or "",
            consumer_pid=agreed.consumer_pid or "",
            agreement=agreement,
        )
        record: ContractAgreement = agreement_record(agreement, negotiation_id=agreed.id)
        out = self._out(agreed, msg, Path.NEGOTIATION_AGREEMENT, agreed.consumer_pid)
        return Outcome(agreed, ack(received), (out,), created=created, agreement=record)

    def _end(
        self, received: ContractNegotiationEntity, detail: ErrorDetail, created: bool
    ) -> NegotiationOutcome:
        ended = n.transition(
            received,
            S.TERMINATED,
            sender=Role.PROVIDER,
            message=M.TERMINATION,
            now=self.clock(),
            error=detail,
        )
        return Outcome(
            ended, ack(received), (self._termination_out(ended, detail),), created=created
        )
