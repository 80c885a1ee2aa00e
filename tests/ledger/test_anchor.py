"""Anchoring: contract, state machine, anchorer on the embedded EVM and on a real anvil."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from sqlalchemy import select

from ledger import tables
from ledger.anchor import (
    ALLOWED,
    Anchorer,
    AnchorPolicy,
    AnchorState,
    TransitionError,
    anchor_status,
    transition,
)
from ledger.evm import Chain, artifact, start_embedded
from ledger.log import NewRecord
from tests.ledger.conftest import agreement
from tests.support.anvil import free_port


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


_ids = itertools.count()


def _append(engine, log, n: int) -> None:
    with engine.begin() as conn:
        log.append_many(
            conn, [NewRecord("contract-agreement", agreement(next(_ids))) for _ in range(n)]
        )


def _fund_embedded(chain: Chain, address: str) -> None:
    w3 = chain.w3
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": 10**20})
    w3.eth.wait_for_transaction_receipt(tx)


def _mine(chain: Chain, anvil=None, blocks: int = 1) -> None:
    if anvil is not None:
        anvil.mine(blocks)
    else:
        chain.w3.provider.ethereum_tester.mine_blocks(blocks)


def _anchors(engine):
    with engine.connect() as conn:
        return conn.execute(select(tables.anchors).order_by(tables.anchors.c.id)).all()


@pytest.fixture
def key() -> bytes:
    return bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


# -- state machine as a table ---------------------------------------------------------------
def test_every_transition_pair():
    for a in AnchorState:
        for b in AnchorState:
            if b in ALLOWED[a]:
                assert transition(a, b) is b
            else:
                with pytest.raises(TransitionError):
                    transition(a, b)
    assert ALLOWED[AnchorState.CONFIRMED] == frozenset()


# -- the contract ---------------------------------------------------------------------------
def test_shipped_bytecode_is_what_the_script_builds():
    from ledger.contracts import build

    try:
        built = build.compile_contract()
    except build.BuildError as exc:
        pytest.skip(str(exc))
    assert built["bytecode"] == artifact()["bytecode"]
    assert built["abi"] == artifact()["abi"]


def test_contract_owner_only_and_no_rewrite(key):
    chain = Chain.embedded()
    owner = Account.from_key(key)
    intruder = Account.create()
    _fund_embedded(chain, owner.address)
    _fund_embedded(chain, intruder.address)
    address = chain.deploy(owner)
    fees = chain.fees()

    def send(acct, size, root):
        tx = chain.anchor_tx(
            address,
            acct,
            origin="o.example/log",
            tree_size=size,
            root=root,
            nonce=chain.nonce(acct.address),
            gas=120_000,
            fees=fees,
        )
        return chain.wait(chain.send(acct, tx))

    assert send(owner, 5, b"\x11" * 32).status == 1
    assert chain.anchored_root(address, "o.example/log", 5) == b"\x11" * 32
    assert chain.latest_anchored_size(address, "o.example/log") == 5
    assert send(owner, 5, b"\x11" * 32).status == 1  # same root again: idempotent
    # explicit gas: a rejected anchor is mined as reverted (status 0), never silently kept
    assert send(owner, 5, b"\x22" * 32).status == 0  # another root for an anchored size
    assert send(intruder, 6, b"\x33" * 32).status == 0  # not the owner
    assert chain.anchored_root(address, "o.example/log", 6) is None


# -- the anchorer ---------------------------------------------------------------------------
def _anchorer(engine, log, chain, address, key, signer, clock, **policy):
    return Anchorer(
        engine,
        log,
        chain,
        contract=address,
        account_key=key,
        signer=signer,
        policy=AnchorPolicy(
            **{"interval_seconds": 60, "max_records": 100, "confirmations": 2, **policy}
        ),
        chain_id=chain.chain_id(),
        clock=clock,
    )


def test_batches_on_embedded_chain(engine, log, signer, key):
    chain, address = start_embedded(key)
    assert chain.ephemeral and chain.code_at(address)
    clock = Clock()
    anchorer = _anchorer(engine, log, chain, address, key, signer, clock)
    assert anchorer.step().created is None  # empty log: nothing to anchor
    _append(engine, log, 30)
    assert anchorer.step().created is None  # 30 < 100 records and interval not reached
    clock.advance(61)
    report = anchorer.step()
    assert report.created == 30 and report.sent
    _mine(chain)
    report = anchorer.step()
    assert report.confirmed == [30]
    with engine.connect() as conn:
        assert chain.anchored_root(address, log.origin, 30) == log.root(conn, 30)
    # 250 more records: one transaction for the whole batch
    _append(engine, log, 250)
    report = anchorer.step()
    assert report.created == 280 and report.sent
    _mine(chain)
    assert anchorer.step().confirmed == [280]
    _append(engine, log, 1000)
    assert anchorer.step().created == 1280
    _mine(chain)
    assert anchorer.step().confirmed == [1280]
    assert [a.state for a in _anchors(engine)] == ["confirmed"] * 3
    with engine.connect() as conn:  # status names the newest anchor, not the first one
        assert anchor_status(conn, log)["latest_confirmed"]["tree_size"] == 1280
    # gas does not depend on batch size (250 vs 1000 records); the first anchor of a log
    # pays once more for initialising the contract's latestSize slot
    gas = [a.gas_used for a in _anchors(engine)]
    assert abs(gas[1] - gas[2]) < 100, gas
    assert anchorer.step() == type(report)()  # nothing new: idempotent


@pytest.mark.anvil
def test_unreachable_chain_loses_nothing_and_catches_up(engine, log, signer, key, anvil):
    down = Chain.rpc(f"http://127.0.0.1:{free_port()}", timeout=1)
    clock = Clock()
    up = Chain.rpc(anvil.url)
    anvil.fund(Account.from_key(key).address)
    address = up.deploy(Account.from_key(key))
    anchorer = Anchorer(
        engine,
        log,
        down,
        contract=address,
        account_key=key,
        signer=signer,
        policy=AnchorPolicy(max_records=10, confirmations=1),
        chain_id=anvil.chain_id,
        clock=clock,
    )
    _append(engine, log, 12)
    report = anchorer.step()
    assert report.created == 12 and report.sent is None and "EVM node" in report.error
    _append(engine, log, 5)  # logging goes on while the chain is down
    clock.advance(1)
    assert anchorer.step().sent is None  # backing off
    (row,) = _anchors(engine)
    assert row.state == "pending" and row.attempts >= 1 and row.next_attempt_at is not None
    anchorer.chain = up
    clock.advance(600)
    report = anchorer.step()
    assert report.sent and report.error is None
    assert anchorer.step().confirmed == [17]  # one transaction covers everything logged
    with engine.connect() as conn:
        assert up.anchored_root(address, log.origin, 17) == log.root(conn, 17)


@pytest.mark.anvil
def test_wrong_chain_id_sends_nothing(engine, log, signer, key, anvil):
    chain = Chain.rpc(anvil.url)
    anvil.fund(Account.from_key(key).address)
    address = chain.deploy(Account.from_key(key))
    anchorer = Anchorer(
        engine,
        log,
        chain,
        contract=address,
        account_key=key,
        signer=signer,
        policy=AnchorPolicy(max_records=1),
        chain_id=1,
        clock=Clock(),
    )
    _append(engine, log, 3)
    report = anchorer.step()
    assert report.sent is None and "wrong chain" in report.error
    assert chain.nonce(Account.from_key(key).address) == 1  # only the deployment


@pytest.mark.anvil
def test_reorged_anchor_is_resent(engine, log, signer, key, anvil):
    chain = Chain.rpc(anvil.url)
    anvil.fund(Account.from_key(key).address)
    address = chain.deploy(Account.from_key(key))
    clock = Clock()
    anchorer = _anchorer(
        engine, log, chain, address, key, signer, clock, max_records=5, confirmations=3
    )
    _append(engine, log, 8)
    snapshot = anvil.rpc("evm_snapshot")
    first = anchorer.step().sent
    assert anchorer.step().confirmed == []  # mined (automine) but not yet 3 deep
    assert _anchors(engine)[0].state == "mined"
    anvil.rpc("evm_revert", snapshot)  # the block holding the anchor is gone
    assert chain.receipt(first) is None
    report = anchorer.step()
    assert report.reset == [8]
    if report.sent is None:
        report = anchorer.step()
    assert report.sent
    anvil.mine(3)
    assert anchorer.step().confirmed == [8]
    with engine.connect() as conn:
        assert chain.anchored_root(address, log.origin, 8) == log.root(conn, 8)
    (row,) = _anchors(engine)
    assert row.attempts == 2 and row.state == "confirmed"


@pytest.mark.anvil
def test_stuck_and_dropped_transactions_are_replaced(engine, log, signer, key, anvil):
    chain = Chain.rpc(anvil.url)
    anvil.fund(Account.from_key(key).address)
    address = chain.deploy(Account.from_key(key))
    clock = Clock()
    anchorer = _anchorer(
        engine,
        log,
        chain,
        address,
        key,
        signer,
        clock,
        max_records=1,
        confirmations=1,
        resend_after_seconds=30,
    )
    anvil.rpc("evm_setAutomine", False)
    _append(engine, log, 3)
    first = anchorer.step().sent
    assert anchorer.step().sent is None  # in the pool, not stale yet: wait
    clock.advance(31)  # stuck: replace it (same nonce, higher fee)
    report = anchorer.step()
    assert report.reset == [3]
    second = report.sent or anchorer.step().sent
    assert second and second != first
    (row,) = _anchors(engine)
    nonce = row.nonce
    anvil.rpc("anvil_dropTransaction", second)  # the pool forgets it entirely
    assert not chain.is_known(second)
    report = anchorer.step()
    assert report.reset == [3]
    third = report.sent or anchorer.step().sent
    assert third
    (row,) = _anchors(engine)
    assert row.nonce == nonce  # the nonce was still open: reused, no gap
    anvil.rpc("evm_setAutomine", True)
    anvil.mine(1)
    assert anchorer.step().confirmed == [3]
    assert chain.nonce(Account.from_key(key).address, pending=False) == nonce + 1
    with engine.connect() as conn:
        assert chain.anchored_root(address, log.origin, 3) == log.root(conn, 3)


def test_reverted_anchor_fails_and_backs_off(engine, log, signer, key):
    chain = Chain.embedded()
    owner = Account.create()
    _fund_embedded(chain, owner.address)
    _fund_embedded(chain, Account.from_key(key).address)
    address = chain.deploy(owner)  # the anchorer's key is NOT the owner
    clock = Clock()
    anchorer = _anchorer(
        engine, log, chain, address, key, signer, clock, max_records=1, confirmations=1
    )
    _append(engine, log, 2)
    assert anchorer.step().sent
    anchorer.step()
    (row,) = _anchors(engine)
    assert row.state == "failed" and "reverted" in row.last_error
    assert anchorer.status()["anchors"] == {"failed": 1}
    clock.advance(10)
    assert anchorer.step().created is None  # no gas burnt on every pass
    clock.advance(AnchorPolicy().backoff_max_seconds)
    assert anchorer.step().created == 2  # retried after the back-off
