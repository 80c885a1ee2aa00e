"""Base of every DSP message: compact JSON-LD with the DSP context, parse and build.

Every message is a frozen dataclass with ``to_json()`` (ready for the wire) and
``from_json(doc)`` (validates, then builds; raises
:class:`~connectors.dsp.errors.InvalidMessageError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from connectors.dsp import validation as v
from connectors.dsp.vocabulary import (
    DSP_CONTEXT,
    MessageType,
)

Json = dict[str, Any]


def _head(msg_type: str) -> Json:
    return {"@context": list(DSP_CONTEXT), "@type": msg_type}


def _pids(doc: Json, provider_pid: str | None, consumer_pid: str | None) -> Json:
    if provider_pid is not None:
        doc["providerPid"] = provider_pid
    if consumer_pid is not None:
        doc["consumerPid"] = consumer_pid
    return doc


def _code_reason(doc: Json, code: str | None, reason: tuple[Any, ...]) -> Json:
    if code is not None:
        doc["code"] = code
    if reason:
        doc["reason"] = list(reason)
    return doc


class Message:
    """Base of the DSP messages; subclasses set ``TYPE``."""

    TYPE: ClassVar[MessageType]

    def to_json(self) -> Json:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @classmethod
    def from_json(cls, doc: Any) -> Self:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @classmethod
    def _open(cls, doc: Any) -> Mapping[str, Any]:
        doc = v.require_object(doc, cls.TYPE.value)
        v.check_type(doc, cls.TYPE.value)
        v.check_context(doc, cls.TYPE.value)
        return doc


@dataclass(frozen=True, slots=True)
class PidsMessage(Message):
    """A message that carries only the two process ids."""

    provider_pid: str
    consumer_pid: str

    def to_json(self) -> Json:
        return _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid)

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
        )


@dataclass(frozen=True, slots=True)
class CodeMessage(Message):
    """A message with the process ids and an optional code and reasons (terminations,
    suspensions, errors)."""

    provider_pid: str
    consumer_pid: str
    code: str | None = None
    reason: tuple[Any, ...] = ()

    def to_json(self) -> Json:
        return _code_reason(
            _pids(_head(self.TYPE), self.provider_pid, self.consumer_pid), self.code, self.reason
        )

    @classmethod
    def from_json(cls, doc: Any) -> Self:
        doc = cls._open(doc)
        t = cls.TYPE.value
        return cls(
            provider_pid=v.require_str(doc, "providerPid", t),
            consumer_pid=v.require_str(doc, "consumerPid", t),
            code=v.optional_str(doc, "code", t),
            reason=v.reason_list(doc, t),
        )
