"""Contract negotiation messages of DSP 2025-1 (offers and agreements stay compact ODRL
dicts: the policy engine owns their meaning, we check their shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from connectors.dsp import validation as v
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.message_base import CodeMessage, Json, Message, PidsMessage, _head, _pids
from connectors.dsp.vocabulary import (
    MessageType,
    NegotiationEventType,
    NegotiationState,
    OdrlType,
)


@dataclass(frozen=True, slots=True)
class ContractRequestMessage(Message):
    """Consumer -> provider: start a negotiation (no providerPid) or counter an offer."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_REQUEST
    consumer_pid: str
    offer: Json
    provider_pid: str | None = None
    callback_address: str | None = None

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        doc["offer"] = dict(self.offer)
        if self.callback_address is not None:
            doc["callbackAddress"] = self.callback_address
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        provider_pid = v.optional_str(doc, "providerPid", t)
        callback = v.optional_str(doc, "callbackAddress", t)
        if (provider_pid is None) == (callback is None):
            raise InvalidMessageError(
                f"{t} carries a callbackAddress when it starts a negotiation and a providerPid "
                "otherwise, never both"
            )
        offer = v.check_policy(
            doc.get("offer"),
            f"{t}.offer",
            odrl_type=OdrlType.OFFER,
            require_target=provider_pid is None,
        )
        return cls(
            consumer_pid=v.require_str(doc, "consumerPid", t),
            offer=v.with_context(offer, v.extra_contexts(doc)),
            provider_pid=provider_pid,
            callback_address=callback,
        )


@dataclass(frozen=True, slots=True)
class ContractOfferMessage(Message):
    """Provider -> consumer: start a negotiation (no consumerPid) or counter a request."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_OFFER
    provider_pid: str
    offer: Json
    consumer_pid: str | None = None
    callback_address: str | None = None

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        doc["offer"] = dict(self.offer)
        if self.callback_address is not None:
            doc["callbackAddress"] = self.callback_address
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        consumer_pid = v.optional_str(doc, "consumerPid", t)
        callback = v.optional_str(doc, "callbackAddress", t)
        if (consumer_pid is None) == (callback is None):
            raise InvalidMessageError(
                f"{t} carries a callbackAddress when it starts a negotiation and a consumerPid "
                "otherwise, never both"
            )
        offer = v.check_policy(
            doc.get("offer"), f"{t}.offer", odrl_type=OdrlType.OFFER, require_target=True
        )
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            offer=v.with_context(offer, v.extra_contexts(doc)),
            consumer_pid=consumer_pid,
            callback_address=callback,
        )


@dataclass(frozen=True, slots=True)
class ContractAgreementMessage(Message):
    """Provider -> consumer: the complete ODRL Agreement (target, assigner, assignee, timestamp)."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_AGREEMENT
    provider_pid: str
    consumer_pid: str
    agreement: Json

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        doc["agreement"] = dict(self.agreement)
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        what = f"{t}.agreement"
        agreement = v.check_policy(
            doc.get("agreement"), what, odrl_type=OdrlType.AGREEMENT, require_target=True
        )
        v.require_str(agreement, "assigner", what)
        v.require_str(agreement, "assignee", what)
        ts = v.require_str(agreement, "timestamp", what)
        from connectors.dsp.timestamps import parse_xsd_datetime

        if parse_xsd_datetime(ts) is None:
            raise InvalidMessageError(f"{what}.timestamp {ts!r} is not an xsd:dateTime")
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            agreement=v.with_context(agreement, v.extra_contexts(doc)),
        )


@dataclass(frozen=True, slots=True)
class ContractAgreementVerificationMessage(PidsMessage):
    """Consumer -> provider: the consumer verified the agreement."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_AGREEMENT_VERIFICATION


@dataclass(frozen=True, slots=True)
class ContractNegotiationEventMessage(Message):
    """ACCEPTED (consumer -> provider) or FINALIZED (provider -> consumer)."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_NEGOTIATION_EVENT
    provider_pid: str
    consumer_pid: str
    event_type: NegotiationEventType

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        doc["eventType"] = self.event_type.value
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        raw = v.compact_type(v.require_str(doc, "eventType", t))
        try:
            event = NegotiationEventType(raw)
        except ValueError:
            raise InvalidMessageError(
                f"{t}.eventType must be ACCEPTED or FINALIZED, got {raw!r}"
            ) from None
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            event_type=event,
        )


@dataclass(frozen=True, slots=True)
class ContractNegotiationTerminationMessage(CodeMessage):
    """Either side ends the negotiation; ``code`` and ``reason`` say why."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_NEGOTIATION_TERMINATION


@dataclass(frozen=True, slots=True)
class ContractNegotiation(Message):
    """The ACK: a negotiation's pids and current state."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_NEGOTIATION
    provider_pid: str
    consumer_pid: str
    state: NegotiationState

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        raw = v.compact_type(v.require_str(doc, "state", t))
        try:
            state = NegotiationState(raw)
        except ValueError:
            raise InvalidMessageError(f"{t}.state {raw!r} is not a negotiation state") from None
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            state=state,
        )


@dataclass(frozen=True, slots=True)
class ContractNegotiationError(CodeMessage):
    """The ERROR answer of the negotiation endpoints."""

    TYPE: ClassVar[MessageType] = MessageType.CONTRACT_NEGOTIATION_ERROR
