"""Transfer process messages of DSP 2025-1, with DataAddress and EndpointProperty."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from connectors.dsp import validation as v
from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.message_base import CodeMessage, Json, Message, PidsMessage, _head, _pids
from connectors.dsp.vocabulary import (
    MessageType,
    TransferState,
)


@dataclass(frozen=True, slots=True)
class EndpointProperty:
    """One ``name``/``value`` pair of a DataAddress (e.g. authorization, authType)."""

    name: str
    value: str

    def to_json(self) -> Json:
        return {
            "@type": MessageType.ENDPOINT_PROPERTY.value,
            "name": self.name,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class DataAddress:
    """Where data is pulled from (provider's TransferStart) or pushed to (consumer's request)."""

    endpoint_type: str
    endpoint: str | None = None
    endpoint_properties: tuple[EndpointProperty, ...] = ()

    def to_json(self) -> Json:
        doc: Json = {"@type": MessageType.DATA_ADDRESS.value, "endpointType": self.endpoint_type}
        if self.endpoint is not None:
            doc["endpoint"] = self.endpoint
        if self.endpoint_properties:
            doc["endpointProperties"] = [p.to_json() for p in self.endpoint_properties]
        return doc

    def property(self, name: str) -> str | None:
        """The value of the endpoint property ``name``, if present."""
        return next((p.value for p in self.endpoint_properties if p.name == name), None)

    @classmethod
    def from_json(cls, doc: Any, what: str = "dataAddress") -> DataAddress:
        doc = v.require_object(doc, what)
        if v.compact_type(doc.get("@type")) != MessageType.DATA_ADDRESS:
            raise InvalidMessageError(f"{what}.@type must be DataAddress")
        props = []
        for i, p in enumerate(v.optional_list(doc, "endpointProperties", what) or ()):
            pw = f"{what}.endpointProperties[{i}]"
            p = v.require_object(p, pw)
            if v.compact_type(p.get("@type")) != MessageType.ENDPOINT_PROPERTY:
                raise InvalidMessageError(f"{pw}.@type must be EndpointProperty")
            props.append(EndpointProperty(v.require_str(p, "name", pw), _str_value(p, pw)))
        return cls(
            endpoint_type=v.require_str(doc, "endpointType", what),
            endpoint=v.optional_str(doc, "endpoint", what),
            endpoint_properties=tuple(props),
        )


def _str_value(p: Mapping[str, Any], what: str) -> str:
    value = p.get("value")
    if not isinstance(value, str):
        raise InvalidMessageError(f"{what}.value must be a string")
    return value


@dataclass(frozen=True, slots=True)
class TransferRequestMessage(Message):
    """Consumer -> provider: start a transfer under an agreement; push carries a dataAddress."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_REQUEST
    consumer_pid: str
    agreement_id: str
    format: str
    callback_address: str
    data_address: DataAddress | None = None

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), None, self.consumer_pid)
        doc.update(
            agreementId=self.agreement_id, format=self.format, callbackAddress=self.callback_address
        )
        if self.data_address is not None:
            doc["dataAddress"] = self.data_address.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        da = doc.get("dataAddress")
        return cls(
            consumer_pid=v.require_str(doc, "consumerPid", t),
            agreement_id=v.require_str(doc, "agreementId", t),
            format=v.require_str(doc, "format", t),
            callback_address=v.require_str(doc, "callbackAddress", t),
            data_address=None if da is None else DataAddress.from_json(da, f"{t}.dataAddress"),
        )


@dataclass(frozen=True, slots=True)
class TransferStartMessage(Message):
    """Provider -> consumer (start, with the pull address) or either side (resume)."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_START
    provider_pid: str
    consumer_pid: str
    data_address: DataAddress | None = None

    def to_json(self) -> Json:
        doc = _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)
        if self.data_address is not None:
            doc["dataAddress"] = self.data_address.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        da = doc.get("dataAddress")
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            data_address=None if da is None else DataAddress.from_json(da, f"{t}.dataAddress"),
        )


@dataclass(frozen=True, slots=True)
class TransferCompletionMessage(PidsMessage):
    """Either side: the transfer has completed."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_COMPLETION


@dataclass(frozen=True, slots=True)
class TransferSuspensionMessage(CodeMessage):
    """Either side: pause the transfer (access stops until resumed)."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_SUSPENSION


@dataclass(frozen=True, slots=True)
class TransferTerminationMessage(CodeMessage):
    """Either side: end the transfer for good."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_TERMINATION


@dataclass(frozen=True, slots=True)
class TransferError(CodeMessage):
    """The ERROR answer of the transfer endpoints."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_ERROR


@dataclass(frozen=True, slots=True)
class TransferProcess(Message):
    """The ACK: a transfer's pids and current state."""

    TYPE: ClassVar[MessageType] = MessageType.TRANSFER_PROCESS
    provider_pid: str
    consumer_pid: str
    state: TransferState

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
            state = TransferState(raw)
        except ValueError:
            raise InvalidMessageError(f"{t}.state {raw!r} is not a transfer state") from None
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            state=state,
        )
