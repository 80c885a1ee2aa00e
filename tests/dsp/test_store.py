"""The connector store on the backend under test (SQLite by default, PostgreSQL via
AUTOSPACE_TEST_DB): CRUD, optimistic versions, replays, outbox leasing and retries."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.dsp import outbox
from connectors.dsp.definitions import (
    Asset,
    Classification,
    ContractDefinition,
    Criterion,
    Operator,
    PolicyDefinition,
)
from connectors.dsp.errors import ConflictError
from connectors.dsp.messages import TransferCompletionMessage
from connectors.dsp.outcome import Outgoing, ProcessKind
from connectors.dsp.store import (
    ConnectorStore,
    DuplicateError,
    InUseError,
    message_key,
)
from connectors.dsp.vocabulary import NegotiationState, Role
from node.db import make_engine
from tests.dsp.protocol_harness import DATASET, OFFER_ID, POLICY, PROVIDER_ID, PROVIDER_URL, Harness

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(migrated_engine) -> ConnectorStore:
    return ConnectorStore(migrated_engine, clock=lambda: T0)


def asset(i: int, **kw) -> Asset:
    return Asset(
        id=f"asset-{i:03d}",
        properties={"name": f"part {i}", "kind": kw.pop("kind", "qa")},
        data_address={"type": "File", "path": f"/data/{i}"},
        **kw,
    )


def test_asset_crud_with_versions(store: ConnectorStore) -> None:
    with store.transaction() as tx:
        a = tx.create_asset(asset(1, classification=Classification.IMPORTANT, home_region="CN"))
        assert a.version == 1
        with pytest.raises(DuplicateError):
            tx.create_asset(asset(1))
    with store.transaction() as tx:
        got = tx.get_asset("asset-001")
        assert got.classification is Classification.IMPORTANT and got.home_region == "CN"
        assert got.created_at == T0 and got.data_address["path"] == "/data/1"
        updated = tx.update_asset(replace(got, properties={"name": "renamed"}))
        assert updated.version == 2
        with pytest.raises(ConflictError):
            tx.update_asset(replace(got, properties={"name": "stale write"}))
    with store.transaction() as tx:
        assert tx.get_asset("asset-001").properties == {"name": "renamed"}
        assert tx.delete_asset("asset-001") and not tx.delete_asset("asset-001")
        assert tx.get_asset("asset-001") is None


def test_selectors_in_sql_agree_with_python(store: ConnectorStore) -> None:
    from connectors.dsp.definitions import selector_matches

    with store.transaction() as tx:
        tx.insert_assets(
            [
                asset(
                    i,
                    kind="qa" if i % 2 else "forecast",
                    classification=list(Classification)[i % 3],
                    home_region="CN" if i % 4 == 0 else "DE",
                )
                for i in range(20)
            ]
        )
    selectors = [
        (),
        (Criterion("id", Operator.EQ, "asset-003"),),
        (Criterion("https://w3id.org/edc/v0.0.1/ns/id", Operator.IN, ["asset-001", "asset-019"]),),
        (Criterion("kind", Operator.EQ, "qa"),),
        (Criterion("kind", Operator.NEQ, "qa"), Criterion("homeRegion", Operator.EQ, "CN")),
        (Criterion("classification", Operator.IN, ["core", "important"]),),
        (Criterion("name", Operator.LIKE, "part 1%"),),
        (Criterion("missing", Operator.EQ, "x"),),
    ]
    with store.transaction() as tx:
        everything = tx.list_assets(limit=100)
        for sel in selectors:
            sql = [a.id for a in tx.list_assets(selector=sel, limit=100)]
            py = [a.id for a in everything if selector_matches(sel, a)]
            assert sql == py, sel
            assert tx.count_assets(sel) == len(py)
        assert len(tx.list_assets(selector=selectors[3], limit=100)) == 10


def test_policies_and_contract_definitions(store: ConnectorStore) -> None:
    with store.transaction() as tx:
        tx.create_policy(PolicyDefinition("access", {"@type": "Set", "permission": []}))
        tx.create_policy(PolicyDefinition("contract", POLICY))
        tx.create_contract_definition(
            ContractDefinition(
                "cd-1", "access", "contract", (Criterion("kind", Operator.EQ, "qa"),)
            )
        )
    with store.transaction() as tx:
        cd = tx.get_contract_definition("cd-1")
        assert cd.assets_selector == (Criterion("kind", Operator.EQ, "qa"),)
        assert set(tx.get_policies(["access", "contract", "nope"])) == {"access", "contract"}
        with pytest.raises(InUseError):
            tx.delete_policy("contract")
    with store.transaction() as tx:
        tx.update_contract_definition(replace(cd, assets_selector=()))
        assert tx.get_contract_definition("cd-1").version == 2
        assert tx.delete_contract_definition("cd-1")
        assert tx.delete_policy("contract")
        assert [p.id for p in tx.list_policies()] == ["access"]


def test_protocol_outcomes_persist_and_versions_guard_concurrent_steps(store) -> None:
    h = Harness()
    req = h.consumer.neg.request(
        provider_id=PROVIDER_ID,
        provider_address=PROVIDER_URL,
        offer={**POLICY, "@id": OFFER_ID, "target": DATASET},
    )
    with store.transaction() as tx:
        saved = tx.apply(req)
        assert saved.version == 1
    with store.transaction() as tx:
        got = tx.get_negotiation(req.entity.id)
        assert got == saved
        assert (
            tx.find_negotiation(
                role=Role.CONSUMER, counter_party_id=PROVIDER_ID, consumer_pid=req.entity.id
            )
            == saved
        )
    # deliver to a provider machine and persist its outcome (entity + agreement + outbox)
    step = h.provider.neg.handle(h.consumer_caller, req.outgoing[0].message, None)
    with store.transaction() as tx:
        prov = tx.apply(step)
    assert outbox.pending_count(store.engine) == 2  # the request and the agreement
    with store.transaction() as tx:
        assert tx.get_agreement(step.agreement.id) == step.agreement
        assert tx.find_agreements(asset_id=DATASET) == []  # not FINALIZED yet
        assert tx.find_agreements(asset_id=DATASET, finalized_only=False) == [step.agreement]
        assert [e.id for e in tx.list_negotiations(state="AGREED")] == [prov.id]
    # two workers loaded version 1; only the first update wins
    ended_a = replace(prov, state=NegotiationState.TERMINATED)
    ended_b = replace(prov, state=NegotiationState.FINALIZED)
    with store.transaction() as tx:
        tx.save_negotiation(ended_a)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.save_negotiation(ended_b)
    with store.transaction() as tx:
        assert tx.get_negotiation(prov.id).state is NegotiationState.TERMINATED


def test_transfers_persist(store) -> None:
    h = Harness()
    out = h.consumer.keep(
        h.consumer.neg.request(
            provider_id=PROVIDER_ID,
            provider_address=PROVIDER_URL,
            offer={**POLICY, "@id": OFFER_ID, "target": DATASET},
        )
    )
    h.run(out)
    (agreement,) = h.consumer.agreements.values()
    req = h.consumer.tp.request(
        provider_id=PROVIDER_ID,
        provider_address=PROVIDER_URL,
        agreement=agreement,
        format="HttpData-PULL",
    )
    with store.transaction() as tx:
        saved = tx.apply(req)
        assert tx.get_transfer(saved.id) == saved
        assert (
            tx.find_transfer(
                role=Role.CONSUMER, counter_party_id=PROVIDER_ID, consumer_pid=saved.id
            )
            == saved
        )
        assert [x.id for x in tx.list_transfers(agreement_id=agreement.id)] == [saved.id]


def test_processed_messages_replay(store) -> None:
    body = TransferCompletionMessage("urn:p", "urn:c").to_json()
    key = message_key(
        kind="transfer", sender_id="did:web:c", target="/transfers/urn:p/completion", body=body
    )
    assert key == message_key(
        kind="transfer",
        sender_id="did:web:c",
        target="/transfers/urn:p/completion",
        body=dict(reversed(body.items())),
    )
    assert key != message_key(
        kind="transfer", sender_id="did:web:x", target="/transfers/urn:p/completion", body=body
    )
    with store.transaction() as tx:
        assert tx.get_processed(key) is None
        tx.record_processed(
            key,
            process_kind="transfer",
            process_id="urn:p",
            message_type="TransferCompletionMessage",
            status_code=200,
            response={"state": "COMPLETED"},
        )
    with store.transaction() as tx:
        got = tx.get_processed(key)
        assert got.status_code == 200 and got.response == {"state": "COMPLETED"}
    with pytest.raises(DuplicateError), store.transaction() as tx:
        tx.record_processed(
            key,
            process_kind="transfer",
            process_id="urn:p",
            message_type="x",
            status_code=200,
            response=None,
        )


def _enqueue(store: ConnectorStore, n: int, *, process: str | None = None) -> list[int]:
    ids = []
    with store.transaction() as tx:
        for i in range(n):
            out = Outgoing(
                TransferCompletionMessage(f"urn:p:{i}", "urn:c"),
                "https://c/dsp",
                f"/transfers/urn:c:{i}/completion",
                "did:web:c",
                ProcessKind.TRANSFER,
                process or f"proc-{i}",
            )
            ids.append(outbox.enqueue(tx.conn, out, now=T0))
    return ids


def test_outbox_lease_complete_retry_and_give_up(store) -> None:
    eng = store.engine
    (row,) = _enqueue(store, 1)
    (got,) = outbox.lease(eng, "w1", now=T0, lease_ms=1000)
    assert (
        got.id == row
        and got.attempts == 1
        and got.url == "https://c/dsp/transfers/urn:c:0/completion"
    )
    assert got.body["@type"] == "TransferCompletionMessage"
    assert outbox.lease(eng, "w2", now=T0) == []  # held by w1
    assert outbox.retry(eng, row, "w1", now=T0, error="503") == "pending"
    assert outbox.lease(eng, "w2", now=T0) == []  # not due before the back-off
    later = T0 + timedelta(milliseconds=outbox.RETRY_DELAYS_MS[0])
    (again,) = outbox.lease(eng, "w2", now=later)
    assert again.attempts == 2
    assert not outbox.complete(eng, row, "w1", now=later)  # w1 lost the lease
    assert outbox.complete(eng, row, "w2", now=later)
    assert outbox.pending_count(eng) == 0
    (row2,) = _enqueue(store, 1)
    outbox.lease(eng, "w1", now=T0, lease_ms=1000)
    assert outbox.retry(eng, row2, "w1", now=T0, error="400 bad", permanent=True) == "dead"
    assert outbox.retry(eng, row2, "w1", now=T0, error="x") is None


def test_expired_leases_are_taken_over(store) -> None:
    eng = store.engine
    (row,) = _enqueue(store, 1)
    outbox.lease(eng, "crashed-worker", now=T0, lease_ms=1000)
    assert outbox.lease(eng, "w2", now=T0 + timedelta(milliseconds=999)) == []
    (got,) = outbox.lease(eng, "w2", now=T0 + timedelta(milliseconds=1001))
    assert got.id == row and got.lease_owner == "w2"
    assert not outbox.complete(eng, row, "crashed-worker", now=T0 + timedelta(seconds=2))


def test_messages_of_one_process_go_out_in_order(store) -> None:
    eng = store.engine
    first, second = _enqueue(store, 2, process="same")
    assert [m.id for m in outbox.lease(eng, "w1", now=T0)] == [first]
    assert outbox.lease(eng, "w2", now=T0) == []  # the second waits for the first
    outbox.complete(eng, first, "w1", now=T0)
    assert [m.id for m in outbox.lease(eng, "w2", now=T0)] == [second]


def test_concurrent_leasers_never_take_the_same_row(db_url, store) -> None:
    ids = set(_enqueue(store, 200))
    engines = [make_engine(db_url) for _ in range(2)]
    taken: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str, eng) -> None:
        try:
            barrier.wait()
            while True:
                got = outbox.lease(eng, name, now=T0, limit=3, lease_ms=60_000)
                if not got:
                    return
                taken[name].extend(m.id for m in got)
                time.sleep(0.001)  # delivering them: the other worker leases meanwhile
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(n, e)) for n, e in zip("ab", engines, strict=True)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for eng in engines:
        eng.dispose()
    assert not errors, errors
    a, b = taken["a"], taken["b"]
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert not set(a) & set(b), "a row was leased by both workers"
    assert set(a) | set(b) == ids
    assert a and b, "both workers got work (they really ran concurrently)"


def test_a_failed_step_writes_nothing(store) -> None:
    """Entity, agreement and outbox rows of one step commit together or not at all."""
    h = Harness()
    req = h.consumer.neg.request(
        provider_id=PROVIDER_ID,
        provider_address=PROVIDER_URL,
        offer={**POLICY, "@id": OFFER_ID, "target": DATASET},
    )
    step = h.provider.neg.handle(h.consumer_caller, req.outgoing[0].message, None)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.apply(step)
        raise RuntimeError("crash before commit")
    with store.transaction() as tx:
        assert tx.get_negotiation(step.entity.id) is None
        assert tx.get_agreement(step.agreement.id) is None
    assert outbox.pending_count(store.engine) == 0


def test_edr_pending_index_returns_only_marked_negotiations_that_ended(store) -> None:
    h = Harness()
    offer = {**POLICY, "@id": OFFER_ID, "target": DATASET}
    made = []
    with store.transaction() as tx:
        for _ in range(4):
            req = h.consumer.neg.request(
                provider_id=PROVIDER_ID, provider_address=PROVIDER_URL, offer=offer
            )
            made.append(tx.apply(req))
    marked, unmarked_final = made[:3], made[3]
    with store.transaction() as tx:
        for n in marked:
            tx.add_edr_pending(n.id)
        tx.add_edr_pending(marked[0].id)  # marking twice is harmless
        assert tx.settled_edr_pending() == []  # none has ended yet
        final = tx.save_negotiation(replace(marked[0], state=NegotiationState.FINALIZED))
        ended = tx.save_negotiation(replace(marked[1], state=NegotiationState.TERMINATED))
        tx.save_negotiation(replace(unmarked_final, state=NegotiationState.FINALIZED))
    with store.transaction() as tx:
        settled = tx.settled_edr_pending()
        assert {n.id for n in settled} == {final.id, ended.id}
        tx.drop_edr_pending(final.id)
        tx.drop_edr_pending(ended.id)
    with store.transaction() as tx:
        assert tx.settled_edr_pending() == []
        again = tx.get_negotiation(marked[2].id)
        tx.save_negotiation(replace(again, state=NegotiationState.FINALIZED))
        assert [n.id for n in tx.settled_edr_pending()] == [marked[2].id]


def test_leases_of_dead_processes_on_this_host_are_released(store) -> None:
    """A node restarted after SIGKILL does not wait out its own dead worker's leases."""
    eng = store.engine
    rows = _enqueue(store, 3)  # three processes, one row each
    dead = outbox.owner_id("host-a", 4242, "x")
    live = outbox.owner_id("host-a", 4343, "y")
    other_host = outbox.owner_id("host-b", 4242, "z")
    outbox.lease(eng, dead, now=T0, limit=1)
    outbox.lease(eng, live, now=T0, limit=1)
    outbox.lease(eng, other_host, now=T0, limit=1)
    later = T0 + timedelta(seconds=1)  # every lease still has 29 s to run
    assert outbox.lease(eng, "w2", now=later) == []
    freed = outbox.release_orphaned_leases(eng, "host-a", now=later, alive=lambda pid: pid == 4343)
    assert freed == 1
    (got,) = outbox.lease(eng, "w2", now=later)
    assert got.id == rows[0]
    assert not outbox.complete(eng, got.id, dead, now=later)  # the dead owner lost it
    # the live holder's lease is released only once it is dead; another host's never
    assert outbox.release_orphaned_leases(eng, "host-a", now=later, alive=lambda pid: False) == 1
    assert [m.id for m in outbox.lease(eng, "w3", now=later)] == [rows[1]]
