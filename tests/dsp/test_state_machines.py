"""Every (from, to, sender, message) combination of both state machines, valid and invalid.

The expected arrows are written out again here, literally from the DSP 2025-1 state
machine figures (C = consumer sends, P = provider sends), independently of the tables.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from connectors.dsp import negotiation as n
from connectors.dsp import transfer as t
from connectors.dsp.errors import InvalidTransitionError
from connectors.dsp.vocabulary import NegotiationState, Role, TransferState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
C, P = Role.CONSUMER, Role.PROVIDER
NS, TS = NegotiationState, TransferState
NM, TM = n.NegotiationMessage, t.TransferMessage

# (from, to, sender, message); None = the message creates the process.
NEGOTIATION_ARROWS = {
    (None, NS.REQUESTED, C, NM.REQUEST),
    (NS.OFFERED, NS.REQUESTED, C, NM.REQUEST),
    (None, NS.OFFERED, P, NM.OFFER),
    (NS.REQUESTED, NS.OFFERED, P, NM.OFFER),
    (NS.OFFERED, NS.ACCEPTED, C, NM.ACCEPTED),
    (NS.REQUESTED, NS.AGREED, P, NM.AGREEMENT),
    (NS.ACCEPTED, NS.AGREED, P, NM.AGREEMENT),
    (NS.AGREED, NS.VERIFIED, C, NM.VERIFICATION),
    (NS.VERIFIED, NS.FINALIZED, P, NM.FINALIZED),
    *(
        (s, NS.TERMINATED, r, NM.TERMINATION)
        for s in (NS.REQUESTED, NS.OFFERED, NS.ACCEPTED, NS.AGREED, NS.VERIFIED)
        for r in (C, P)
    ),
}

TRANSFER_ARROWS = {
    (None, TS.REQUESTED, C, TM.REQUEST),
    (TS.REQUESTED, TS.STARTED, P, TM.START),
    (TS.SUSPENDED, TS.STARTED, P, TM.START),
    (TS.SUSPENDED, TS.STARTED, C, TM.START),
    *((TS.STARTED, TS.SUSPENDED, r, TM.SUSPENSION) for r in (C, P)),
    *((TS.STARTED, TS.COMPLETED, r, TM.COMPLETION) for r in (C, P)),
    *(
        (s, TS.TERMINATED, r, TM.TERMINATION)
        for s in (TS.REQUESTED, TS.STARTED, TS.SUSPENDED)
        for r in (C, P)
    ),
}

NEG_COMBOS = list(itertools.product((None, *NS), NS, (C, P), NM))
TRANSFER_COMBOS = list(itertools.product((None, *TS), TS, (C, P), TM))


def _neg(state: NegotiationState, role: Role = P) -> n.ContractNegotiationEntity:
    return n.ContractNegotiationEntity(
        id="urn:p",
        role=role,
        state=state,
        counter_party_id="did:web:c",
        counter_party_address="https://c",
        created_at=NOW,
        updated_at=NOW,
        provider_pid="urn:p",
        consumer_pid="urn:c",
    )


def _tp(state: TransferState, role: Role = P) -> t.TransferProcessEntity:
    return t.TransferProcessEntity(
        id="urn:p",
        role=role,
        state=state,
        counter_party_id="did:web:c",
        counter_party_address="https://c",
        agreement_id="urn:a",
        format="HttpData-PULL",
        created_at=NOW,
        updated_at=NOW,
        provider_pid="urn:p",
        consumer_pid="urn:c",
    )


@pytest.mark.parametrize(("source", "target", "sender", "message"), NEG_COMBOS)
def test_negotiation_combination(source, target, sender, message) -> None:
    valid = (source, target, sender, message) in NEGOTIATION_ARROWS
    assert n.is_allowed(source, target, sender, message) is valid
    if source is None:
        if valid:
            n.check(None, target, sender=sender, message=message)
        else:
            with pytest.raises(InvalidTransitionError):
                n.check(None, target, sender=sender, message=message)
        return
    for role in (P, C):  # both sides apply the same table
        entity = _neg(source, role)
        if valid:
            moved = n.transition(entity, target, sender=sender, message=message, now=NOW)
            assert moved.state is target and moved.version == entity.version
        else:
            with pytest.raises(InvalidTransitionError) as err:
                n.transition(entity, target, sender=sender, message=message, now=NOW)
            assert err.value.status == 400
            assert err.value.provider_pid == "urn:p" and err.value.consumer_pid == "urn:c"
            assert source.value in str(err.value) and target.value in str(err.value)


@pytest.mark.parametrize(("source", "target", "sender", "message"), TRANSFER_COMBOS)
def test_transfer_combination(source, target, sender, message) -> None:
    valid = (source, target, sender, message) in TRANSFER_ARROWS
    assert t.is_allowed(source, target, sender, message) is valid
    if source is None:
        if not valid:
            with pytest.raises(InvalidTransitionError):
                t.check(None, target, sender=sender, message=message)
        return
    for role in (P, C):
        entity = _tp(source, role)
        if valid:
            assert (
                t.transition(entity, target, sender=sender, message=message, now=NOW).state
                is target
            )
        else:
            with pytest.raises(InvalidTransitionError) as err:
                t.transition(entity, target, sender=sender, message=message, now=NOW)
            assert err.value.code == "INVALID_TRANSITION"


def test_counts_and_terminal_states() -> None:
    assert sum(n.is_allowed(*c) for c in NEG_COMBOS) == len(NEGOTIATION_ARROWS) == 19
    assert sum(t.is_allowed(*c) for c in TRANSFER_COMBOS) == len(TRANSFER_ARROWS) == 14
    for final in (NS.FINALIZED, NS.TERMINATED):
        assert n.ALLOWED[final] == frozenset()
    for final in (TS.COMPLETED, TS.TERMINATED):
        assert t.ALLOWED[final] == frozenset()


def test_target_of_names_who_may_send_what() -> None:
    assert n.target_of(NM.FINALIZED, C) is None  # a consumer never finalises
    assert n.target_of(NM.ACCEPTED, P) is None  # a provider never accepts
    assert n.target_of(NM.AGREEMENT, P) is NS.AGREED
    assert t.target_of(TM.REQUEST, P) is None
    assert t.target_of(TM.START, C) is TS.STARTED
