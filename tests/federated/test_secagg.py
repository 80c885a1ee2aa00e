"""SecAgg+ end to end: exact sums under dropouts, refusals, replays, forged keys, aborts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federated.errors import ProtocolError, RefusalError, ReplayError, SecurityError
from federated.secagg_client import ClientState
from federated.secagg_run import run_secagg
from federated.secagg_server import SecAggCoordinator, ServerState
from federated.transport import LocalTransport
from federated.vocabulary import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    Header,
    MaskedInput,
    Refusal,
    Stage,
    UnmaskRequest,
    UnmaskShares,
    from_wire,
    to_wire,
)
from tests.federated.support import COORDINATOR, TASK, clients, config, identities

STAGES = ["advertise-keys", "share-keys", "masked-input", "consistency-check", "unmask"]


def random_inputs(ids, d, bits, rng):
    dtype = np.uint32 if bits == 32 else np.uint64
    return {pid: rng.integers(0, 2**bits, d, dtype=dtype) for pid in ids}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(3, 12), st.integers(1, 40), st.sampled_from([32, 64]), st.data())
def test_unmasked_sum_equals_plain_sum(n: int, d: int, bits: int, data: st.DataObject) -> None:
    ids, keys, pubs = identities(n)
    cfg = config(ids, d, bits)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32)))
    inputs = random_inputs(ids, d, bits, rng)
    # Each participant either stays or drops before one of the four stages.
    plan = {pid: data.draw(st.sampled_from([None, *STAGES])) for pid in ids}
    transport = LocalTransport(
        {pid: c.respond for pid, c in clients(ids, keys, pubs, inputs).items()},
        drop=lambda stage, pid: plan[pid] is not None
        and STAGES.index(stage) >= STAGES.index(plan[pid]),
        wire=data.draw(st.booleans()),
    )
    coordinator = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    out = run_secagg(coordinator, transport)
    alive = [pid for pid in ids if plan[pid] is None]
    if coordinator.state is ServerState.DONE:
        # Every survivor of the masked-input stage is in the sum, no one else.
        expected_in = {pid for pid in ids if plan[pid] in (None, "consistency-check", "unmask")}
        assert set(out.survivors) == expected_in
        expected = np.zeros(d, dtype=inputs[ids[0]].dtype)
        for pid in out.survivors:
            expected += inputs[pid]
        assert np.array_equal(out.result, expected)
        assert len(alive) >= cfg.threshold
    else:
        assert coordinator.state is ServerState.ABORTED and out.result is None
        assert "threshold" in (out.abort_reason or "") or "shares" in (out.abort_reason or "")
        # Complete graph: the round aborts exactly when too few are left at some stage.
        assert len(alive) < cfg.threshold


def test_sparse_graph_with_dropouts() -> None:
    ids, keys, pubs = identities(60)
    cfg = config(ids, 50, 32, max_dropout=0.1)
    assert cfg.degree < 59
    inputs = random_inputs(ids, 50, 32, np.random.default_rng(3))
    gone = set(ids[::10])
    transport = LocalTransport(
        {pid: c.respond for pid, c in clients(ids, keys, pubs, inputs).items()},
        drop=lambda stage, pid: stage == "masked-input" and pid in gone)
    out = run_secagg(SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs), transport)
    expected = sum((inputs[p] for p in ids if p not in gone), np.zeros(50, np.uint32))
    assert np.array_equal(out.result, expected)


def drive_to_unmask(n: int = 5, gone: frozenset[str] = frozenset()):
    """Run the first three stages by hand; returns the pieces for unmask-stage probes."""
    ids, keys, pubs = identities(n)
    cfg = config(ids, 8, 32)
    inputs = random_inputs(ids, 8, 32, np.random.default_rng(0))
    cs = clients(ids, keys, pubs, inputs)
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    requests = server.start()
    for _ in range(4):
        for pid, req in requests.items():
            if pid in gone and req.header.stage is Stage.MASKED_INPUT:
                continue
            server.receive(cs[pid].handle(req))
        requests = server.advance()
    return ids, cs, server, requests


def test_client_refuses_both_shares_of_one_peer() -> None:
    _, cs, _, requests = drive_to_unmask(5, frozenset({"p004"}))
    req = requests["p000"]
    assert "p004" in req.dropped
    greedy = dataclasses.replace(req, survivors=(*req.survivors, "p004"))
    with pytest.raises(RefusalError, match="both"):
        cs["p000"].handle(greedy)
    assert cs["p000"].state is ClientState.ABORTED
    # Through ``respond`` the refusal is a message carrying the reason.
    _, cs2, _, requests2 = drive_to_unmask(5, frozenset({"p004"}))
    greedy2 = dataclasses.replace(requests2["p001"],
                                  survivors=(*requests2["p001"].survivors, "p004"))
    reply = cs2["p001"].respond(greedy2)
    assert isinstance(reply, Refusal) and "both" in reply.reason


def test_client_refuses_to_reveal_its_own_key_or_to_be_called_dropped() -> None:
    _, cs, _, requests = drive_to_unmask(5)
    req = requests["p002"]
    survivors = tuple(p for p in req.survivors if p != "p002")
    with pytest.raises(RefusalError, match="own mask key"):
        cs["p002"].handle(dataclasses.replace(req, survivors=survivors, dropped=("p002",)))


def test_unmask_must_match_the_signed_survivor_set() -> None:
    """A coordinator cannot tell one participant that a peer dropped after it was signed as a
    survivor (the attack the consistency check exists for)."""
    _, cs, _, requests = drive_to_unmask(5)
    req = requests["p000"]
    with pytest.raises(RefusalError, match="differ from the survivor set"):
        cs["p000"].handle(dataclasses.replace(
            req, survivors=tuple(p for p in req.survivors if p != "p003"), dropped=("p003",)))


def test_unmask_needs_a_threshold_of_valid_consistency_signatures() -> None:
    _, cs, _, requests = drive_to_unmask(5)
    req = requests["p000"]
    assert len(req.signatures) == 4
    forged = tuple((pid, bytes(64)) for pid, _ in req.signatures)
    with pytest.raises(RefusalError, match="valid consistency signatures"):
        cs["p000"].handle(dataclasses.replace(req, signatures=forged[:2] + req.signatures[3:]))
    _, cs, _, requests = drive_to_unmask(5)
    reply = cs["p001"].handle(dataclasses.replace(requests["p001"],
                                                  signatures=requests["p001"].signatures[:2]))
    assert isinstance(reply, UnmaskShares)  # 2 peers + itself = threshold 3 of 5


def test_signing_refused_when_not_listed_or_too_few_survivors() -> None:
    ids, keys, pubs = identities(5)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    requests = server.start()
    for _ in range(3):
        for pid, req in requests.items():
            server.receive(cs[pid].handle(req))
        requests = server.advance()
    req = requests["p000"]
    assert isinstance(req, ConsistencyRequest)
    with pytest.raises(RefusalError, match="not listed as a survivor"):
        cs["p000"].handle(dataclasses.replace(req, survivors=("p001", "p002", "p003")))
    with pytest.raises(RefusalError, match="threshold"):
        cs["p001"].handle(dataclasses.replace(requests["p001"], survivors=("p000", "p001")))
    with pytest.raises(ProtocolError, match="sorted"):
        cs["p002"].handle(dataclasses.replace(requests["p002"],
                                              survivors=("p002", "p001", "p000")))
    bad = ConsistencySignature(Header(TASK, 0, Stage.CONSISTENCY_CHECK, "p003", COORDINATOR),
                               bytes(64))
    with pytest.raises(SecurityError, match="consistency signature"):
        server.receive(bad)


def test_client_rejects_replay_and_other_bindings() -> None:
    ids, keys, pubs = identities(3)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    setup = server.start()
    client = cs["p000"]
    client.handle(setup["p000"])
    with pytest.raises(ReplayError):
        client.handle(setup["p000"])
    assert client.state is ClientState.KEYS_ADVERTISED
    other_round = dataclasses.replace(setup["p000"], header=dataclasses.replace(
        setup["p000"].header, round=1))
    with pytest.raises(ProtocolError, match="another task or round"):
        cs["p001"].handle(other_round)
    wrong_sender = dataclasses.replace(setup["p001"], header=dataclasses.replace(
        setup["p001"].header, sender="mallory"))
    with pytest.raises(ProtocolError, match="not from our coordinator"):
        cs["p001"].handle(wrong_sender)
    wrong_stage = UnmaskRequest(Header(TASK, 0, Stage.UNMASK, COORDINATOR, "p002"), (), (), ())
    with pytest.raises(ProtocolError, match="current stage"):
        cs["p002"].handle(wrong_stage)


def test_coordinator_rejects_replay_strangers_and_wrong_stage() -> None:
    ids, keys, pubs = identities(3)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    setup = server.start()
    advert = cs["p000"].handle(setup["p000"])
    server.receive(advert)
    with pytest.raises(ReplayError):
        server.receive(advert)
    stranger = dataclasses.replace(advert, header=dataclasses.replace(advert.header,
                                                                      sender="eve"))
    with pytest.raises(ProtocolError):
        server.receive(stranger)
    early = MaskedInput(Header(TASK, 0, Stage.MASKED_INPUT, "p001", COORDINATOR), b"")
    with pytest.raises(ProtocolError, match="another stage"):
        server.receive(early)
    forged = dataclasses.replace(cs["p001"].handle(setup["p001"]), s_pk=advert.s_pk)
    with pytest.raises(SecurityError):
        server.receive(forged)


def test_participant_detects_substituted_keys() -> None:
    """A coordinator without the identity key cannot swap a peer's advertised keys."""
    ids, keys, pubs = identities(4)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg)  # no identity keys: no early check
    for pid, req in server.start().items():
        server.receive(cs[pid].handle(req))
    requests = server.advance()
    req = requests["p000"]
    evil = AdvertiseKeys(req.adverts[1].header, req.adverts[2].c_pk, req.adverts[2].s_pk,
                         req.adverts[1].signature)
    tampered = dataclasses.replace(req, adverts=(req.adverts[0], evil, *req.adverts[2:]))
    with pytest.raises(SecurityError, match="not signed"):
        cs["p000"].handle(tampered)
    # Replacing the participant's own advert is detected too.
    own = next(a for a in requests["p001"].adverts if a.header.sender == "p001")
    swapped = dataclasses.replace(own, c_pk=req.adverts[0].c_pk)
    bad = dataclasses.replace(requests["p001"], adverts=tuple(
        swapped if a.header.sender == "p001" else a for a in requests["p001"].adverts))
    with pytest.raises(SecurityError, match="own advert"):
        cs["p001"].handle(bad)


