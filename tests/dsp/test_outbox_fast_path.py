"""The outbox fast path: rows leased in the transaction that writes them and handed to the
dispatcher after the commit (no lease transaction), with the normal path as the fallback for
ordering, crashes and retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors import tables as t
from connectors.delivery import Dispatcher
from connectors.dsp import outbox
from connectors.dsp.outbox import OutboxMessage
from connectors.dsp.service import DeliveryResult, FastPath
from connectors.dsp.store import ConnectorStore
from connectors.dsp.vocabulary import NegotiationState
from tests.dsp.test_service import (  # noqa: F401  (nodes is a fixture)
    P_ID,
    P_URL,
    catalog_offer,
    nodes,
    pump,
)
from tests.dsp.test_store import T0, _enqueue


@pytest.fixture
def store(migrated_engine) -> ConnectorStore:
    return ConnectorStore(migrated_engine, clock=lambda: T0)


def row_state(eng):
    with eng.connect() as conn:
        return conn.execute(select(t.outbox)).one()


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_enqueue_leases_the_row_in_its_own_transaction(store) -> None:
    eng = store.engine
    with outbox.leasing_on_enqueue("me", lease_ms=1000) as taken:
        (row,) = _enqueue(store, 1)
    (got,) = taken.leased
    assert taken.unleased == 0
    assert (got.id, got.lease_owner, got.attempts, got.leased_until) == (
        row, "me", 1, outbox.epoch_ms(T0) + 1000)
    assert got.url == "https://c/dsp/transfers/urn:c:0/completion"
    assert got.body["@type"] == "TransferCompletionMessage"
    assert outbox.lease(eng, "w2", now=T0) == []  # nobody else takes it
    assert outbox.complete(eng, row, "me", now=T0)
    assert outbox.pending_count(eng) == 0
    (plain,) = _enqueue(store, 1)  # outside the block: written unleased, as before
    assert [m.id for m in outbox.lease(eng, "w2", now=T0)] == [plain]


def test_a_row_is_not_leased_past_an_earlier_pending_row_of_its_process(store) -> None:
    eng = store.engine
    with outbox.leasing_on_enqueue("me") as taken:
        first, second = _enqueue(store, 2, process="same")
        (other,) = _enqueue(store, 1, process="other")
    assert [m.id for m in taken.leased] == [first, other] and taken.unleased == 1
    with outbox.leasing_on_enqueue("me") as later:
        (third,) = _enqueue(store, 1, process="same")
    assert later.leased == [] and later.unleased == 1
    assert outbox.lease(eng, "w2", now=T0) == []  # the second waits for the first
    assert outbox.complete(eng, first, "me", now=T0)
    assert [m.id for m in outbox.lease(eng, "w2", now=T0)] == [second]
    assert outbox.complete(eng, second, "w2", now=T0)
    assert [m.id for m in outbox.lease(eng, "w2", now=T0)] == [third]
    assert other not in (second, third)


def test_a_rolled_back_transaction_hands_nothing_over(nodes) -> None:  # noqa: F811
    provider, consumer, _net, _clock = nodes
    handed: list = []
    consumer.fast_path = FastPath("me", lambda rows, unleased: handed.append((rows, unleased)))

    def fail(*args) -> None:
        raise RuntimeError("hook failed")

    consumer.store.hooks = (fail,)
    with pytest.raises(RuntimeError):
        consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL,
                                   offer=catalog_offer(provider))
    assert handed == [] and outbox.pending_count(consumer.store.engine) == 0


class CountingSender:
    def __init__(self, send) -> None:
        self.inner = send
        self.rows: list[OutboxMessage] = []
        self.lock = threading.Lock()

    def __call__(self, row: OutboxMessage) -> DeliveryResult:
        with self.lock:
            self.rows.append(row)
        return self.inner(row)


def test_handed_over_row_is_sent_once_without_a_lease_query(nodes, monkeypatch) -> None:  # noqa: F811
    provider, consumer, net, _clock = nodes
    send = CountingSender(net.sender(consumer.participant_id))
    owner = "host:1:c"
    dispatcher = Dispatcher(consumer, send, owner=owner, idle_seconds=60)
    dispatcher._drain_due = False  # as for a thread started after the recovery drain
    consumer.fast_path = FastPath(owner, dispatcher.hand_over)
    leases: list[str] = []
    real_lease = outbox.lease
    monkeypatch.setattr(outbox, "lease", lambda eng, who, **kw: leases.append(who)
                        or real_lease(eng, who, **kw))
    try:
        neg = consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL,
                                         offer=catalog_offer(provider))
        dispatcher.kick()  # covered by the hand-over: no full drain

        def acknowledged() -> bool:  # the ACK was recorded (providerPid), after complete
            with consumer.store.transaction() as tx:
                return tx.get_negotiation(neg.id).provider_pid is not None

        until(acknowledged)
        assert outbox.pending_count(consumer.store.engine) == 0
        assert [r.message_type for r in send.rows] == ["ContractRequestMessage"]
        assert leases == []

        def finalized() -> bool:  # the provider's rows by the normal path, ours handed over
            pump(net, provider)
            with consumer.store.transaction() as tx:
                return tx.get_negotiation(neg.id).state is NegotiationState.FINALIZED

        until(finalized)
        sent = [r.message_type for r in send.rows]
        assert sent == ["ContractRequestMessage", "ContractAgreementVerificationMessage"]
        assert leases == [P_ID] * len(leases)  # the consumer's dispatcher never leased
    finally:
        dispatcher.stop()


def test_a_crash_after_commit_leaves_a_row_the_normal_path_delivers(nodes) -> None:  # noqa: F811
    provider, consumer, net, clock = nodes
    eng = consumer.store.engine
    dead = outbox.owner_id("host-a", 4242, "x")
    consumer.fast_path = FastPath(dead, lambda rows, unleased: None)  # dies before sending
    neg = consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL,
                                     offer=catalog_offer(provider))
    consumer.fast_path = None
    send = net.sender(consumer.participant_id)
    assert consumer.deliver_due(send, owner="w2") == 0  # held by the dead lease
    assert outbox.release_orphaned_leases(eng, "host-a", now=clock(), alive=lambda p: False) == 1
    assert consumer.deliver_due(send, owner="w2") == 1
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        assert tx.get_negotiation(neg.id).state is NegotiationState.FINALIZED
    # on another host nothing frees it: the lease runs out
    consumer.fast_path = FastPath(outbox.owner_id("host-b", 1, "y"), lambda rows, n: None)
    again = consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL,
                                       offer=catalog_offer(provider))
    consumer.fast_path = None
    assert consumer.deliver_due(send, owner="w2") == 0
    clock.now += timedelta(milliseconds=outbox.DEFAULT_LEASE_MS + 1)
    assert consumer.deliver_due(send, owner="w2") == 1
    with consumer.store.transaction() as tx:
        assert tx.get_negotiation(again.id).provider_pid is not None


def test_a_failed_fast_send_goes_to_retry(nodes) -> None:  # noqa: F811
    provider, consumer, net, clock = nodes
    eng = consumer.store.engine
    net.down.add(P_URL)
    send = CountingSender(net.sender(consumer.participant_id))
    owner = "host:1:c"
    dispatcher = Dispatcher(consumer, send, owner=owner, idle_seconds=60)
    consumer.fast_path = FastPath(owner, dispatcher.hand_over)
    try:
        neg = consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL,
                                         offer=catalog_offer(provider))
        until(lambda: len(send.rows) == 1)
        until(lambda: row_state(eng).lease_owner is None)
    finally:
        dispatcher.stop()
        consumer.fast_path = None
    # the retry was scheduled like any failed delivery (0.5 s back-off, lease given up)
    got = row_state(eng)
    assert (got.status, got.attempts) == ("pending", 1)
    assert got.next_attempt_at == outbox.epoch_ms(clock()) + outbox.RETRY_DELAYS_MS[0]
    assert "connection refused" in got.last_error
    assert outbox.lease(eng, "w2", now=clock()) == []
    net.down.clear()
    clock.now += timedelta(seconds=1)
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        assert tx.get_negotiation(neg.id).state is NegotiationState.FINALIZED
