"""Provider and consumer transfer machines end to end in memory, and every refusal."""

from __future__ import annotations

import pytest

from connectors.dsp import messages as m
from connectors.dsp.errors import (
    InvalidTransitionError,
    ProcessNotFoundError,
    RequestRejectedError,
)
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.policy import Caller
from connectors.dsp.vocabulary import NegotiationState, TransferState
from tests.dsp.protocol_harness import (
    CONSUMER_ID,
    DATASET,
    OFFER_ID,
    POLICY,
    PROVIDER_ID,
    PROVIDER_URL,
    Harness,
)

S = TransferState


def negotiated(h: Harness):
    out = h.consumer.keep(
        h.consumer.neg.request(
            provider_id=PROVIDER_ID,
            provider_address=PROVIDER_URL,
            offer={**POLICY, "@id": OFFER_ID, "target": DATASET},
        )
    )
    h.run(out)
    assert h.consumer.entities[out.entity.id].state is NegotiationState.FINALIZED
    (agreement,) = h.consumer.agreements.values()
    return agreement


def request(h: Harness, agreement, fmt: str = "HttpData-PULL", sink=None):
    out = h.consumer.keep(
        h.consumer.tp.request(
            provider_id=PROVIDER_ID,
            provider_address=PROVIDER_URL,
            agreement=agreement,
            format=fmt,
            data_address=sink,
        )
    )
    steps = h.run(out)
    return h.consumer.entities[out.entity.id], steps


def provider_side(h: Harness, consumer_tp):
    return h.provider.entities[consumer_tp.provider_pid]


def test_pull_transfer_starts_with_a_data_address() -> None:
    h = Harness()
    tp, steps = request(h, negotiated(h))
    assert steps[0].created and steps[0].response.state is S.REQUESTED
    assert tp.state is S.STARTED
    address = m.DataAddress.from_json(tp.data_address)
    assert address.endpoint == "https://supplier.example/public"
    assert address.property("authorization") == "token-1"
    assert provider_side(h, tp).state is S.STARTED and provider_side(h, tp).dataset_id == DATASET


def test_push_transfer_keeps_the_consumer_sink_on_the_provider() -> None:
    h = Harness()
    sink = m.DataAddress("https://w3id.org/idsa/v4.1/HTTP", "https://oem.example/sink")
    tp, _ = request(h, negotiated(h), "HttpData-PUSH", sink)
    assert tp.state is S.STARTED
    assert provider_side(h, tp).data_address == sink.to_json()
    assert "dataAddress" not in h.wire[-1]  # the start message of a push carries none


def test_suspend_resume_complete() -> None:
    h = Harness()
    tp, _ = request(h, negotiated(h))
    prov = provider_side(h, tp)
    suspended = h.provider.keep(
        h.provider.tp.suspend(prov, ErrorDetail("USAGE", ("count used up",)))
    )
    (step,) = h.run(suspended)
    assert step.entity.state is S.SUSPENDED and step.entity.error.reasons == ("count used up",)
    resumed = h.consumer.keep(h.consumer.tp.resume(step.entity))
    (step,) = h.run(resumed)
    assert step.entity.state is S.STARTED and step.entity.error is None
    done = h.consumer.keep(h.consumer.tp.complete(h.consumer.entities[tp.id]))
    (step,) = h.run(done)
    assert step.entity.state is S.COMPLETED
    with pytest.raises(InvalidTransitionError):
        h.provider.tp.suspend(step.entity, ErrorDetail("X", ("too late",)))


def test_provider_resume_sends_a_fresh_address() -> None:
    h = Harness()
    tp, _ = request(h, negotiated(h))
    prov = provider_side(h, tp)
    suspended = h.consumer.keep(h.consumer.tp.suspend(tp, ErrorDetail("PAUSE", ("night",))))
    h.run(suspended)
    prov = provider_side(h, tp)
    assert prov.state is S.SUSPENDED
    resumed = h.provider.keep(h.provider.tp.resume(prov))
    h.run(resumed)
    cons = h.consumer.entities[tp.id]
    assert cons.state is S.STARTED
    assert m.DataAddress.from_json(cons.data_address).property("authorization") == "token-2"


