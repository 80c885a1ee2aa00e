"""The outbox: outgoing DSP messages, written in the same transaction as the state change.

Workers lease due rows, deliver them, and report back (:func:`complete` or
:func:`retry`). Leasing is one UPDATE over a ``SELECT ... FOR UPDATE SKIP LOCKED``
subquery: on PostgreSQL concurrent workers skip each other's rows; on SQLite (where
SQLAlchemy drops the locking clause) the single UPDATE statement is atomic because SQLite
serialises writers. Either way a row is held by at most one live lease. Messages of one
process go out in order: a row is due only when no earlier row of the same process is
still pending.

Fast path: a request handler that will hand its rows to this process's dispatcher runs its
transaction inside :func:`leasing_on_enqueue`; :func:`enqueue` then writes each row already
leased to that owner (``attempts`` 1, ``leased_until`` = now + lease) when the ordering
rule allows it, i.e. no earlier row of the same process is still pending (otherwise the row
is written unleased and the normal lease path sends it after the earlier one). The
dispatcher sends the collected rows after the commit without a lease transaction. A process
that dies before sending holds the lease like any other leaser: it is freed by
:func:`release_orphaned_leases` on restart or when it expires.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, bindparam, exists, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased

from connectors import tables as t
from connectors.dsp import statements
from connectors.dsp.outcome import Outgoing

# Delay before retry n (1-based) in ms; the last value repeats. Roughly doubling so a peer
# that is down for minutes is retried a dozen times before we give up.
RETRY_DELAYS_MS = (500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000)
MAX_ATTEMPTS = 12
DEFAULT_LEASE_MS = 30_000


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A leased row: deliver ``body`` by POST to ``url``, then complete or retry it."""

    id: int
    process_kind: str
    process_id: str
    recipient_id: str
    url: str
    message_type: str
    body: dict[str, Any]
    attempts: int
    lease_owner: str
    leased_until: int


@dataclass(slots=True)
class EnqueueLeases:
    """What :func:`enqueue` did inside :func:`leasing_on_enqueue`: rows it leased to
    ``owner`` (send them after the commit) and how many it had to leave unleased."""

    owner: str
    lease_ms: int = DEFAULT_LEASE_MS
    leased: list[OutboxMessage] = field(default_factory=list)
    unleased: int = 0


_ENQUEUE_LEASES: ContextVar[EnqueueLeases | None] = ContextVar("outbox_enqueue_leases",
                                                               default=None)


@contextmanager
def leasing_on_enqueue(owner: str, *, lease_ms: int = DEFAULT_LEASE_MS) -> Iterator[EnqueueLeases]:
    """Within this block, :func:`enqueue` leases the rows it writes to ``owner`` when the
    ordering rule allows it. Use the collected rows only after the transaction committed."""
    taken = EnqueueLeases(owner, lease_ms)
    token = _ENQUEUE_LEASES.set(taken)
    try:
        yield taken
    finally:
        _ENQUEUE_LEASES.reset(token)


def _pending_of_process_statement() -> Any:
    o = t.outbox
    return (
        select(o.c.id)
        .where(
            o.c.process_kind == bindparam("process_kind"),
            o.c.process_id == bindparam("process_id"),
            o.c.status == "pending",
        )
        .limit(1)
    )


