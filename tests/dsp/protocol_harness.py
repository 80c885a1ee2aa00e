"""A provider and a consumer wired back to back in memory (tests only).

Delivers each Outgoing the way the HTTP binding will: parse the wire JSON (validating it
against the official schema first), look the process up by the pid in the path or, for
an initial message, by the sender and consumerPid; apply the step; keep the entity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.messages import (
    ContractOfferMessage,
    ContractRequestMessage,
    DataAddress,
    EndpointProperty,
    TransferRequestMessage,
    parse_message,
)
from connectors.dsp.negotiation_consumer import ConsumerNegotiationMachine
from connectors.dsp.negotiation_handlers import ResolvedOffer
from connectors.dsp.negotiation_provider import ProviderNegotiationMachine
from connectors.dsp.outcome import Outcome, Outgoing, ProcessKind
from connectors.dsp.policy import Caller, PolicyDecision
from connectors.dsp.transfer_handlers import (
    ConsumerTransferMachine,
    DataFlowError,
    ProviderTransferMachine,
)
from tests.dsp.schemas import assert_valid

PROVIDER_ID = "did:web:supplier.example"
CONSUMER_ID = "did:web:oem.example"
PROVIDER_URL = "https://supplier.example/dsp"
CONSUMER_URL = "https://oem.example/dsp"
DATASET = "urn:uuid:inspection-results"
POLICY = {
    "@id": "urn:policy:contract",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"}],
        }
    ],
}
OFFER_ID = "urn:offer:1"


def member_checker(policy: Mapping[str, Any], *, scope, caller: Caller, context) -> PolicyDecision:
    """A stand-in for policies.evaluate: the caller must hold a membership claim."""
    if caller.claims.get("membership") is True:
        return PolicyDecision.permit()
    return PolicyDecision.deny(f"{caller.participant_id} holds no dataspace membership ({scope})")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class PullDataFlow:
    fail: str | None = None
    started: list[str] = field(default_factory=list)

    def start(self, transfer, agreement: ContractAgreement) -> DataAddress | None:
        if self.fail:
            raise DataFlowError(self.fail)
        self.started.append(transfer.id)
        if transfer.format.endswith("PUSH"):
            return None
        return DataAddress(
            "https://w3id.org/idsa/v4.1/HTTP",
            "https://supplier.example/public",
            (
                EndpointProperty("authorization", f"token-{len(self.started)}"),
                EndpointProperty("authType", "bearer"),
            ),
        )


class Side:
    """One participant: its machines and its processes and agreements."""

    def __init__(self, neg, tp) -> None:
        self.neg = neg
        self.tp = tp
        self.entities: dict[str, Any] = {}
        self.agreements: dict[str, ContractAgreement] = {}

    def keep(self, outcome: Outcome) -> Outcome:
        if outcome.entity is not None:
            self.entities[outcome.entity.id] = outcome.entity
        if outcome.agreement is not None:
            self.agreements[outcome.agreement.id] = outcome.agreement
        return outcome

    def find_initial(self, kind: ProcessKind, sender: str, consumer_pid: str) -> Any:
        for e in self.entities.values():
            is_neg = kind is ProcessKind.NEGOTIATION
            if (
                hasattr(e, "offer") == is_neg
                and e.counter_party_id == sender
                and e.consumer_pid == consumer_pid
                and e.role == self.neg.role
            ):
                return e
        return None


class Harness:
    def __init__(self, *, consumer_claims: Mapping[str, Any] | None = None) -> None:
        self.clock = Clock()
        ids = count(1)
        self.flow = PullDataFlow()
        self.offers = {OFFER_ID: ResolvedOffer(OFFER_ID, DATASET, POLICY, "cd-1")}
        prov_neg = ProviderNegotiationMachine(
            participant_id=PROVIDER_ID,
            offers=lambda i, _caller: self.offers.get(i),
            checker=member_checker,
            clock=self.clock,
            protocol_address=PROVIDER_URL,
            new_id=lambda: f"urn:p:{next(ids)}",
        )
        prov_tp = ProviderTransferMachine(
            participant_id=PROVIDER_ID,
            agreements=lambda i: self.provider.agreements.get(i),
            data_flow=self.flow,
            checker=member_checker,
            clock=self.clock,
            new_id=lambda: f"urn:p:{next(ids)}",
        )
        cons_neg = ConsumerNegotiationMachine(
            participant_id=CONSUMER_ID,
            callback_address=CONSUMER_URL,
            clock=self.clock,
            new_id=lambda: f"urn:c:{next(ids)}",
        )
        cons_tp = ConsumerTransferMachine(
            participant_id=CONSUMER_ID,
            callback_address=CONSUMER_URL,
            clock=self.clock,
            new_id=lambda: f"urn:c:{next(ids)}",
        )
        self.provider = Side(prov_neg, prov_tp)
        self.consumer = Side(cons_neg, cons_tp)
        self.consumer_caller = Caller(CONSUMER_ID, dict(consumer_claims or {"membership": True}))
        self.provider_caller = Caller(PROVIDER_ID)
        self.wire: list[dict] = []

    def deliver(self, out: Outgoing, *, as_caller: Caller | None = None) -> Outcome:
        """Deliver ``out`` to the other side; feed the ACK back for initial messages."""
        doc = out.message.to_json()
        assert_valid(doc)
        self.wire.append(doc)
        to_provider = out.address == PROVIDER_URL
        side, sender_side = (
            (self.provider, self.consumer) if to_provider else (self.consumer, self.provider)
        )
        caller = as_caller or (self.consumer_caller if to_provider else self.provider_caller)
        msg = parse_message(doc)
        machine = side.neg if out.process_kind is ProcessKind.NEGOTIATION else side.tp
        initial = (
            isinstance(msg, ContractRequestMessage | TransferRequestMessage)
            and getattr(msg, "provider_pid", None) is None
        ) or (isinstance(msg, ContractOfferMessage) and msg.consumer_pid is None)
        if initial:
            pid = getattr(msg, "consumer_pid", None)
            current = (
                None
                if pid is None
                else side.find_initial(out.process_kind, caller.participant_id, pid)
            )
        else:
            pid = out.path.split("/")[2]
            from urllib.parse import unquote

            current = side.entities.get(unquote(pid))
        outcome = side.keep(machine.handle(caller, msg, current))
        if outcome.response is not None:
            assert_valid(outcome.response.to_json())
        if initial and outcome.response is not None:
            mine = sender_side.entities[out.process_id]
            sender_machine = (
                sender_side.neg if out.process_kind is ProcessKind.NEGOTIATION else sender_side.tp
            )
            sender_side.keep(sender_machine.on_acknowledged(mine, outcome.response.to_json()))
        return outcome

    def run(self, outcome: Outcome) -> list[Outcome]:
        """Deliver ``outcome``'s messages and everything they cause, breadth first."""
        done, queue = [], list(outcome.outgoing)
        while queue:
            result = self.deliver(queue.pop(0))
            done.append(result)
            queue.extend(result.outgoing)
        return done