def test_tampered_share_ciphertext_is_detected() -> None:
    ids, keys, pubs = identities(4)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    requests = server.start()
    for _ in range(2):
        for pid, req in requests.items():
            server.receive(cs[pid].handle(req))
        requests = server.advance()
    req = requests["p000"]
    item = req.shares[0]
    flipped = bytearray(item.ciphertext)
    flipped[-1] ^= 1
    bad = dataclasses.replace(req, shares=(dataclasses.replace(item, ciphertext=bytes(flipped)),
                                           *req.shares[1:]))
    with pytest.raises(SecurityError):
        cs["p000"].handle(bad)
    # A ciphertext relabelled as coming from another peer fails authentication as well.
    other = requests["p001"]
    relabelled = dataclasses.replace(other, shares=(dataclasses.replace(
        other.shares[0], src=other.shares[1].src), *other.shares[2:]))
    with pytest.raises(SecurityError):
        cs["p001"].handle(relabelled)


def test_below_threshold_aborts_cleanly() -> None:
    ids, keys, pubs = identities(6)
    cfg = config(ids, 4, 32)
    assert cfg.threshold == 4
    inputs = random_inputs(ids, 4, 32, np.random.default_rng(0))
    transport = LocalTransport(
        {pid: c.respond for pid, c in clients(ids, keys, pubs, inputs).items()},
        drop=lambda stage, pid: stage == "unmask" and pid in {"p000", "p001", "p002"})
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    out = run_secagg(server, transport)
    assert server.state is ServerState.ABORTED
    assert out.result is None and "threshold" in out.abort_reason
    with pytest.raises(ProtocolError):
        server.advance()


