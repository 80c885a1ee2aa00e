"""Provider and consumer negotiation machines end to end in memory, and every refusal."""

from __future__ import annotations

import pytest

from connectors.dsp import messages as m
from connectors.dsp.errors import (
    InvalidMessageError,
    InvalidTransitionError,
    ProcessNotFoundError,
    RequestRejectedError,
)
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.negotiation_handlers import ResolvedOffer
from connectors.dsp.policy import Caller, same_terms, structural_normaliser
from connectors.dsp.timestamps import parse_xsd_datetime
from connectors.dsp.vocabulary import NegotiationEventType, NegotiationState
from tests.dsp.protocol_harness import (
    CONSUMER_ID,
    DATASET,
    OFFER_ID,
    POLICY,
    PROVIDER_ID,
    PROVIDER_URL,
    Harness,
)

S = NegotiationState


def offer(**changes) -> dict:
    return {**POLICY, "@id": OFFER_ID, "target": DATASET, **changes}


def start(h: Harness, requested: dict | None = None):
    out = h.consumer.keep(
        h.consumer.neg.request(
            provider_id=PROVIDER_ID, provider_address=PROVIDER_URL, offer=requested or offer()
        )
    )
    return out, h.run(out)


def test_full_negotiation_reaches_finalized_on_both_sides() -> None:
    h = Harness()
    out, steps = start(h)
    cons = h.consumer.entities[out.entity.id]
    prov = next(iter(h.provider.entities.values()))
    assert cons.state is S.FINALIZED and prov.state is S.FINALIZED
    assert cons.provider_pid == prov.id and prov.consumer_pid == cons.id
    assert steps[0].created and steps[0].response.state is S.REQUESTED
    types = [d["@type"] for d in h.wire]
    assert types == [
        "ContractRequestMessage",
        "ContractAgreementMessage",
        "ContractAgreementVerificationMessage",
        "ContractNegotiationEventMessage",
    ]
    # the agreement names both parties and a timestamp, and both sides store the same one
    (agreement,) = h.provider.agreements.values()
    (mirror,) = h.consumer.agreements.values()
    assert (mirror.id, mirror.policy) == (agreement.id, agreement.policy)
    assert mirror.negotiation_id == cons.id and agreement.negotiation_id == prov.id
    assert agreement.policy["assigner"] == PROVIDER_ID
    assert agreement.policy["assignee"] == CONSUMER_ID
    assert parse_xsd_datetime(agreement.policy["timestamp"]) == agreement.signed_at
    assert agreement.asset_id == DATASET and cons.agreement_id == agreement.id
    assert same_terms(agreement.policy, POLICY, structural_normaliser)


def test_offer_equal_after_normalisation_is_agreed() -> None:
    rule_a = {
        "action": "use",
        "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"}],
    }
    rule_b = {
        "action": "use",
        "constraint": [{"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"}],
    }
    h = Harness()
    stored = {"@id": "urn:policy:two", "@type": "Offer", "permission": [rule_a, rule_b]}
    h.offers[OFFER_ID] = ResolvedOffer(OFFER_ID, DATASET, stored, "cd-1")
    requested = offer(permission=[{"constraint": rule_b["constraint"], "action": "use"}, rule_a])
    assert requested != offer(permission=stored["permission"])
    out, _ = start(h, requested)
    assert h.consumer.entities[out.entity.id].state is S.FINALIZED


def test_policy_denied_terminates_with_reasons_on_both_sides() -> None:
    h = Harness(consumer_claims={"membership": False})
    out, steps = start(h)
    assert steps[0].response.state is S.REQUESTED  # the request itself was received (201)
    prov = next(iter(h.provider.entities.values()))
    cons = h.consumer.entities[out.entity.id]
    assert prov.state is S.TERMINATED and cons.state is S.TERMINATED
    assert cons.error.code == "POLICY_DENIED"
    assert "holds no dataspace membership" in cons.error.reasons[0]
    assert h.wire[-1]["@type"] == "ContractNegotiationTerminationMessage"
    assert h.wire[-1]["reason"] == list(prov.error.reasons)
    assert not h.provider.agreements


def test_changed_terms_are_refused_as_offer_mismatch() -> None:
    tampered = offer(permission=[{"action": "use"}])
    h = Harness()
    out, _ = start(h, tampered)
    cons = h.consumer.entities[out.entity.id]
    assert cons.state is S.TERMINATED and cons.error.code == "OFFER_MISMATCH"


