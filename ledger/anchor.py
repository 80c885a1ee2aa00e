"""Anchoring signed checkpoints on an EVM chain, in batches, surviving outages and reorgs.

An anchor row moves through a small state machine (`ALLOWED`); `Anchorer.step()` is one
pass of the processor, safe to run again at any time:

1. reconcile the anchor in flight with the chain (mined? confirmed? dropped by a reorg?);
2. when a batch is due (every ``interval`` seconds or ``max_records`` new leaves), sign a
   checkpoint of the whole log and record a PENDING anchor for it;
3. send a PENDING anchor — refreshed to the newest checkpoint first, so after an outage one
   transaction covers everything logged meanwhile (nothing is lost, nothing is paid twice).

One transaction per batch whatever its size; explicit nonce, gas limit and fees; retries
with exponential backoff. The log never waits for the chain: appends do not touch anchors.
Run one anchorer per log (the node's worker leases it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from ledger import tables
from ledger.checkpoint import Signer
from ledger.errors import ChainError, LedgerError
from ledger.evm import Chain, account_from_key
from ledger.log import Log, durable_transaction, utc_now


class AnchorState(enum.StrEnum):
    PENDING = "pending"  # recorded; to be (re)sent
    SUBMITTED = "submitted"  # broadcast, not yet in a block
    MINED = "mined"  # in a block, fewer than `confirmations` deep
    CONFIRMED = "confirmed"  # deep enough: final
    FAILED = "failed"  # the contract rejected it (reverted): needs the operator


ALLOWED: dict[AnchorState, frozenset[AnchorState]] = {
    AnchorState.PENDING: frozenset({AnchorState.SUBMITTED}),
    AnchorState.SUBMITTED: frozenset({AnchorState.MINED, AnchorState.PENDING, AnchorState.FAILED}),
    AnchorState.MINED: frozenset({AnchorState.CONFIRMED, AnchorState.PENDING, AnchorState.FAILED}),
    AnchorState.CONFIRMED: frozenset(),
    AnchorState.FAILED: frozenset(),
}
IN_FLIGHT = (AnchorState.PENDING, AnchorState.SUBMITTED, AnchorState.MINED)


class TransitionError(LedgerError):
    """A state change the anchor state machine does not allow."""


def transition(current: AnchorState, target: AnchorState) -> AnchorState:
    """Return ``target`` if the machine allows current -> target, else raise."""
    if target not in ALLOWED[current]:
        raise TransitionError(
            "anchor state change not allowed",
            expected=sorted(ALLOWED[current]),
            found=f"{current} -> {target}",
        )
    return target


@dataclass(frozen=True)
class AnchorPolicy:
    """When and how to anchor (configurable per node)."""

    interval_seconds: float = 300.0  # anchor at least this often while the log grows
    max_records: int = 10_000  # ... or as soon as this many leaves are unanchored
    confirmations: int = 2  # blocks on top (including its own) before an anchor is final
    gas_limit: int = 120_000  # explicit; an anchor costs the same whatever the batch size
    resend_after_seconds: float = 120.0  # unmined this long: re-send, replacing by nonce
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    fee_bump: float = 1.25  # replacement transactions must pay more than the original


@dataclass
class StepReport:
    """What one `Anchorer.step()` did (for logs, status and tests)."""

    created: int | None = None  # tree size of a newly recorded anchor
    sent: str | None = None  # tx hash broadcast
    confirmed: list[int] = field(default_factory=list)
    reset: list[int] = field(default_factory=list)  # anchors put back to PENDING (reorg/drop)
    error: str | None = None


@dataclass(frozen=True)
class AnchorRef:
    """A confirmed (or mined) anchor: what a proof bundle cites."""

    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    tree_size: int
    root: bytes
    state: str

    def to_json(self) -> dict[str, Any]:
        import base64

        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
            "tree_size": self.tree_size,
            "root": base64.b64encode(self.root).decode(),
            "state": self.state,
        }


class Anchorer:
    """Processor that anchors one log's checkpoints on one chain/contract."""

    def __init__(
        self,
        engine: Engine,
        log: Log,
        chain: Chain,
        *,
        contract: str,
        account_key: bytes | str,
        signer: Signer,
        policy: AnchorPolicy | None = None,
        chain_id: int | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.log = log
        self.chain = chain
        self.contract = contract
        self.account = account_from_key(account_key)
        self.signer = signer
        self.policy = policy or AnchorPolicy()
        self.expected_chain_id = chain_id
        self.clock = clock

    # -- the processor ------------------------------------------------------------------------
    def step(self) -> StepReport:
        """One pass: reconcile, maybe create, maybe send. Never raises for chain trouble."""
        report = StepReport()
        now = self.clock()
        try:
            self._reconcile(report, now)
            self._maybe_create(report, now)
            self._maybe_send(report, now)
        except ChainError as exc:
            report.error = exc.diagnosis
            self._note_failure(exc.diagnosis, now)
        return report

    def _rows(self, conn: Connection, states: tuple[AnchorState, ...]) -> list[Any]:
        t = tables.anchors
        return conn.execute(
            select(t)
            .where(t.c.log_id == self.log.log_id, t.c.state.in_([s.value for s in states]))
            .order_by(t.c.id)
        ).all()

    def _set(self, conn: Connection, row: Any, target: AnchorState, **values: Any) -> None:
        transition(AnchorState(row.state), target)
        t = tables.anchors
        conn.execute(
            update(t)
            .where(t.c.id == row.id, t.c.state == row.state)
            .values(state=target.value, **values)
        )

    def _check_chain(self) -> int:
        chain_id = self.chain.chain_id()
        if self.expected_chain_id is not None and chain_id != self.expected_chain_id:
            raise ChainError(
                "EVM node is on the wrong chain", expected=self.expected_chain_id, found=chain_id
            )
        return chain_id

    def _reconcile(self, report: StepReport, now: datetime) -> None:
        with self.engine.begin() as conn:
            rows = self._rows(conn, (AnchorState.SUBMITTED, AnchorState.MINED))
        if not rows:
            return
        head = self.chain.block_number()
        for row in rows:
            receipt = self.chain.receipt(row.tx_hash)
            with self.engine.begin() as conn:
                if receipt is None:
                    # Not in the canonical chain: still pooled, dropped, or reorged out.
                    known = self.chain.is_known(row.tx_hash)
                    stale = (
                        row.submitted_at is not None
                        and (now - _aware(row.submitted_at)).total_seconds()
                        >= self.policy.resend_after_seconds
                    )
                    if row.state == AnchorState.MINED or not known or stale:
                        why = (
                            "removed from the chain by a reorg"
                            if row.state == AnchorState.MINED
                            else "dropped by the node"
                            if not known
                            else f"not mined within {self.policy.resend_after_seconds:g} s"
                        )
                        self._set(
                            conn,
                            row,
                            AnchorState.PENDING,
                            block_number=None,
                            block_hash=None,
                            next_attempt_at=None,
                            last_error=f"anchor transaction {why}; re-sending",
                        )
                        report.reset.append(int(row.tree_size))
                    continue
                if receipt.status != 1:
                    self._set(
                        conn,
                        row,
                        AnchorState.FAILED,
                        block_number=receipt.block_number,
                        block_hash=receipt.block_hash,
                        last_error="anchor transaction reverted",
                    )
                    continue
                deep = head - receipt.block_number + 1 >= self.policy.confirmations
                if row.state == AnchorState.SUBMITTED:
                    self._set(
                        conn,
                        row,
                        AnchorState.MINED,
                        block_number=receipt.block_number,
                        block_hash=receipt.block_hash,
                        gas_used=receipt.gas_used,
                    )
                    row = conn.execute(
                        select(tables.anchors).where(tables.anchors.c.id == row.id)
                    ).one()
                elif row.block_hash != receipt.block_hash:
                    conn.execute(
                        update(tables.anchors)
                        .where(tables.anchors.c.id == row.id)
                        .values(block_number=receipt.block_number, block_hash=receipt.block_hash)
                    )
                if deep:
                    self._set(
                        conn,
                        row,
                        AnchorState.CONFIRMED,
                        confirmed_at=now,
                        block_number=receipt.block_number,
                        block_hash=receipt.block_hash,
                    )
                    report.confirmed.append(int(row.tree_size))

    def _last_anchor(self, conn: Connection) -> Any:
        t = tables.anchors
        return conn.execute(
            select(t)
            .where(t.c.log_id == self.log.log_id, t.c.state != AnchorState.FAILED.value)
            .order_by(t.c.tree_size.desc(), t.c.id.desc())
            .limit(1)
        ).first()

    def due(self, conn: Connection, now: datetime) -> bool:
        """Whether a new batch should be anchored now."""
        size = self.log.size(conn)
        t = tables.anchors
        newest = conn.execute(
            select(t.c.state, t.c.created_at)
            .where(t.c.log_id == self.log.log_id)
            .order_by(t.c.id.desc())
            .limit(1)
        ).first()
        if newest is not None and newest.state == AnchorState.FAILED.value:
            # The contract reverted the last anchor (wrong owner key, conflicting root):
            # retry at most every backoff_max_seconds instead of burning gas each pass.
            waited = (now - _aware(newest.created_at)).total_seconds()
            if waited < self.policy.backoff_max_seconds:
                return False
        last = self._last_anchor(conn)
        if last is None:  # the first batch is timed from the log's creation
            t = tables.logs
            since = conn.execute(
                select(t.c.created_at).where(t.c.id == self.log.log_id)
            ).scalar_one()
            new = size
        else:
            since, new = last.created_at, size - int(last.tree_size)
        if new <= 0:
            return False
        waited = (now - _aware(since)).total_seconds()
        return new >= self.policy.max_records or waited >= self.policy.interval_seconds

    def _maybe_create(self, report: StepReport, now: datetime) -> None:
        with durable_transaction(self.engine) as conn:
            if self._rows(conn, IN_FLIGHT) or not self.due(conn, now):
                return
            cp = self.log.sign_checkpoint(conn, self.signer)
            conn.execute(
                insert(tables.anchors).values(
                    log_id=self.log.log_id,
                    tree_size=cp.size,
                    root=cp.root,
                    chain_id=self.expected_chain_id or 0,
                    contract=self.contract,
                    state=AnchorState.PENDING.value,
                    attempts=0,
                    created_at=now,
                )
            )
            report.created = cp.size

    def _maybe_send(self, report: StepReport, now: datetime) -> None:
        with self.engine.begin() as conn:
            rows = self._rows(conn, (AnchorState.PENDING,))
        if not rows:
            return
        row = rows[0]
        if row.next_attempt_at is not None and _aware(row.next_attempt_at) > now:
            return
        chain_id = self._check_chain()
        with durable_transaction(self.engine) as conn:
            # Catch up: anchor the newest checkpoint, not the one recorded before an outage.
            # (The log only grows, so the newest checkpoint covers the recorded one.)
            cp = self.log.sign_checkpoint(conn, self.signer)
            if cp.size != int(row.tree_size):
                conn.execute(
                    update(tables.anchors)
                    .where(tables.anchors.c.id == row.id)
                    .values(tree_size=cp.size, root=cp.root)
                )
        fees = self.chain.fees()
        if row.attempts:
            fees = {
                k: int(v * self.policy.fee_bump ** min(row.attempts, 8)) for k, v in fees.items()
            }
        # Reuse our earlier nonce while it is still open (replace a stuck or re-sent
        # transaction); once another transaction consumed it, take the next free one.
        latest = self.chain.nonce(self.account.address, pending=False)
        pending = self.chain.nonce(self.account.address, pending=True)
        old = row.nonce
        nonce = int(old) if old is not None and latest <= int(old) < pending else pending
        tx = self.chain.anchor_tx(
            self.contract,
            self.account,
            origin=self.log.origin,
            tree_size=cp.size,
            root=cp.root,
            nonce=nonce,
            gas=self.policy.gas_limit,
            fees=fees,
        )
        tx_hash = self.chain.send(self.account, tx)
        with self.engine.begin() as conn:
            self._set(
                conn,
                row,
                AnchorState.SUBMITTED,
                tx_hash=tx_hash,
                nonce=nonce,
                chain_id=chain_id,
                attempts=int(row.attempts) + 1,
                submitted_at=now,
                last_error=None,
                next_attempt_at=None,
            )
        report.sent = tx_hash

    def _note_failure(self, message: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            for row in self._rows(conn, (AnchorState.PENDING,)):
                attempts = int(row.attempts) + 1
                delay = min(
                    self.policy.backoff_base_seconds * 2 ** (attempts - 1),
                    self.policy.backoff_max_seconds,
                )
                conn.execute(
                    update(tables.anchors)
                    .where(tables.anchors.c.id == row.id)
                    .values(
                        attempts=attempts,
                        last_error=message[:1000],
                        next_attempt_at=now + timedelta(seconds=delay),
                    )
                )

    # -- reading ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Counts by state and the newest confirmed anchor (for `autospace ledger status`)."""
        with self.engine.connect() as conn:
            return anchor_status(conn, self.log)


def anchor_status(conn: Connection, log: Log) -> dict[str, Any]:
    """Anchor counts by state, last error, and the latest confirmed anchor of ``log``."""
    t = tables.anchors
    rows = conn.execute(select(t).where(t.c.log_id == log.log_id).order_by(t.c.id)).all()
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r.state] = by_state.get(r.state, 0) + 1
    latest = latest_confirmed_anchor(conn, log)
    errors = [
        r.last_error for r in rows if r.state in (s.value for s in IN_FLIGHT) and r.last_error
    ]
    return {
        "log_size": log.size(conn),
        "anchors": by_state,
        "latest_confirmed": latest.to_json() if latest else None,
        "last_error": errors[-1] if errors else None,
    }


def covering_anchor(
    conn: Connection, log: Log, tree_size: int, *, include_mined: bool = False
) -> AnchorRef | None:
    """The smallest confirmed anchor of a tree of at least ``tree_size`` leaves."""
    t = tables.anchors
    states = [AnchorState.CONFIRMED.value] + ([AnchorState.MINED.value] if include_mined else [])
    row = conn.execute(
        select(t)
        .where(t.c.log_id == log.log_id, t.c.state.in_(states), t.c.tree_size >= tree_size)
        .order_by(t.c.tree_size, t.c.id)
        .limit(1)
    ).first()
    return _anchor_ref(row)


def latest_confirmed_anchor(conn: Connection, log: Log) -> AnchorRef | None:
    """The confirmed anchor of the largest tree (what an auditor's newest proof can lean on)."""
    t = tables.anchors
    row = conn.execute(
        select(t)
        .where(t.c.log_id == log.log_id, t.c.state == AnchorState.CONFIRMED.value)
        .order_by(t.c.tree_size.desc(), t.c.id.desc())
        .limit(1)
    ).first()
    return _anchor_ref(row)


def _anchor_ref(row: Any) -> AnchorRef | None:
    if row is None:
        return None
    return AnchorRef(
        int(row.chain_id),
        row.contract,
        row.tx_hash,
        int(row.block_number),
        int(row.tree_size),
        bytes(row.root),
        row.state,
    )


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