def test_refusals_are_recorded_and_count_as_dropouts() -> None:
    ids, keys, pubs = identities(5)
    cfg = config(ids, 4, 32)
    inputs = random_inputs(ids, 4, 32, np.random.default_rng(0))
    cs = clients(ids, keys, pubs, inputs)
    cs["p004"].set_input(np.zeros(3, np.uint32))  # wrong length: refuses at masked input
    transport = LocalTransport({pid: c.respond for pid, c in cs.items()})
    out = run_secagg(SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs), transport)
    assert "p004" in out.refusals and "does not match" in out.refusals["p004"]
    expected = sum((inputs[p] for p in ids[:4]), np.zeros(4, np.uint32))
    assert np.array_equal(out.result, expected)


def test_reconstructed_key_must_match_advert() -> None:
    _, cs, server, requests = drive_to_unmask(5, frozenset({"p004"}))
    for pid, req in requests.items():
        reply = cs[pid].handle(req)
        bogus = tuple((owner, (int.from_bytes(s, "big") + 1).to_bytes(33, "big"))
                      for owner, s in reply.key_shares)
        server.receive(UnmaskShares(reply.header, reply.seed_shares, bogus))
    server.advance()
    assert server.state is ServerState.ABORTED


def test_wire_round_trip_and_validation() -> None:
    ids, keys, pubs = identities(3)
    cfg = config(ids, 4, 32)
    cs = clients(ids, keys, pubs, random_inputs(ids, 4, 32, np.random.default_rng(0)))
    server = SecAggCoordinator(COORDINATOR, TASK, 0, cfg, pubs)
    setup = server.start()["p000"]
    assert from_wire(to_wire(setup)) == setup
    advert = cs["p000"].handle(setup)
    assert from_wire(to_wire(advert)) == advert
    body = to_wire(advert)
    for broken in (
        {**body, "type": "Nope"},
        {**body, "protocol": "other"},
        {k: v for k, v in body.items() if k != "c_pk"},
        {**body, "c_pk": "***"},
        {**body, "header": {**body["header"], "round": -1}},
        {**body, "header": {**body["header"], "stage": "later"}},
        {**body, "header": {**body["header"], "round": True}},
        [],
    ):
        with pytest.raises(ProtocolError):
            from_wire(broken)
