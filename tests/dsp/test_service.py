"""Two nodes' protocol services back to back over their own databases (no HTTP yet):
durability, replays, error replies, outbox delivery, retries and give-up."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from connectors.dsp import messages as m
from connectors.dsp import outbox
from connectors.dsp.catalog import offer_id
from connectors.dsp.catalog_messages import CatalogRequestMessage
from connectors.dsp.definitions import Asset, ContractDefinition, PolicyDefinition
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.outcome import ProcessKind
from connectors.dsp.policy import Caller
from connectors.dsp.service import ENDPOINTS, DeliveryResult, DspProtocol, Reply
from connectors.dsp.store import ConnectorStore
from connectors.dsp.vocabulary import NegotiationState, Path, TransferState
from node.db import make_engine, migrate
from tests.dsp.protocol_harness import POLICY, PullDataFlow, member_checker
from tests.dsp.schemas import DSP_DIR, assert_valid
from tests.support.databases import fresh_database_url

P_ID, C_ID = "did:web:supplier.example", "did:web:oem.example"
P_URL, C_URL = "https://supplier.example/dsp", "https://oem.example/dsp"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Network:
    """Routes outbox rows to the other node's ``receive`` as the binding will."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[DspProtocol, str]] = {}
        self.down: set[str] = set()
        self.seen: list[dict] = []

    def sender(self, me: str):
        def send(row: outbox.OutboxMessage) -> DeliveryResult:
            base = next(u for u in self.nodes if row.url.startswith(u))
            if base in self.down:
                return DeliveryResult(False, None, error="connection refused")
            node, _ = self.nodes[base]
            path = row.url[len(base) :]
            endpoint, pid = route(path)
            if DSP_DIR.is_dir():
                assert_valid(row.body)
            self.seen.append(row.body)
            reply = node.receive(Caller(me, {"membership": True}), endpoint, row.body, pid)
            return DeliveryResult(
                200 <= reply.status < 300,
                reply.status,
                reply.body,
                "" if reply.status < 300 else str(reply.body),
            )

        return send


def route(path: str) -> tuple[str, str | None]:
    for template in ENDPOINTS:
        pattern = "^" + re.escape(template).replace(re.escape("{pid}"), "([^/]+)") + "$"
        match = re.match(pattern, path)
        if match:
            return template, unquote(match.group(1)) if match.groups() else None
    raise AssertionError(f"no endpoint for {path}")


@pytest.fixture
def nodes(db_url, tmp_path):
    clock = Clock()
    engines = []
    (tmp_path / "c").mkdir()
    with fresh_database_url(tmp_path / "c") as other_url:
        net = Network()
        made = []
        for url, pid, base in ((db_url, P_ID, P_URL), (other_url, C_ID, C_URL)):
            eng = make_engine(url)
            migrate(eng)
            engines.append(eng)
            node = DspProtocol(
                ConnectorStore(eng, clock=clock),
                participant_id=pid,
                protocol_url=base,
                checker=member_checker,
                data_flow=PullDataFlow(),
                clock=clock,
            )
            net.nodes[base] = (node, pid)
            made.append(node)
        provider, consumer = made
        with provider.store.transaction() as tx:
            tx.create_asset(Asset("urn:asset:qa", {"dct:title": "inspections"}))
            tx.create_policy(
                PolicyDefinition("open", {"@type": "Set", "permission": [{"action": "use"}]})
            )
            tx.create_policy(PolicyDefinition("terms", POLICY))
            tx.create_contract_definition(ContractDefinition("cd", "open", "terms"))
        yield provider, consumer, net, clock
        for eng in engines:
            eng.dispose()


def pump(net: Network, *nodes_: DspProtocol) -> None:
    """Deliver until every outbox is empty."""
    for _ in range(20):
        moved = sum(
            n.deliver_due(net.sender(n.participant_id), owner=n.participant_id) for n in nodes_
        )
        if not moved:
            return
    raise AssertionError("outboxes did not drain")


def catalog_offer(provider: DspProtocol) -> dict:
    """The first offer of the provider's catalog, as a consumer would request it."""
    page = provider.catalog_request(
        Caller(C_ID, {"membership": True}),
        CatalogRequestMessage().to_json(),
        request_url=f"{P_URL}/catalog/request",
    )
    assert page.status == 200
    dataset = page.body["dataset"][0]
    return {**dataset["hasPolicy"][0], "target": dataset["@id"]}