def test_unknown_offer_is_rejected_without_a_process() -> None:
    h = Harness()
    msg = m.ContractRequestMessage(
        "urn:c:x", offer(**{"@id": "urn:offer:nope"}), callback_address="https://c"
    )
    with pytest.raises(RequestRejectedError) as err:
        h.provider.neg.handle(h.consumer_caller, msg, None)
    assert err.value.code == "UNKNOWN_OFFER" and err.value.status == 400
    body = m.negotiation_error(err.value).to_json()
    assert body["consumerPid"] == "urn:c:x" and body["code"] == "UNKNOWN_OFFER"
    assert not h.provider.entities


@pytest.mark.parametrize(
    "callback", ["oem.example/dsp", "ftp://oem.example", "https://", "https://c/x?a=1"]
)
def test_callback_addresses_we_cannot_use_are_refused(callback: str) -> None:
    h = Harness()
    msg = m.ContractRequestMessage("urn:c:x", offer(), callback_address=callback)
    with pytest.raises(InvalidMessageError) as err:
        h.provider.neg.handle(h.consumer_caller, msg, None)
    assert err.value.code == "UNSUPPORTED_CALLBACK" and not h.provider.entities


def test_offer_for_another_dataset_is_rejected() -> None:
    h = Harness()
    msg = m.ContractRequestMessage(
        "urn:c:x", offer(target="urn:other"), callback_address="https://c"
    )
    with pytest.raises(RequestRejectedError, match="urn:other"):
        h.provider.neg.handle(h.consumer_caller, msg, None)


def _requested(h: Harness):
    """A provider negotiation left in REQUESTED (the agreement step not run)."""
    req = h.consumer.keep(
        h.consumer.neg.request(
            provider_id=PROVIDER_ID, provider_address=PROVIDER_URL, offer=offer()
        )
    )
    step = h.deliver(req.outgoing[0])
    return req, step


def test_unknown_pid_and_strangers_get_404() -> None:
    h = Harness()
    _, step = _requested(h)
    prov = step.entity
    verify = m.ContractAgreementVerificationMessage(prov.id, prov.consumer_pid)
    with pytest.raises(ProcessNotFoundError) as err:
        h.provider.neg.handle(h.consumer_caller, verify, None)
    assert err.value.status == 404
    stranger = Caller("did:web:stranger.example", {"membership": True})
    with pytest.raises(ProcessNotFoundError):
        h.provider.neg.handle(stranger, verify, prov)
    with pytest.raises(ProcessNotFoundError):
        h.provider.neg.describe(stranger, prov, prov.id)
    assert h.provider.neg.describe(h.consumer_caller, prov, prov.id).state is S.AGREED


def test_invalid_transitions_are_400() -> None:
    h = Harness()
    _, step = _requested(h)
    prov = step.entity  # AGREED (agreement queued)
    finalize = m.ContractNegotiationEventMessage(
        prov.id, prov.consumer_pid, NegotiationEventType.FINALIZED
    )
    with pytest.raises(InvalidTransitionError, match="FINALIZED"):
        h.provider.neg.handle(h.consumer_caller, finalize, prov)
    accepted = m.ContractNegotiationEventMessage(
        prov.id, prov.consumer_pid, NegotiationEventType.ACCEPTED
    )
    with pytest.raises(InvalidTransitionError):
        h.provider.neg.handle(h.consumer_caller, accepted, prov)
    offer_msg = m.ContractOfferMessage(prov.id, offer(), consumer_pid=prov.consumer_pid)
    with pytest.raises(InvalidMessageError):
        h.provider.neg.handle(h.consumer_caller, offer_msg, prov)


def test_mismatched_pid_in_body_is_rejected() -> None:
    h = Harness()
    _, step = _requested(h)
    prov = step.entity
    wrong = m.ContractAgreementVerificationMessage(prov.id, "urn:c:someone-else")
    with pytest.raises(InvalidMessageError, match="consumerPid"):
        h.provider.neg.handle(h.consumer_caller, wrong, prov)


def test_replays_change_nothing_and_answer_the_same() -> None:
    h = Harness()
    req, step = _requested(h)
    again = h.provider.neg.handle(
        h.consumer_caller, m.parse_message(req.outgoing[0].message.to_json()), step.entity
    )
    assert again.replayed and again.entity is None and again.response == step.response
    h.run(step)  # finish the negotiation
    prov = h.provider.entities[step.entity.id]
    cons = h.consumer.entities[req.entity.id]
    assert prov.state is S.FINALIZED
    verify = m.ContractAgreementVerificationMessage(prov.id, prov.consumer_pid)
    replay = h.provider.neg.handle(h.consumer_caller, verify, prov)
    assert replay.replayed and not replay.outgoing
    agreement_msg = m.ContractAgreementMessage(
        prov.id, cons.id, h.provider.agreements[prov.agreement_id].policy
    )
    replay = h.consumer.neg.handle(h.provider_caller, agreement_msg, cons)
    assert replay.replayed and replay.response.state is S.AGREED
    event = m.ContractNegotiationEventMessage(prov.id, cons.id, NegotiationEventType.FINALIZED)
    assert h.consumer.neg.handle(h.provider_caller, event, cons).replayed


