"""Shared set-up for audit and CLI tests: a log with records, checkpoints and anchors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eth_account import Account

from ledger.anchor import Anchorer, AnchorPolicy
from ledger.evm import Chain
from ledger.log import Log, NewRecord
from tests.ledger.conftest import agreement

ANCHOR_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


class StepClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Anchored:
    chain: Chain
    contract: str
    anchorer: Anchorer


def append(engine, log: Log, start: int, n: int) -> None:
    with engine.begin() as conn:
        log.append_many(
            conn,
            [
                NewRecord("contract-agreement", agreement(i), f"agr-{i}")
                for i in range(start, start + n)
            ],
        )


def anchored_chain(engine, log: Log, signer, chain: Chain | None = None, fund=None) -> Anchored:
    """Deploy the contract on ``chain`` (embedded by default) and an anchorer for ``log``."""
    chain = chain or Chain.embedded()
    account = Account.from_key(ANCHOR_KEY)
    if fund is not None:
        fund(account.address)
    else:
        w3 = chain.w3
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": account.address, "value": 10**20}
            )
        )
    contract = chain.deploy(account)
    anchorer = Anchorer(
        engine,
        log,
        chain,
        contract=contract,
        account_key=ANCHOR_KEY,
        signer=signer,
        policy=AnchorPolicy(max_records=1, confirmations=1),
        chain_id=chain.chain_id(),
        clock=StepClock(),
    )
    return Anchored(chain, contract, anchorer)


def anchor_now(a: Anchored) -> int:
    """Run the anchorer until the latest checkpoint is confirmed; return its size."""
    for _ in range(5):
        report = a.anchorer.step()
        assert report.error is None, report.error
        if report.confirmed:
            return report.confirmed[-1]
    raise AssertionError("anchor did not confirm")