def test_unknown_or_foreign_agreement_is_rejected() -> None:
    h = Harness()
    agreement = negotiated(h)
    msg = m.TransferRequestMessage("urn:c:t", "urn:agreement:nope", "HttpData-PULL", "https://c")
    with pytest.raises(RequestRejectedError) as err:
        h.provider.tp.handle(h.consumer_caller, msg, None)
    assert err.value.code == "UNKNOWN_AGREEMENT"
    body = m.transfer_error(err.value).to_json()
    assert body["consumerPid"] == "urn:c:t"
    thief = Caller("did:web:thief.example", {"membership": True})
    msg = m.TransferRequestMessage("urn:c:t", agreement.id, "HttpData-PULL", "https://c")
    with pytest.raises(RequestRejectedError):
        h.provider.tp.handle(thief, msg, None)


def test_unsupported_format_is_rejected() -> None:
    h = Harness()
    agreement = negotiated(h)
    h.provider.tp.formats = frozenset({"HttpData-PULL"})
    msg = m.TransferRequestMessage("urn:c:t", agreement.id, "Kafka-PUSH", "https://c")
    with pytest.raises(RequestRejectedError, match="HttpData-PULL"):
        h.provider.tp.handle(h.consumer_caller, msg, None)


def test_data_flow_failure_and_policy_denial_terminate_with_reasons() -> None:
    h = Harness()
    agreement = negotiated(h)
    h.flow.fail = "the source bucket is unreachable"
    tp, _ = request(h, agreement)
    assert tp.state is S.TERMINATED and tp.error.code == "DATA_FLOW_FAILED"
    assert tp.error.reasons == ("the source bucket is unreachable",)
    h.flow.fail = None
    h.consumer_caller = Caller(CONSUMER_ID, {"membership": False})
    tp, _ = request(h, agreement)
    assert tp.state is S.TERMINATED and tp.error.code == "POLICY_DENIED"


def test_404_for_strangers_and_unknown_ids() -> None:
    h = Harness()
    tp, _ = request(h, negotiated(h))
    prov = provider_side(h, tp)
    completion = m.TransferCompletionMessage(prov.id, tp.id)
    stranger = Caller("did:web:stranger.example")
    with pytest.raises(ProcessNotFoundError):
        h.provider.tp.handle(stranger, completion, prov)
    with pytest.raises(ProcessNotFoundError):
        h.provider.tp.handle(h.consumer_caller, completion, None)
    with pytest.raises(ProcessNotFoundError):
        h.consumer.tp.describe(h.consumer_caller, tp, tp.id)  # the consumer is not its own peer
    assert h.consumer.tp.describe(h.provider_caller, tp, tp.id).state is S.STARTED


def test_invalid_transfer_transitions_are_400() -> None:
    h = Harness()
    tp, _ = request(h, negotiated(h))
    prov = provider_side(h, tp)
    start = m.TransferStartMessage(prov.id, tp.id)
    # consumer may only start (resume) a SUSPENDED transfer; STARTED is a replay, COMPLETED is not
    assert h.provider.tp.handle(h.consumer_caller, start, prov).replayed
    done = h.provider.keep(h.provider.tp.complete(prov))
    with pytest.raises(InvalidTransitionError):
        h.provider.tp.handle(h.consumer_caller, start, done.entity)
    suspend = m.TransferSuspensionMessage(prov.id, tp.id, "X", ("y",))
    with pytest.raises(InvalidTransitionError):
        h.provider.tp.handle(h.consumer_caller, suspend, done.entity)


def test_request_replay_returns_the_same_process() -> None:
    h = Harness()
    tp, _ = request(h, negotiated(h))
    prov = provider_side(h, tp)
    msg = m.parse_message(h.wire[-2])  # the TransferRequestMessage
    again = h.provider.tp.handle(h.consumer_caller, msg, prov)
    assert again.replayed and again.entity is None and again.response.provider_pid == prov.id
    term = m.TransferTerminationMessage(prov.id, tp.id, "OPERATOR", ("stop",))
    ended = h.provider.tp.handle(h.consumer_caller, term, prov)
    assert ended.entity.state is S.TERMINATED and ended.entity.error.code == "OPERATOR"
    assert h.provider.tp.handle(h.consumer_caller, term, ended.entity).replayed


def test_consumer_request_needs_its_own_agreement() -> None:
    h = Harness()
    agreement = negotiated(h)
    with pytest.raises(RequestRejectedError):
        h.consumer.tp.request(
            provider_id="did:web:other",
            provider_address=PROVIDER_URL,
            agreement=agreement,
            format="HttpData-PULL",
        )
