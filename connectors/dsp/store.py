"""Typed persistence of the connector (SQLite and PostgreSQL, same code).

Use one :class:`StoreSession` per unit of work::

    with store.transaction() as tx:
        entity = tx.get_negotiation(pid)
        outcome = machine.handle(caller, message, entity)
        tx.apply(outcome)                       # entity + agreement + outbox rows, atomically
        tx.record_processed(key, ...)           # replay protection for this message

Entities carry a ``version``; an update whose version no longer matches raises
:class:`~connectors.dsp.errors.ConflictError` (optimistic locking), so two workers
can never both apply a step to the same process. The outbox lives in
:mod:`connectors.dsp.outbox`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, true
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from connectors import tables as t
from connectors.dsp import rows, statements
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.definitions import (
    CLASSIFICATION_OPERANDS,
    ID_OPERANDS,
    REGION_OPERANDS,
    Asset,
    ContractDefinition,
    Criterion,
    Operator,
    PolicyDefinition,
)
from connectors.dsp.errors import ConflictError
from connectors.dsp.negotiation import ContractNegotiationEntity
from connectors.dsp.outbox import enqueue
from connectors.dsp.outcome import Outcome
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import Role
from ledger.records import canonical_bytes

E = TypeVar("E", ContractNegotiationEntity, TransferProcessEntity)
#: ``hook(conn, outcome, saved_entity)`` called by :meth:`StoreSession.apply` in its transaction.
ApplyHook = Callable[[Connection, Outcome[Any], Any], None]


class DuplicateError(ConflictError):
    """A record with this id already exists."""


class InUseError(ConflictError):
    """The record is still referenced (a policy used by a contract definition)."""


@dataclass(frozen=True, slots=True)
class ProcessedMessage:
    """A message already applied, with the answer it got (replayed verbatim)."""

    key: str
    process_kind: str
    process_id: str | None
    message_type: str
    status_code: int
    response: dict[str, Any] | None


def message_key(*, kind: str, sender_id: str, target: str, body: Mapping[str, Any]) -> str:
    """Replay key of an incoming message: who sent what to which endpoint (RFC 8785 bytes)."""
    h = hashlib.sha256()
    for part in (kind, sender_id, target):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(canonical_bytes(body))
    return h.hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def criterion_sql(c: Criterion) -> ColumnElement[bool]:
    """The SQL twin of :meth:`Criterion.matches` (property values compared as text)."""
    if c.operand_left in ID_OPERANDS:
        col: Any = t.assets.c.id
    elif c.operand_left in CLASSIFICATION_OPERANDS:
        col = t.assets.c.classification
    elif c.operand_left in REGION_OPERANDS:
        col = t.assets.c.home_region
    else:
        col = t.assets.c.properties[c.operand_left].as_string()
    if c.operator is Operator.EQ:
        return col == c.operand_right
    if c.operator is Operator.NEQ:
        return and_(col.is_not(None), col != c.operand_right)
    if c.operator is Operator.IN:
        return col.in_(list(c.operand_right))
    return col.like(c.operand_right)


def selector_sql(selector: Sequence[Criterion]) -> ColumnElement[bool]:
    return and_(true(), *(criterion_sql(c) for c in selector))


class StoreSession:
    """CRUD on one connection inside one transaction (see :meth:`ConnectorStore.transaction`)."""

    def __init__(
        self,
        conn: Connection,
        clock: Callable[[], datetime],
        hooks: Sequence[ApplyHook] = (),
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.hooks = hooks
        self.spoilt = False

    # ------------------------------------------------------------------ generic helpers

    def _insert(
        self, table: Any, values: dict[str, Any], *, stamped: bool = True, key: str = "id"
    ) -> datetime:
        """Insert one row; an existing key raises :class:`DuplicateError`.

        The key's unique index decides (``INSERT ... ON CONFLICT (key) DO NOTHING``, no read
        first): a duplicate inserts nothing and leaves the transaction usable, on SQLite and
        PostgreSQL alike. A conflict on another unique index surfaces as an IntegrityError,
        after which the database has aborted the transaction (PostgreSQL): the session is
        marked spoilt and :meth:`ConnectorStore.transaction` rolls back. (No SAVEPOINT: with
        pysqlite's default transaction handling it would commit the outer work early.)
        """
        now = self.clock()
        if stamped:
            values = {"created_at": now, "updated_at": now, "version": 1, **values}
        stmt = statements.insert_new(self.conn.dialect.name, table, key)
        try:
            res = self.conn.execute(stmt, values)
        except IntegrityError:
            self.spoilt = True
            raise DuplicateError(
                f"{table.name} already has {key} {values[key]!r} "
                "(written concurrently); the transaction is rolled back"
            ) from None
        if res.rowcount == 0:
            raise DuplicateError(f"{table.name} already has {key} {values[key]!r}")
        return now

    def _update(self, table: Any, record_id: str, version: int, values: dict[str, Any]) -> datetime:
        now = values.pop("updated_at", None) or self.clock()
        params = {
            **values,
            "updated_at": now,
            "version": version + 1,
            statements.ID_PARAM: record_id,
            statements.VERSION_PARAM: version,
        }
        res = self.conn.execute(statements.versioned_update(table), params)
        if res.rowcount != 1:
            raise ConflictError(
                f"{table.name} {record_id!r} changed since version {version} "
                "(or no longer exists); reload and retry"
            )
        return now

    def _get(self, table: Any, record_id: str) -> Any:
        return self.conn.execute(statements.by_key(table), {"id": record_id}).first()

    # ------------------------------------------------------------------ assets

    def create_asset(self, asset: Asset) -> Asset:
        now = self._insert(t.assets, rows.asset_values(asset))
        return replace(asset, created_at=now, updated_at=now, version=1)

    def get_asset(self, asset_id: str) -> Asset | None:
        r = self._get(t.assets, asset_id)
        return None if r is None else rows.asset_from_row(r)

    def update_asset(self, asset: Asset) -> Asset:
        """Replace an asset; ``asset.version`` must be the stored version."""
        values = rows.asset_values(asset)
        values.pop("id")
        now = self._update(t.assets, asset.id, asset.version, values)
        return replace(asset, updated_at=now, version=asset.version + 1)

    def delete_asset(self, asset_id: str) -> bool:
        return self.conn.execute(delete(t.assets).where(t.assets.c.id == asset_id)).rowcount == 1

    def list_assets(
        self, *, offset: int = 0, limit: int = 50, selector: Sequence[Criterion] = ()
    ) -> list[Asset]:
        q = (
            select(t.assets)
            .where(selector_sql(selector))
            .order_by(t.assets.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [rows.asset_from_row(r) for r in self.conn.execute(q)]

    def count_assets(self, selector: Sequence[Criterion] = ()) -> int:
        q = select(func.count()).select_from(t.assets).where(selector_sql(selector))
        return int(self.conn.execute(q).scalar_one())

    def insert_assets(self, assets: Sequence[Asset]) -> None:
        """Bulk load (seeding, benchmarks): one multi-row INSERT."""
        now = self.clock()
        self.conn.execute(
            insert(t.assets),
            [
                {**rows.asset_values(a), "created_at": now, "updated_at": now, "version": 1}
                for a in assets
            ],
        )

    # ------------------------------------------------------------------ policy definitions

    def create_policy(self, policy: PolicyDefinition) -> PolicyDefinition:
        now = self._insert(t.policy_definitions, rows.policy_values(policy))
        return replace(policy, created_at=now, updated_at=now, version=1)

    def get_policy(self, policy_id: str) -> PolicyDefinition | None:
        r = self._get(t.policy_definitions, policy_id)
        return None if r is None else rows.policy_from_row(r)

    def get_policies(self, ids: Sequence[str]) -> dict[str, PolicyDefinition]:
        q = select(t.policy_definitions).where(t.policy_definitions.c.id.in_(list(ids)))
        return {r.id: rows.policy_from_row(r) for r in self.conn.execute(q)}

    def update_policy(self, policy: PolicyDefinition) -> PolicyDefinition:
        values = rows.policy_values(policy)
        values.pop("id")
        now = self._update(t.policy_definitions, policy.id, policy.version, values)
        return replace(policy, updated_at=now, version=policy.version + 1)

    def delete_policy(self, policy_id: str) -> bool:
        """Delete a policy no contract definition uses (else :class:`InUseError`)."""
        cd = t.contract_definitions
        used = self.conn.execute(
            select(cd.c.id).where(
                or_(cd.c.access_policy_id == policy_id, cd.c.contract_policy_id == policy_id)
            )
        ).first()
        if used is not None:
            raise InUseError(f"policy {policy_id!r} is used by contract definition {used.id!r}")
        q = delete(t.policy_definitions).where(t.policy_definitions.c.id == policy_id)
        return self.conn.execute(q).rowcount == 1

    def list_policies(self, *, offset: int = 0, limit: int = 50) -> list[PolicyDefinition]:
        q = (
            select(t.policy_definitions)
            .order_by(t.policy_definitions.c.id)
            .offset(offset)
            .limit(limit)
        )
        return [rows.policy_from_row(r) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ contract definitions

    def create_contract_definition(self, cd: ContractDefinition) -> ContractDefinition:
        now = self._insert(t.contract_definitions, rows.contract_values(cd))
        return replace(cd, created_at=now, updated_at=now, version=1)

    def get_contract_definition(self, cd_id: str) -> ContractDefinition | None:
        r = self._get(t.contract_definitions, cd_id)
        return None if r is None else rows.contract_from_row(r)

    def update_contract_definition(self, cd: ContractDefinition) -> ContractDefinition:
        values = rows.contract_values(cd)
        values.pop("id")
        now = self._update(t.contract_definitions, cd.id, cd.version, values)
        return replace(cd, updated_at=now, version=cd.version + 1)

    def delete_contract_definition(self, cd_id: str) -> bool:
        q = delete(t.contract_definitions).where(t.contract_definitions.c.id == cd_id)
        return self.conn.execute(q).rowcount == 1

    def list_contract_definitions(
        self, *, offset: int = 0, limit: int | None = None
    ) -> list[ContractDefinition]:
        q = select(t.contract_definitions).order_by(t.contract_definitions.c.id).offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return [rows.contract_from_row(r) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ negotiations

    def save_negotiation(self, e: ContractNegotiationEntity) -> ContractNegotiationEntity:
        """Insert (``version == 0``) or update with the optimistic version check."""
        values = rows.negotiation_values(e)
        if e.version == 0:
            self._insert(t.contract_negotiations, {**values, "version": 1}, stamped=False)
            return replace(e, version=1)
        values.pop("id")
        values.pop("created_at")
        self._update(t.contract_negotiations, e.id, e.version, values)
        return replace(e, version=e.version + 1)

    def add_edr_pending(self, negotiation_id: str) -> None:
        """Mark a negotiation whose transfer starts once it is FINALIZED (POST /edrs)."""
        if self._get_edr_pending(negotiation_id) is None:
            self.conn.execute(
                statements.plain_insert(t.edr_pending),
                {"negotiation_id": negotiation_id, "created_at": self.clock()},
            )

    def _get_edr_pending(self, negotiation_id: str) -> Any:
        stmt = statements.by_key(t.edr_pending, "negotiation_id")
        return self.conn.execute(stmt, {"negotiation_id": negotiation_id}).first()

    def settled_edr_pending(self, limit: int = 1000) -> list[ContractNegotiationEntity]:
        """Marked negotiations that have reached FINALIZED or TERMINATED (oldest first)."""
        n, p = t.contract_negotiations, t.edr_pending
        q = statements.memo(
            ("settled_edr_pending", limit),
            lambda: select(n)
            .join(p, p.c.negotiation_id == n.c.id)
            .where(n.c.state.in_(("FINALIZED", "TERMINATED")))
            .order_by(p.c.created_at, p.c.negotiation_id)
            .limit(limit),
        )
        return [rows.negotiation_from_row(r) for r in self.conn.execute(q)]

    def drop_edr_pending(self, negotiation_id: str) -> None:
        p = t.edr_pending
        self.conn.execute(delete(p).where(p.c.negotiation_id == negotiation_id))

    def get_negotiation(self, pid: str) -> ContractNegotiationEntity | None:
        r = self._get(t.contract_negotiations, pid)
        return None if r is None else rows.negotiation_from_row(r)

    def find_negotiation(
        self,
        *,
        role: Role,
        counter_party_id: str,
        consumer_pid: str | None = None,
        provider_pid: str | None = None,
    ) -> ContractNegotiationEntity | None:
        """The negotiation a counter-party started with ``consumer_pid`` (or, for an offer it
        started, ``provider_pid``): how a replayed initial message finds its process."""
        if consumer_pid is not None:
            column, value = "consumer_pid", consumer_pid
        elif provider_pid is not None:
            column, value = "provider_pid", provider_pid
        else:
            raise ValueError("give consumer_pid or provider_pid")
        n = t.contract_negotiations
        stmt = statements.memo(
            ("find_negotiation", column),
            lambda: select(n)
            .where(
                n.c.role == bindparam("role"),
                n.c.counter_party_id == bindparam("counter_party_id"),
                n.c[column] == bindparam("pid"),
            )
            .limit(1),
        )
        r = self.conn.execute(
            stmt, {"role": role.value, "counter_party_id": counter_party_id, "pid": value}
        ).first()
        return None if r is None else rows.negotiation_from_row(r)

    def list_negotiations(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        state: str | None = None,
        role: Role | None = None,
    ) -> list[ContractNegotiationEntity]:
        n = t.contract_negotiations
        q = select(n)
        if state is not None:
            q = q.where(n.c.state == state)
        if role is not None:
            q = q.where(n.c.role == role.value)
        q = q.order_by(n.c.created_at, n.c.id).offset(offset).limit(limit)
        return [rows.negotiation_from_row(r) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ agreements

    def insert_agreement(self, a: ContractAgreement) -> None:
        values = {**rows.agreement_values(a), "created_at": self.clock()}
        self._insert(t.contract_agreements, values, stamped=False)

    def get_agreement(self, agreement_id: str) -> ContractAgreement | None:
        r = self._get(t.contract_agreements, agreement_id)
        return None if r is None else rows.agreement_from_row(r)

    def find_agreements(
        self,
        *,
        asset_id: str | None = None,
        consumer_id: str | None = None,
        provider_id: str | None = None,
        finalized_only: bool = True,
    ) -> list[ContractAgreement]:
        """Agreements matching the filters, newest first; by default only those whose
        negotiation is FINALIZED (what "an existing, valid agreement" means for reuse)."""
        filters = {"asset_id": asset_id, "consumer_id": consumer_id, "provider_id": provider_id}
        given = tuple(name for name, value in filters.items() if value is not None)

        def build() -> Any:  # once per filter combination (every negotiation start asks)
            a, n = t.contract_agreements, t.contract_negotiations
            q = select(a)
            if finalized_only:
                q = q.join(n, n.c.id == a.c.negotiation_id).where(n.c.state == "FINALIZED")
            for name in given:
                q = q.where(a.c[name] == bindparam(name))
            return q.order_by(a.c.signed_at.desc(), a.c.id)

        stmt = statements.memo(("find_agreements", finalized_only, given), build)
        params = {name: filters[name] for name in given}
        return [rows.agreement_from_row(r) for r in self.conn.execute(stmt, params)]

    def list_agreements(self, *, offset: int = 0, limit: int = 50) -> list[ContractAgreement]:
        a = t.contract_agreements
        q = select(a).order_by(a.c.signed_at, a.c.id).offset(offset).limit(limit)
        return [rows.agreement_from_row(r) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ transfers

    def save_transfer(self, e: TransferProcessEntity) -> TransferProcessEntity:
        """Insert (``version == 0``) or update with the optimistic version check."""
        values = rows.transfer_values(e)
        if e.version == 0:
            self._insert(t.transfer_processes, {**values, "version": 1}, stamped=False)
            return replace(e, version=1)
        values.pop("id")
        values.pop("created_at")
        self._update(t.transfer_processes, e.id, e.version, values)
        return replace(e, version=e.version + 1)

    def get_transfer(self, pid: str) -> TransferProcessEntity | None:
        r = self._get(t.transfer_processes, pid)
        return None if r is None else rows.transfer_from_row(r)

    def find_transfer(
        self, *, role: Role, counter_party_id: str, consumer_pid: str
    ) -> TransferProcessEntity | None:
        """The transfer a counter-party started with ``consumer_pid`` (request replay)."""
        tp = t.transfer_processes
        stmt = statements.memo(
            ("find_transfer",),
            lambda: select(tp).where(
                tp.c.role == bindparam("role"),
                tp.c.counter_party_id == bindparam("counter_party_id"),
                tp.c.consumer_pid == bindparam("consumer_pid"),
            ),
        )
        r = self.conn.execute(
            stmt,
            {"role": role.value, "counter_party_id": counter_party_id,
             "consumer_pid": consumer_pid},
        ).first()
        return None if r is None else rows.transfer_from_row(r)

    def list_transfers(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        state: str | None = None,
        agreement_id: str | None = None,
    ) -> list[TransferProcessEntity]:
        tp = t.transfer_processes
        q = select(tp)
        if state is not None:
            q = q.where(tp.c.state == state)
        if agreement_id is not None:
            q = q.where(tp.c.agreement_id == agreement_id)
        q = q.order_by(tp.c.created_at, tp.c.id).offset(offset).limit(limit)
        return [rows.transfer_from_row(r) for r in self.conn.execute(q)]

    # ------------------------------------------------------------------ outcomes, replays

    def apply(self, outcome: Outcome[E]) -> E | None:
        """Persist one machine step: entity (versioned), new agreement, outgoing messages."""
        if outcome.replayed or outcome.entity is None:
            return None
        entity = outcome.entity
        saved: Any
        if isinstance(entity, ContractNegotiationEntity):
            saved = self.save_negotiation(entity)
        else:
            saved = self.save_transfer(entity)
        if outcome.agreement is not None:
            self.insert_agreement(outcome.agreement)
        for out in outcome.outgoing:
            enqueue(self.conn, out, now=self.clock())
        for hook in self.hooks:  # e.g. the ledger: same transaction, commits with the state
            hook(self.conn, outcome, saved)
        return saved

    def get_processed(self, key: str) -> ProcessedMessage | None:
        r = self.conn.execute(statements.by_key(t.processed_messages, "key"), {"key": key}).first()
        if r is None:
            return None
        return ProcessedMessage(
            key=r.key,
            process_kind=r.process_kind,
            process_id=r.process_id,
            message_type=r.message_type,
            status_code=r.status_code,
            response=r.response,
        )

    def record_processed(
        self,
        key: str,
        *,
        process_kind: str,
        process_id: str | None,
        message_type: str,
        status_code: int,
        response: Mapping[str, Any] | None,
    ) -> None:
        """Remember a message and its answer (a concurrent duplicate raises DuplicateError)."""
        self._insert(
            t.processed_messages,
            {
                "key": key,
                "process_kind": process_kind,
                "process_id": process_id,
                "message_type": message_type,
                "status_code": status_code,
                "response": None if response is None else dict(response),
                "created_at": self.clock(),
            },
            stamped=False,
            key="key",
        )


class ConnectorStore:
    """Entry point: transactions over the engine the node owns.

    ``hooks`` run inside the transaction of every applied step, after the entity, agreement
    and outbox rows are written (the node records agreements and transfer events in its
    ledger this way); a hook that raises rolls the step back.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        hooks: Sequence[ApplyHook] = (),
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.hooks = tuple(hooks)

    @contextmanager
    def transaction(self) -> Iterator[StoreSession]:
        """One atomic unit of work; commits on success, rolls back on any exception.

        Raises:
            ConflictError: a concurrent duplicate spoilt the transaction (even if the
                caller caught the DuplicateError): nothing was written; retry.
        """
        with self.engine.connect() as conn:
            tx = conn.begin()
            session = StoreSession(conn, self.clock, self.hooks)
            try:
                yield session
            except BaseException:
                tx.rollback()
                raise
            if session.spoilt:
                tx.rollback()
                raise ConflictError(
                    "the transaction was rolled back after a concurrent duplicate insert; retry"
                )
            tx.commit()