def test_negotiation_and_transfer_between_two_nodes(nodes) -> None:
    provider, consumer, net, _ = nodes
    offer = catalog_offer(provider)
    assert offer["@id"] == offer_id("cd", "urn:asset:qa")
    neg = consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL, offer=offer)
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        done = tx.get_negotiation(neg.id)
        assert done.state is NegotiationState.FINALIZED and done.provider_pid
        (agreement,) = tx.find_agreements(provider_id=P_ID)
    with provider.store.transaction() as tx:
        assert tx.get_negotiation(done.provider_pid).state is NegotiationState.FINALIZED
        assert tx.get_agreement(agreement.id).policy == agreement.policy
    tp = consumer.start_transfer(
        agreement_id=agreement.id, provider_address=P_URL, format="HttpData-PULL"
    )
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        started = tx.get_transfer(tp.id)
    assert started.state is TransferState.STARTED and started.data_address["endpoint"]
    consumer.complete_transfer(tp.id)
    pump(net, provider, consumer)
    with provider.store.transaction() as tx:
        assert tx.get_transfer(started.provider_pid).state is TransferState.COMPLETED
    types = [d["@type"] for d in net.seen]
    assert types.count("ContractAgreementMessage") == 1 and "TransferStartMessage" in types


def test_existing_agreement_is_found_for_reuse(nodes) -> None:
    provider, consumer, net, _ = nodes
    offer = catalog_offer(provider)
    assert consumer.reusable_agreement(provider_id=P_ID, offer=offer) is None
    consumer.start_negotiation(provider_id=P_ID, provider_address=P_URL, offer=offer)
    pump(net, provider, consumer)
    found = consumer.reusable_agreement(provider_id=P_ID, offer=offer)
    assert found is not None and found.asset_id == offer["target"]
    other_terms = {**offer, "permission": [{"action": "use"}]}
    assert consumer.reusable_agreement(provider_id=P_ID, offer=other_terms) is None
    assert consumer.reusable_agreement(provider_id="did:web:x", offer=offer) is None


def test_replayed_message_gets_the_recorded_answer(nodes) -> None:
    provider, _consumer, _net, _ = nodes
    offer = catalog_offer(provider)
    caller = Caller(C_ID, {"membership": True})
    body = m.ContractRequestMessage("urn:c:1", offer, callback_address=C_URL).to_json()
    first = provider.receive(caller, Path.NEGOTIATIONS_REQUEST, body)
    again = provider.receive(caller, Path.NEGOTIATIONS_REQUEST, body)
    assert first.status == 201 and again == first
    assert outbox.pending_count(provider.store.engine) == 1  # one agreement, not two
    with provider.store.transaction() as tx:
        assert len(tx.list_negotiations()) == 1


def test_error_replies_carry_dsp_error_bodies(nodes) -> None:
    provider, _, _, _ = nodes
    caller = Caller(C_ID, {"membership": True})
    r = provider.receive(caller, Path.NEGOTIATIONS_REQUEST, {"@type": "ContractRequestMessage"})
    assert r.status == 400 and r.body["@type"] == "ContractNegotiationError"
    r = provider.receive(
        caller,
        Path.NEGOTIATION_VERIFICATION,
        m.ContractAgreementVerificationMessage("urn:nope", "urn:c").to_json(),
        pid="urn:nope",
    )
    assert r.status == 404 and r.body["providerPid"] == "urn:nope"
    r = provider.receive(
        caller,
        Path.TRANSFER_COMPLETION,
        m.TransferCompletionMessage("urn:nope", "urn:c").to_json(),
        pid="urn:nope",
    )
    assert r.status == 404 and r.body["@type"] == "TransferError"
    r = provider.describe(caller, ProcessKind.NEGOTIATION, "urn:nope")
    assert r.status == 404 and r.body["code"] == "NOT_FOUND"
    r = provider.dataset(caller, "urn:asset:none")
    assert r.status == 404 and r.body["@type"] == "CatalogError"
    r = provider.catalog_request(caller, {"@type": "CatalogRequestMessage"}, request_url=P_URL)
    assert r.status == 400 and r.body["@type"] == "CatalogError"
    if DSP_DIR.is_dir():
        assert_valid(r.body)
    assert provider.receive(caller, "/nowhere", {}) == Reply(404, None)
    v = provider.version("/dsp")
    assert v.body["protocolVersions"][0]["version"] == "2025-1"
    if DSP_DIR.is_dir():
        assert_valid(v.body, "VersionResponse")


def test_invalid_transition_is_400_and_state_unchanged(nodes) -> None:
    provider, consumer, net, _ = nodes
    neg = consumer.start_negotiation(
        provider_id=P_ID, provider_address=P_URL, offer=catalog_offer(provider)
    )
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        pp = tx.get_negotiation(neg.id).provider_pid
    caller = Caller(C_ID, {"membership": True})
    r = provider.receive(
        caller,
        Path.NEGOTIATION_EVENTS,
        m.ContractNegotiationEventMessage(pp, neg.id, m.NegotiationEventType.ACCEPTED).to_json(),
        pid=pp,
    )
    assert r.status == 400 and r.body["code"] == "INVALID_TRANSITION"
    assert "FINALIZED" in r.body["reason"][0]
    stranger = Caller("did:web:stranger", {"membership": True})
    r = provider.describe(stranger, ProcessKind.NEGOTIATION, pp)
    assert r.status == 404
    assert provider.describe(caller, ProcessKind.NEGOTIATION, pp).body["state"] == "FINALIZED"