def enqueue(conn: Connection, out: Outgoing, *, now: datetime) -> int:
    """Add ``out`` to the outbox inside the caller's transaction; returns the row id.

    Inside :func:`leasing_on_enqueue` the row is written leased to its owner unless an
    earlier row of the same process is still pending (messages of a process stay in order).
    """
    taken = _ENQUEUE_LEASES.get()
    now_ms = epoch_ms(now)
    values: dict[str, Any] = {
        "process_kind": out.process_kind.value,
        "process_id": out.process_id,
        "recipient_id": out.recipient_id,
        "url": out.url,
        "message_type": out.message.TYPE.value,
        "body": out.message.to_json(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now_ms,
        "created_at": now,
    }
    lease_it = False
    if taken is not None:
        earlier = conn.execute(
            statements.memo(("outbox.pending_of_process",), _pending_of_process_statement),
            {"process_kind": values["process_kind"], "process_id": values["process_id"]},
        ).first()
        lease_it = earlier is None
        if lease_it:
            values.update(attempts=1, lease_owner=taken.owner,
                          leased_until=now_ms + taken.lease_ms)
        else:
            taken.unleased += 1
    res = conn.execute(statements.plain_insert(t.outbox), values)
    row_id = int(res.inserted_primary_key[0])
    if taken is not None and lease_it:
        taken.leased.append(
            OutboxMessage(
                id=row_id,
                process_kind=values["process_kind"],
                process_id=values["process_id"],
                recipient_id=values["recipient_id"],
                url=values["url"],
                message_type=values["message_type"],
                body=values["body"],
                attempts=1,
                lease_owner=taken.owner,
                leased_until=values["leased_until"],
            )
        )
    return row_id


def _lease_statement() -> Any:
    """The lease UPDATE (built once): parameters ``now_ms``, ``owner``, ``until``, ``limit``."""
    o = t.outbox
    earlier = aliased(o)
    now_ms = bindparam("now_ms", type_=BigInteger)
    blocked = exists().where(
        earlier.c.process_kind == o.c.process_kind,
        earlier.c.process_id == o.c.process_id,
        earlier.c.status == "pending",
        earlier.c.id < o.c.id,
    )
    due = (
        select(o.c.id)
        .where(
            o.c.status == "pending",
            o.c.next_attempt_at <= now_ms,
            or_(o.c.leased_until.is_(None), o.c.leased_until < now_ms),
            ~blocked,
        )
        .order_by(o.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(o)
        .where(o.c.id.in_(due.scalar_subquery()))
        .values(
            lease_owner=bindparam("owner"),
            leased_until=bindparam("until", type_=BigInteger),
            attempts=o.c.attempts + 1,
        )
        .returning(
            o.c.id,
            o.c.process_kind,
            o.c.process_id,
            o.c.recipient_id,
            o.c.url,
            o.c.message_type,
            o.c.body,
            o.c.attempts,
            o.c.lease_owner,
            o.c.leased_until,
        )
    )


def lease(
    engine: Engine, owner: str, *, now: datetime, limit: int = 10, lease_ms: int = DEFAULT_LEASE_MS
) -> list[OutboxMessage]:
    """Take up to ``limit`` due rows for ``owner`` until ``now + lease_ms`` (own transaction)."""
    now_ms = epoch_ms(now)
    stmt = statements.memo(("outbox.lease",), _lease_statement)
    params = {"now_ms": now_ms, "owner": owner, "until": now_ms + lease_ms, "limit": limit}
    with engine.begin() as conn:
        got = [OutboxMessage(**r._mapping) for r in conn.execute(stmt, params)]
    return sorted(got, key=lambda m: m.id)


def owner_id(host: str, pid: int, instance: str) -> str:
    """A lease owner: ``host:pid:instance``, so a restarted node can tell its dead holders."""
    return f"{host}:{pid}:{instance}"


def release_orphaned_leases(
    engine: Engine, host: str, *, now: datetime, alive: Callable[[int], bool] | None = None
) -> int:
    """Free the unexpired leases that processes of ``host`` held when they died.

    Without this, a node killed while delivering waits out its own leases (30 s) after a
    restart. Only owners on this host whose pid no longer runs are released; a live holder,
    or one on another host, keeps its lease. (A message re-sent after all is harmless: the
    peer answers a replay from its processed-message table.)
    """
    is_alive = alive or _pid_alive
    o = t.outbox
    now_ms = epoch_ms(now)
    prefix = f"{host}:"
    with engine.begin() as conn:
        owners = conn.execute(
            select(o.c.lease_owner)
            .where(o.c.status == "pending", o.c.leased_until >= now_ms)
            .where(o.c.lease_owner.startswith(prefix, autoescape=True))
            .distinct()
        ).scalars().all()
        pids = {w: _owner_pid(w, prefix) for w in owners}
        dead = [w for w, pid in pids.items() if pid is not None and not is_alive(pid)]
        if not dead:
            return 0
        res = conn.execute(
            update(o)
            .where(o.c.status == "pending", o.c.lease_owner.in_(dead), o.c.leased_until >= now_ms)
            .values(leased_until=None)
        )
    return res.rowcount or 0


def _owner_pid(owner: str, prefix: str) -> int | None:
    pid = owner[len(prefix):].split(":", 1)[0]
    return int(pid) if pid.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _held() -> Any:
    o = t.outbox
    return and_(
        o.c.id == bindparam("row_id"),
        o.c.lease_owner == bindparam("owner"),
        o.c.status == "pending",
        o.c.leased_until >= bindparam("now_ms", type_=BigInteger),
    )


def complete(engine: Engine, row_id: int, owner: str, *, now: datetime) -> bool:
    """Mark a delivered row sent; False if the lease was lost (someone else may resend)."""
    with engine.begin() as conn:
        return complete_in(conn, row_id, owner, now=now)


def complete_in(conn: Connection, row_id: int, owner: str, *, now: datetime) -> bool:
    """:func:`complete` inside the caller's transaction (with what the answer taught us)."""
    stmt = statements.memo(
        ("outbox.complete",),
        lambda: update(t.outbox)
        .where(_held())
        .values(status="sent", delivered_at=bindparam("delivered_at"), leased_until=None),
    )
    params = {"row_id": row_id, "owner": owner, "now_ms": epoch_ms(now), "delivered_at": now}
    return conn.execute(stmt, params).rowcount == 1


def retry(
    engine: Engine,
    row_id: int,
    owner: str,
    *,
    now: datetime,
    error: str,
    permanent: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> str | None:
    """Record a failed delivery; schedule the next attempt or give up.

    Returns ``"pending"`` (will be retried), ``"dead"`` (gave up: the caller ends the
    process via the machine's ``on_delivery_failed``), or None if the lease was lost.
    """
    o = t.outbox
    now_ms = epoch_ms(now)
    with engine.begin() as conn:
        row = conn.execute(
            select(o.c.attempts).where(_held()),
            {"row_id": row_id, "owner": owner, "now_ms": now_ms},
        ).first()
        if row is None:
            return None
        dead = permanent or row.attempts >= max_attempts
        delay = RETRY_DELAYS_MS[min(row.attempts, len(RETRY_DELAYS_MS)) - 1]
        status = "dead" if dead else "pending"
        conn.execute(
            update(o)
            .where(o.c.id == row_id)
            .values(
                status=status,
                next_attempt_at=now_ms + delay,
                leased_until=None,
                lease_owner=None,
                last_error=error[:2000],
            )
        )
        return status


def pending_count(engine: Engine) -> int:
    """Rows still to deliver (for health checks and tests)."""
    from sqlalchemy import func

    q = statements.memo(
        ("outbox.pending_count",),
        lambda: select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "pending"),
    )
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def now_utc() -> datetime:
    return datetime.now(UTC)
