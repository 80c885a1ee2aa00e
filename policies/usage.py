"""Stateful usage control: counters, duties, export log and the policy monitor.

``UsageStore(engine)`` keeps, per agreement, how often each target was used, which duties
are pending / fulfilled / violated, and every cross-border decision. ``use()`` decides and
counts in one step: it reads the counter, evaluates with that count, and only if the
decision permits does it advance the counter with a compare-and-set
(``UPDATE ... SET uses = n + 1 WHERE uses = n``); a lost race re-reads and re-decides. So
"use at most N times" holds exactly under concurrent access on SQLite and PostgreSQL.

The library writes nothing to the ledger: decisions carry ``events`` (for ``log`` duties);
``UsageStore`` hands them to the ``on_event`` callback after the transaction commits.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from policies.decision import Decision
from policies.engine import evaluate
from policies.errors import PolicyError
from policies.parse import parse_policy
from policies.request import parse_request
from policies.tables import (
    policy_agreements,
    policy_duties,
    policy_export_log,
    policy_usage_counters,
)
from policies.values import parse_datetime

MAX_CAS_RETRIES = 200
DUTY_STATES = ("pending", "fulfilled", "violated")


class _LostRace(Exception):
    """Another use advanced the counter first."""


class UsageError(ValueError):
    """A usage-control store operation was asked for something that does not exist or fit."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class UsageStore:
    """Usage-control state of live agreements, in the node's database.

    Args:
        engine: SQLAlchemy engine (SQLite or PostgreSQL) with the policies tables.
        clock: returns the current time (injected for tests); defaults to UTC now.
        on_event: receives each ledger event (``log`` duties) after it is committed.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.on_event = on_event
        self._policies: dict[str, Any] = {}

    # -- agreements ----------------------------------------------------------------------
    def register_agreement(
        self,
        agreement_id: str,
        policy: dict,
        request: dict,
        *,
        signed_at: datetime,
        profile: str = "odrl",
    ) -> None:
        """Put an agreement under usage control.

        ``request`` is the template the monitor re-checks (assignee, target, claims, purpose
        as agreed). The policy must parse; otherwise :class:`PolicyError` lists why.
        """
        parse_policy(policy)
        parse_request(request)
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                insert(policy_agreements).values(
                    agreement_id=agreement_id,
                    policy=json.dumps(policy),
                    profile=profile,
                    request=json.dumps(request),
                    signed_at=_utc(signed_at),
                    status="live",
                    lapsed_reason=None,
                    updated_at=now,
                )
            )

    def _agreement(self, conn: Any, agreement_id: str) -> Any:
        row = conn.execute(
            select(policy_agreements).where(policy_agreements.c.agreement_id == agreement_id)
        ).first()
        if row is None:
            raise UsageError(f"unknown agreement {agreement_id!r}")
        return row

    def _policy(self, row: Any) -> Any:
        key = row.agreement_id
        cached = self._policies.get(key)
        if cached is None or cached[0] != row.policy:
            cached = (row.policy, parse_policy(json.loads(row.policy)))
            self._policies[key] = cached
        return cached[1]

    def terminate(self, agreement_id: str, reason: str = "terminated") -> None:
        with self.engine.begin() as conn:
            self._agreement(conn, agreement_id)
            conn.execute(
                update(policy_agreements)
                .where(policy_agreements.c.agreement_id == agreement_id)
                .values(status="terminated", lapsed_reason=reason, updated_at=self.clock())
            )

    # -- counters ------------------------------------------------------------------------
    def uses(self, agreement_id: str, target: str = "") -> int:
        with self.engine.connect() as conn:
            return self._uses(conn, agreement_id, target)

    def _uses(self, conn: Any, agreement_id: str, target: str) -> int:
        got = conn.execute(
            select(policy_usage_counters.c.uses).where(
                and_(
                    policy_usage_counters.c.agreement_id == agreement_id,
                    policy_usage_counters.c.target == target,
                )
            )
        ).scalar()
        return int(got or 0)

    def _advance(self, conn: Any, agreement_id: str, target: str, seen: int) -> bool:
        now = self.clock()
        if seen == 0:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(policy_usage_counters).values(
                            agreement_id=agreement_id, target=target, uses=1, updated_at=now
                        )
                    )
                return True
            except IntegrityError:
                pass  # the row exists: first use by someone else, or released back to 0
        result = conn.execute(
            update(policy_usage_counters)
            .where(
                and_(
                    policy_usage_counters.c.agreement_id == agreement_id,
                    policy_usage_counters.c.target == target,
                    policy_usage_counters.c.uses == seen,
                )
            )
            .values(uses=seen + 1, updated_at=now)
        )
        return result.rowcount == 1

    def release(self, agreement_id: str, target: str = "", *, conn: Any = None) -> bool:
        """Give back one use that :meth:`use` counted but that never took place.

        For a caller that reserved the use before acting (so that concurrent uses never
        exceed a count) and then could not act at all, e.g. a data source that failed before
        any byte was delivered. One relative ``UPDATE ... SET uses = uses - 1 WHERE
        uses > 0``: atomic on SQLite and PostgreSQL, never below zero, and a concurrent
        :meth:`use` whose compare-and-set it overtakes simply decides again. Runs in
        ``conn``'s transaction when given (so the release commits with the caller's record
        of it). Returns False when there was nothing to give back.
        """
        stmt = (
            update(policy_usage_counters)
            .where(
                and_(
                    policy_usage_counters.c.agreement_id == agreement_id,
                    policy_usage_counters.c.target == target,
                    policy_usage_counters.c.uses > 0,
                )
            )
            .values(uses=policy_usage_counters.c.uses - 1, updated_at=self.clock())
        )
        if conn is not None:
            return conn.execute(stmt).rowcount == 1
        with self.engine.begin() as c:
            return c.execute(stmt).rowcount == 1

    # -- duties --------------------------------------------------------------------------
    def duty_states(self, agreement_id: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            return self._duty_states(conn, agreement_id)

    def _duty_states(self, conn: Any, agreement_id: str) -> dict[str, str]:
        rows = conn.execute(
            select(policy_duties.c.duty_id, policy_duties.c.state).where(
                policy_duties.c.agreement_id == agreement_id
            )
        )
        return {r.duty_id: r.state for r in rows}

    def _record_obligations(
        self, conn: Any, agreement_id: str, obligations: Iterable[dict]
    ) -> None:
        now = self.clock()
        for o in obligations:
            duty_id = o.get("duty")
            if not duty_id:
                continue
            exists = conn.execute(
                select(policy_duties.c.id).where(
                    and_(
                        policy_duties.c.agreement_id == agreement_id,
                        policy_duties.c.duty_id == duty_id,
                    )
                )
            ).first()
            if exists:
                continue
            deadline = parse_datetime(o["deadline"]) if o.get("deadline") else None
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(policy_duties).values(
                            agreement_id=agreement_id,
                            duty_id=duty_id,
                            action=o.get("action"),
                            state="pending",
                            deadline=deadline,
                            attestation=None,
                            updated_at=now,
                        )
                    )
            except IntegrityError:
                continue  # recorded concurrently by another use

    def set_duty(
        self, agreement_id: str, duty_id: str, state: str, *, attestation: str | None = None
    ) -> None:
        """Record a duty's state; a fulfilled ``delete`` duty needs an attestation."""
        if state not in DUTY_STATES:
            raise UsageError(f"duty state must be one of {', '.join(DUTY_STATES)}")
        now = self.clock()
        with self.engine.begin() as conn:
            self._agreement(conn, agreement_id)
            row = conn.execute(
                select(policy_duties).where(
                    and_(
                        policy_duties.c.agreement_id == agreement_id,
                        policy_duties.c.duty_id == duty_id,
                    )
                )
            ).first()
            action = row.action if row is not None else None
            if state == "fulfilled" and action == "odrl:delete" and not attestation:
                raise UsageError("a delete duty is fulfilled only with an attestation")
            if row is None:
                conn.execute(
                    insert(policy_duties).values(
                        agreement_id=agreement_id,
                        duty_id=duty_id,
                        action=None,
                        state=state,
                        deadline=None,
                        attestation=attestation,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    update(policy_duties)
                    .where(policy_duties.c.id == row.id)
                    .values(state=state, attestation=attestation or row.attestation, updated_at=now)
                )

    def pending_duties(self, agreement_id: str | None = None) -> list[dict[str, Any]]:
        query = select(policy_duties).where(policy_duties.c.state == "pending")
        if agreement_id is not None:
            query = query.where(policy_duties.c.agreement_id == agreement_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- export log ----------------------------------------------------------------------
    def record_export(
        self, record: dict[str, Any], agreement_id: str | None = None, conn: Any = None
    ) -> None:
        """Append a cross-border decision (``Decision.export``) to the export log."""
        values = {
            "agreement_id": agreement_id,
            "asset": record.get("asset"),
            "classification": record["classification"],
            "home_region": record.get("homeRegion"),
            "recipient_region": record.get("recipientRegion"),
            "recipient": record.get("recipient"),
            "action": record.get("action"),
            "approval": record.get("approval"),
            "permitted": bool(record["permitted"]),
            "reason": record.get("reason") or "",
            "policy": record.get("policy"),
            "scope": record.get("scope") or "usage",
            "decided_at": parse_datetime(record["time"]) if record.get("time") else self.clock(),
        }
        if conn is not None:
            conn.execute(insert(policy_export_log).values(**values))
            return
        with self.engine.begin() as c:
            c.execute(insert(policy_export_log).values(**values))

    def export_log(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(policy_export_log).order_by(policy_export_log.c.id))
            return [dict(r._mapping) for r in rows]

    # -- deciding --------------------------------------------------------------------------
    def _state(self, conn: Any, row: Any, target: str, now: datetime) -> dict[str, Any]:
        return {
            "now": now.isoformat(),
            "count": self._uses(conn, row.agreement_id, target),
            "duties": self._duty_states(conn, row.agreement_id),
            "agreementStart": _utc(row.signed_at).isoformat(),
        }

    def use(
        self, agreement_id: str, request: dict, *, scope: str = "usage", state: dict | None = None
    ) -> Decision:
        """Decide one use under the agreement and, if permitted, count it (exactly once).

        ``state`` may add memberships / types / references; time, count, duty states and the
        agreement start always come from the store.
        """
        events: list[dict] = []
        try:
            decision = self._use(agreement_id, request, scope, state or {}, events)
        except (UsageError, PolicyError) as exc:
            return Decision(False, str(exc), scope=scope)
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return decision

    def _use(
        self, agreement_id: str, request: dict, scope: str, extra: dict, events: list[dict]
    ) -> Decision:
        target = request.get("target") or ""
        for attempt in range(MAX_CAS_RETRIES):
            try:
                done = self._attempt(agreement_id, request, scope, extra, target)
            except OperationalError:
                # SQLite refuses a writer whose snapshot went stale (busy snapshot): retry.
                done = None
            if done is not None:
                if done.permitted:
                    events.extend({**e, "agreement": agreement_id} for e in done.events)
                return done
            time.sleep(min(0.05, 0.001 * (attempt + 1)) * random.random())
        return Decision(False, "too much contention on the usage counter; denied", scope=scope)

    def _attempt(
        self, agreement_id: str, request: dict, scope: str, extra: dict, target: str
    ) -> Decision | None:
        """One read-decide-advance round; None when another use won the race."""
        try:
            with self.engine.begin() as conn:
                row = self._agreement(conn, agreement_id)
                if row.status != "live":
                    reason = f": {row.lapsed_reason}" if row.lapsed_reason else ""
                    return Decision(
                        False,
                        f"agreement {agreement_id} is {row.status}{reason}",
                        scope=scope,
                        profile=row.profile,
                    )
                state = {**extra, **self._state(conn, row, target, self.clock())}
                seen = state["count"]
                decision = evaluate(
                    self._policy(row), request, state, scope=scope, profile=row.profile
                )
                if decision.export is not None:
                    self.record_export(decision.export, agreement_id, conn)
                if not decision.permitted:
                    return decision
                if not self._advance(conn, agreement_id, target, seen):
                    raise _LostRace  # rolls back (the export record too); decide again
                self._record_obligations(conn, agreement_id, decision.obligations)
                return decision
        except _LostRace:
            return None

    # -- monitor ---------------------------------------------------------------------------
    def monitor(self, *, mark: bool = False) -> list[dict[str, Any]]:
        """List live agreements whose policies have lapsed (re-checked in scope ``monitor``).

        An agreement lapses when its template request is no longer permitted now (end date
        passed, count exhausted...) or a duty is overdue or violated. With ``mark=True`` the
        lapsed agreements are set to status ``lapsed``.
        """
        lapsed: list[dict[str, Any]] = []
        now = self.clock()
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(select(policy_agreements).where(policy_agreements.c.status == "live"))
            )
            for row in rows:
                request = json.loads(row.request)
                target = request.get("target") or ""
                state = self._state(conn, row, target, now)
                decision = evaluate(
                    self._policy(row), request, state, scope="monitor", profile=row.profile
                )
                overdue = conn.execute(
                    select(policy_duties).where(
                        and_(
                            policy_duties.c.agreement_id == row.agreement_id,
                            policy_duties.c.state == "pending",
                            policy_duties.c.deadline.is_not(None),
                        )
                    )
                ).all()
                late = [d.duty_id for d in overdue if _utc(d.deadline) < now]
                reason = None
                if late:
                    reason = f"duty overdue: {', '.join(late)}"
                elif not decision.permitted:
                    reason = decision.reason
                if reason:
                    lapsed.append(
                        {
                            "agreement": row.agreement_id,
                            "reason": reason,
                            "decision": decision.to_json(),
                        }
                    )
        if mark and lapsed:
            with self.engine.begin() as conn:
                for item in lapsed:
                    conn.execute(
                        update(policy_agreements)
                        .where(policy_agreements.c.agreement_id == item["agreement"])
                        .values(status="lapsed", lapsed_reason=item["reason"], updated_at=now)
                    )
        return lapsed