def test_consumer_refuses_an_agreement_that_differs_from_its_offer() -> None:
    h = Harness()
    req, step = _requested(h)
    (out,) = step.outgoing
    bad = dict(
        out.message.agreement, assignee="did:web:somebody-else", permission=[{"action": "use"}]
    )
    forged = m.ContractAgreementMessage(out.message.provider_pid, out.message.consumer_pid, bad)
    result = h.consumer.neg.handle(h.provider_caller, forged, h.consumer.entities[req.entity.id])
    assert result.entity.state is S.TERMINATED
    assert result.entity.error.code == "AGREEMENT_MISMATCH"
    reasons = " ".join(result.entity.error.reasons)
    assert "assignee" in reasons and "terms differ" in reasons
    assert result.outgoing[0].message.code == "AGREEMENT_MISMATCH"
    assert result.agreement is None


def test_consumer_rejects_accepted_event_from_provider() -> None:
    h = Harness()
    req, step = _requested(h)
    cons = h.consumer.entities[req.entity.id]
    event = m.ContractNegotiationEventMessage(
        step.entity.id, cons.id, NegotiationEventType.ACCEPTED
    )
    with pytest.raises(InvalidTransitionError):
        h.consumer.neg.handle(h.provider_caller, event, cons)


def test_provider_initiated_offer_accept_flow() -> None:
    h = Harness()
    start_ = h.provider.keep(
        h.provider.neg.offer(
            consumer_id=CONSUMER_ID,
            callback_address="https://oem.example/dsp",
            resolved=h.offers[OFFER_ID],
        )
    )
    assert start_.created and start_.entity.state is S.OFFERED
    (step,) = h.run(start_)
    cons = step.entity
    assert cons.state is S.OFFERED and step.created
    assert h.provider.entities[start_.entity.id].consumer_pid == cons.id  # learnt from the ACK
    accepted = h.consumer.keep(h.consumer.neg.accept(cons))
    h.run(accepted)
    assert h.consumer.entities[cons.id].state is S.FINALIZED
    assert h.provider.entities[start_.entity.id].state is S.FINALIZED


def test_counter_request_on_an_offer() -> None:
    h = Harness()
    start_ = h.provider.keep(
        h.provider.neg.offer(
            consumer_id=CONSUMER_ID,
            callback_address="https://oem.example/dsp",
            resolved=h.offers[OFFER_ID],
        )
    )
    (step,) = h.run(start_)
    counter = h.consumer.keep(h.consumer.neg.counter(step.entity, dict(step.entity.offer)))
    h.run(counter)
    assert h.consumer.entities[step.entity.id].state is S.FINALIZED


def test_termination_by_consumer_and_replay() -> None:
    h = Harness()
    req, step = _requested(h)
    cons = h.consumer.entities[req.entity.id]
    assert cons.provider_pid == step.entity.id  # learnt from the ACK
    ended = h.consumer.keep(
        h.consumer.neg.terminate(cons, ErrorDetail("OPERATOR", ("changed my mind",)))
    )
    (result,) = h.run(ended)
    prov = result.entity
    assert prov.state is S.TERMINATED and prov.error.reasons == ("changed my mind",)
    again = h.provider.neg.handle(h.consumer_caller, ended.outgoing[0].message, prov)
    assert again.replayed
    with pytest.raises(InvalidTransitionError):
        h.provider.neg.terminate(prov, ErrorDetail("OPERATOR", ("again",)))


def test_delivery_failure_ends_locally() -> None:
    h = Harness()
    req = h.consumer.neg.request(
        provider_id=PROVIDER_ID, provider_address=PROVIDER_URL, offer=offer()
    )
    failed = h.consumer.neg.on_delivery_failed(req.entity, "connection refused 12 times")
    assert failed.entity.state is S.TERMINATED and failed.entity.error.code == "DELIVERY_FAILED"
    assert not failed.outgoing
    assert h.consumer.neg.on_delivery_failed(failed.entity, "x").replayed


def test_a_broken_checker_denies() -> None:
    h = Harness()

    def broken(policy, **kw):
        raise RuntimeError("engine down")

    h.provider.neg.checker = broken
    out, _ = start(h)
    cons = h.consumer.entities[out.entity.id]
    assert cons.state is S.TERMINATED and "engine down" in cons.error.reasons[0]