def test_unreachable_peer_is_retried_then_given_up(nodes) -> None:
    provider, consumer, net, clock = nodes
    net.down.add(P_URL)
    neg = consumer.start_negotiation(
        provider_id=P_ID, provider_address=P_URL, offer=catalog_offer(provider)
    )
    send = net.sender(C_ID)
    assert consumer.deliver_due(send, owner="w") == 1
    assert consumer.deliver_due(send, owner="w") == 0  # backing off
    net.down.clear()
    clock.now += timedelta(seconds=1)
    pump(net, provider, consumer)  # the retry succeeds: the negotiation completes
    with consumer.store.transaction() as tx:
        assert tx.get_negotiation(neg.id).state is NegotiationState.FINALIZED
    net.down.add(P_URL)
    gone = consumer.start_negotiation(
        provider_id=P_ID, provider_address=P_URL, offer=catalog_offer(provider)
    )
    for _ in range(outbox.MAX_ATTEMPTS + 1):
        consumer.deliver_due(send, owner="w")
        clock.now += timedelta(minutes=10)
    with consumer.store.transaction() as tx:
        ended = tx.get_negotiation(gone.id)
    assert ended.state is NegotiationState.TERMINATED and ended.error.code == "DELIVERY_FAILED"
    assert "connection refused" in ended.error.reasons[0]


def test_operator_commands_and_unknown_ids(nodes) -> None:
    provider, consumer, net, _ = nodes
    neg = consumer.start_negotiation(
        provider_id=P_ID, provider_address=P_URL, offer=catalog_offer(provider)
    )
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        (agreement,) = tx.find_agreements(provider_id=P_ID)
    tp = consumer.start_transfer(
        agreement_id=agreement.id, provider_address=P_URL, format="HttpData-PULL"
    )
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        pp = tx.get_transfer(tp.id).provider_pid
    provider.suspend_transfer(pp, ErrorDetail("USAGE_LIMIT", ("5 of 5 downloads used",)))
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        suspended = tx.get_transfer(tp.id)
    assert suspended.state is TransferState.SUSPENDED
    assert suspended.error.reasons == ("5 of 5 downloads used",)
    provider.resume_transfer(pp)
    pump(net, provider, consumer)
    with consumer.store.transaction() as tx:
        assert tx.get_transfer(tp.id).state is TransferState.STARTED
    consumer.terminate_transfer(tp.id, ErrorDetail("OPERATOR", ("done",)))
    pump(net, provider, consumer)
    with provider.store.transaction() as tx:
        assert tx.get_transfer(pp).state is TransferState.TERMINATED
    from connectors.dsp.errors import InvalidTransitionError, ProcessNotFoundError

    with pytest.raises(ProcessNotFoundError):
        consumer.terminate_negotiation("urn:none", ErrorDetail("X", ("y",)))
    with pytest.raises(ProcessNotFoundError):
        consumer.start_transfer(
            agreement_id="urn:none", provider_address=P_URL, format="HttpData-PULL"
        )
    with pytest.raises(InvalidTransitionError):
        consumer.terminate_negotiation(neg.id, ErrorDetail("X", ("y",)))


def test_concurrent_duplicates_create_one_process(nodes) -> None:
    """The same initial request delivered twice at once (a retry racing the original)."""
    import threading

    provider, _consumer, _net, _ = nodes
    offer = catalog_offer(provider)
    caller = Caller(C_ID, {"membership": True})
    replies: list[Reply] = []
    barrier = threading.Barrier(4)

    def deliver(n: int) -> None:
        body = m.ContractRequestMessage(f"urn:c:{n % 2}", offer, callback_address=C_URL)
        barrier.wait()
        replies.append(provider.receive(caller, Path.NEGOTIATIONS_REQUEST, body.to_json()))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(replies) == 4 and all(r.status == 201 for r in replies), replies
    by_consumer = {}
    for r in replies:
        by_consumer.setdefault(r.body["consumerPid"], set()).add(r.body["providerPid"])
    assert all(len(pids) == 1 for pids in by_consumer.values()), by_consumer
    with provider.store.transaction() as tx:
        assert len(tx.list_negotiations()) == 2
    assert outbox.pending_count(provider.store.engine) == 2
