"""What a protocol machine returns: the new entity, the answer, the messages to send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.messages import Message

E = TypeVar("E")


class ProcessKind(StrEnum):
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to deliver through the outbox to ``address + path`` (the counter-party).

    ``process_id`` is our local pid, so delivery results can be fed back to the machine
    (``on_acknowledged`` / ``on_delivery_failed``).
    """

    message: Message
    address: str
    path: str
    recipient_id: str
    process_kind: ProcessKind
    process_id: str

    @property
    def url(self) -> str:
        return self.address.rstrip("/") + self.path


@dataclass(frozen=True, slots=True)
class Outcome(Generic[E]):
    """Result of one machine step.

    Attributes:
        entity: the entity to persist, or None when nothing changed (a replay).
        response: the ACK body (ContractNegotiation / TransferProcess), if the step answers one.
        outgoing: messages to enqueue in the same transaction as ``entity``.
        created: a new process was created (the HTTP binding answers 201).
        agreement: a new agreement to store with the entity.
        replayed: the message had already been applied; nothing to write.
    """

    entity: E | None
    response: Message | None = None
    outgoing: tuple[Outgoing, ...] = ()
    created: bool = False
    agreement: ContractAgreement | None = None
    replayed: bool = False


def urn_uuid() -> str:
    """A fresh process/agreement id in the ``urn:uuid:`` form the spec suggests."""
    return f"urn:uuid:{uuid.uuid4()}"
