"""The protocol as the HTTP binding and the worker call it: one method per endpoint.

Each incoming message is parsed and validated, checked against the replay table, applied
by the right machine and committed (entity, agreement, outbox rows, replay record) in one
transaction before the answer is returned: state is durable before a message is
acknowledged. Answers are :class:`Reply` values (status + DSP body), never exceptions, so
no traceback reaches a peer. Outgoing messages are delivered by :meth:`deliver_due` with
a transport the node injects; with a :class:`FastPath` set, the rows a transaction writes are
leased in that transaction and handed to the dispatcher after the commit (sent with
:meth:`deliver_leased`, no lease transaction on the way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.dsp import messages as m
from connectors.dsp import outbox
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.catalog import CatalogService
from connectors.dsp.catalog_messages import CatalogRequestMessage
from connectors.dsp.errors import ConflictError, DspError, ProcessNotFoundError
from connectors.dsp.negotiation import ContractNegotiationEntity, ErrorDetail
from connectors.dsp.negotiation_consumer import ConsumerNegotiationMachine
from connectors.dsp.negotiation_provider import ProviderNegotiationMachine
from connectors.dsp.outcome import Outcome, ProcessKind, urn_uuid
from connectors.dsp.policy import (
    Caller,
    PolicyChecker,
    PolicyNormaliser,
    same_terms,
    structural_normaliser,
)
from connectors.dsp.store import ConnectorStore, StoreSession, message_key
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.transfer_handlers import (
    ConsumerTransferMachine,
    DataFlow,
    ProviderTransferMachine,
)
from connectors.dsp.vocabulary import PROTOCOL_VERSION, ErrorCode, Path, Role

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3  # optimistic-lock conflicts retried before answering 409

# Endpoint template -> (messages it accepts, process kind, side that owns it when new).
ENDPOINTS: dict[str, tuple[tuple[type[m.Message], ...], ProcessKind, Role]] = {
    Path.NEGOTIATIONS_REQUEST: (
        (m.ContractRequestMessage,),
        ProcessKind.NEGOTIATION,
        Role.PROVIDER,
    ),
    Path.NEGOTIATION_REQUEST: ((m.ContractRequestMessage,), ProcessKind.NEGOTIATION, Role.PROVIDER),
    Path.NEGOTIATION_EVENTS: (
        (m.ContractNegotiationEventMessage,),
        ProcessKind.NEGOTIATION,
        Role.PROVIDER,
    ),
    Path.NEGOTIATION_VERIFICATION: (
        (m.ContractAgreementVerificationMessage,),
        ProcessKind.NEGOTIATION,
        Role.PROVIDER,
    ),
    Path.NEGOTIATION_TERMINATION: (
        (m.ContractNegotiationTerminationMessage,),
        ProcessKind.NEGOTIATION,
        Role.PROVIDER,
    ),
    Path.NEGOTIATIONS_OFFERS: ((m.ContractOfferMessage,), ProcessKind.NEGOTIATION, Role.CONSUMER),
    Path.NEGOTIATION_OFFERS: ((m.ContractOfferMessage,), ProcessKind.NEGOTIATION, Role.CONSUMER),
    Path.NEGOTIATION_AGREEMENT: (
        (m.ContractAgreementMessage,),
        ProcessKind.NEGOTIATION,
        Role.CONSUMER,
    ),
    Path.TRANSFERS_REQUEST: ((m.TransferRequestMessage,), ProcessKind.TRANSFER, Role.PROVIDER),
    Path.TRANSFER_START: ((m.TransferStartMessage,), ProcessKind.TRANSFER, Role.PROVIDER),
    Path.TRANSFER_COMPLETION: ((m.TransferCompletionMessage,), ProcessKind.TRANSFER, Role.PROVIDER),
    Path.TRANSFER_SUSPENSION: ((m.TransferSuspensionMessage,), ProcessKind.TRANSFER, Role.PROVIDER),
    Path.TRANSFER_TERMINATION: (
        (m.TransferTerminationMessage,),
        ProcessKind.TRANSFER,
        Role.PROVIDER,
    ),
}
INITIAL_ENDPOINTS = frozenset(
    {Path.NEGOTIATIONS_REQUEST, Path.NEGOTIATIONS_OFFERS, Path.TRANSFERS_REQUEST}
)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer for the binding: HTTP status, JSON body (None = empty), Link header values."""

    status: int
    body: dict[str, Any] | None
    links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the transport saw when POSTing an outbox row."""

    ok: bool
    status: int | None = None
    body: Mapping[str, Any] | None = None
    error: str = ""

    @property
    def permanent(self) -> bool:
        """4xx (but 408/425/429) will not get better by retrying; 5xx and network errors may."""
        return (
            self.status is not None
            and 400 <= self.status < 500
            and self.status not in (408, 425, 429)
        )


class Sender(Protocol):
    """POST ``row.body`` to ``row.url`` as this node (authenticated); never raises."""

    def __call__(self, row: outbox.OutboxMessage) -> DeliveryResult: ...


@dataclass(frozen=True, slots=True)
class FastPath:
    """Lease outbox rows as they are written, for ``owner``, and after the commit call
    ``hand_over(leased_rows, unleased_count)`` (the dispatcher sends the leased ones)."""

    owner: str
    hand_over: Callable[[Sequence[outbox.OutboxMessage], int], None]
    lease_ms: int = outbox.DEFAULT_LEASE_MS


def _error_reply(err: DspError, kind: ProcessKind | None) -> Reply:
    if kind is ProcessKind.NEGOTIATION:
        return Reply(err.status, m.negotiation_error(err).to_json())
    if kind is ProcessKind.TRANSFER:
        return Reply(err.status, m.transfer_error(err).to_json())
    return Reply(err.status, m.catalog_error(err).to_json())


class DspProtocol:
    """The node's DSP endpoints and commands over one store (provider and consumer at once)."""

    def __init__(
        self,
        store: ConnectorStore,
        *,
        participant_id: str,
        protocol_url: str,
        checker: PolicyChecker,
        data_flow: DataFlow,
        clock: Callable[[], datetime],
        normaliser: PolicyNormaliser = structural_normaliser,
        new_id: Callable[[], str] = urn_uuid,
        formats: Sequence[str] | None = None,
        catalog: CatalogService | None = None,
    ) -> None:
        self.store = store
        self.participant_id = participant_id
        self.protocol_url = protocol_url
        self.checker = checker
        self.data_flow = data_flow
        self.clock = clock
        self.normaliser = normaliser
        self.new_id = new_id
        self.formats = formats
        kw: dict[str, Any] = {} if formats is None else {"formats": formats}
        self.catalog = catalog or CatalogService(
            participant_id=participant_id, protocol_url=protocol_url, checker=checker, **kw
        )
        #: set by the node to send committed messages without a lease transaction
        self.fast_path: FastPath | None = None

    @contextmanager
    def _transaction(self) -> Iterator[StoreSession]:
        """A store transaction that may write outbox rows; with a fast path, its rows are
        leased as they are written and handed over once the commit succeeded."""
        fast = self.fast_path
        if fast is None:
            with self.store.transaction() as tx:
                yield tx
            return
        with (
            outbox.leasing_on_enqueue(fast.owner, lease_ms=fast.lease_ms) as taken,
            self.store.transaction() as tx,
        ):
            yield tx
        if taken.leased or taken.unleased:
            fast.hand_over(tuple(taken.leased), taken.unleased)

    # ------------------------------------------------------------------ machines per session

    def provider_negotiations(self, tx: StoreSession) -> ProviderNegotiationMachine:
        return ProviderNegotiationMachine(
            participant_id=self.participant_id,
            offers=lambda oid, caller: self.catalog.resolve_offer(tx, oid, caller),
            checker=self.checker,
            clock=self.clock,
            protocol_address=self.protocol_url,
            normaliser=self.normaliser,
            new_id=self.new_id,
        )

    def consumer_negotiations(self) -> ConsumerNegotiationMachine:
        return ConsumerNegotiationMachine(
            participant_id=self.participant_id,
            callback_address=self.protocol_url,
            clock=self.clock,
            normaliser=self.normaliser,
            new_id=self.new_id,
        )

    def provider_transfers(self, tx: StoreSession) -> ProviderTransferMachine:
        return ProviderTransferMachine(
            participant_id=self.participant_id,
            agreements=tx.get_agreement,
            data_flow=self.data_flow,
            checker=self.checker,
            clock=self.clock,
            formats=self.formats,
            new_id=self.new_id,
        )

    def consumer_transfers(self) -> ConsumerTransferMachine:
        return ConsumerTransferMachine(
            participant_id=self.participant_id,
            callback_address=self.protocol_url,
            clock=self.clock,
            new_id=self.new_id,
        )

    def _machine(self, tx: StoreSession, kind: ProcessKind, role: Role) -> Any:
        if kind is ProcessKind.NEGOTIATION:
            return (
                self.provider_negotiations(tx)
                if role is Role.PROVIDER
                else self.consumer_negotiations()
            )
        return self.provider_transfers(tx) if role is Role.PROVIDER else self.consumer_transfers()

    # ------------------------------------------------------------------ incoming messages

    def receive(self, caller: Caller, endpoint: str, body: Any, pid: str | None = None) -> Reply:
        """Handle a POST to a negotiation/transfer endpoint (``endpoint`` is a :class:`Path`
        template, ``pid`` the id in the path). Returns the reply to send, after commit."""
        spec = ENDPOINTS.get(endpoint)
        if spec is None:
            return Reply(404, None)
        expected, kind, default_role = spec
        try:
            msg = m.parse_message(body, *expected)
            key = message_key(
                kind=kind.value,
                sender_id=caller.participant_id,
                target=f"{endpoint}|{pid or ''}",
                body=body,
            )
            for attempt in range(CONFLICT_RETRIES):
                try:
                    return self._apply_message(caller, endpoint, msg, pid, key, kind, default_role)
                except ConflictError:
                    if attempt == CONFLICT_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover
        except DspError as err:
            if pid is not None and err.provider_pid is None and err.consumer_pid is None:
                err.provider_pid = pid if default_role is Role.PROVIDER else None
                err.consumer_pid = pid if default_role is Role.CONSUMER else None
            return _error_reply(err, kind)
        except Exception:
            log.exception("DSP %s failed", endpoint)
            err = DspError("internal error; the request was not applied", code=ErrorCode.INTERNAL)
            return Reply(500, _error_reply(err, kind).body)

    def _apply_message(
        self,
        caller: Caller,
        endpoint: str,
        msg: m.Message,
        pid: str | None,
        key: str,
        kind: ProcessKind,
        default_role: Role,
    ) -> Reply:
        with self._transaction() as tx:
            seen = tx.get_processed(key)
            if seen is not None:
                return Reply(seen.status_code, seen.response)
            current: Any
            if endpoint in INITIAL_ENDPOINTS:
                current = self._find_initial(tx, caller, kind, default_role, msg)
            elif pid is None:
                raise ProcessNotFoundError("the endpoint needs a process id")
            else:
                current = (
                    tx.get_negotiation(pid)
                    if kind is ProcessKind.NEGOTIATION
                    else tx.get_transfer(pid)
                )
            role = current.role if current is not None else default_role
            outcome: Outcome[Any] = self._machine(tx, kind, role).handle(caller, msg, current)
            tx.apply(outcome)
            status = 201 if outcome.created else 200
            response = None if outcome.response is None else outcome.response.to_json()
            process_id = (
                outcome.entity.id
                if outcome.entity is not None
                else (current.id if current is not None else None)
            )
            tx.record_processed(
                key,
                process_kind=kind.value,
                process_id=process_id,
                message_type=msg.TYPE.value,
                status_code=status,
                response=response,
            )
            return Reply(status, response)

    def _find_initial(
        self, tx: StoreSession, caller: Caller, kind: ProcessKind, role: Role, msg: m.Message
    ) -> Any:
        if isinstance(msg, m.ContractOfferMessage):
            return tx.find_negotiation(
                role=role, counter_party_id=caller.participant_id, provider_pid=msg.provider_pid
            )
        consumer_pid = msg.consumer_pid  # type: ignore[attr-defined]
        if kind is ProcessKind.NEGOTIATION:
            return tx.find_negotiation(
                role=role, counter_party_id=caller.participant_id, consumer_pid=consumer_pid
            )
        return tx.find_transfer(
            role=role, counter_party_id=caller.participant_id, consumer_pid=consumer_pid
        )

    def describe(self, caller: Caller, kind: ProcessKind, pid: str) -> Reply:
        """``GET /negotiations/:pid`` and ``GET /transfers/:pid`` (404 unless party to it)."""
        try:
            with self.store.transaction() as tx:
                current = (
                    tx.get_negotiation(pid)
                    if kind is ProcessKind.NEGOTIATION
                    else tx.get_transfer(pid)
                )
                role = current.role if current is not None else Role.PROVIDER
                machine = self._machine(tx, kind, role)
                return Reply(200, machine.describe(caller, current, pid).to_json())
        except DspError as err:
            return _error_reply(err, kind)

    # ------------------------------------------------------------------ catalog, version

    def catalog_request(
        self,
        caller: Caller,
        body: Any,
        *,
        request_url: str,
        token: str | None = None,
        limit: int | None = None,
    ) -> Reply:
        """``POST /catalog/request``: one page, with ``Link`` values for next/prev
        (``token`` is the ``continuationToken`` query parameter of those links)."""
        try:
            msg = CatalogRequestMessage.from_json(body)
            with self.store.transaction() as tx:
                kw = {} if limit is None else {"limit": limit}
                page = self.catalog.request(tx, caller, token=token, filters=msg.filter, **kw)
            return Reply(200, page.catalog.to_json(), tuple(page.links(request_url)))
        except DspError as err:
            return _error_reply(err, None)

    def dataset(self, caller: Caller, dataset_id: str) -> Reply:
        """``GET /catalog/datasets/:id`` (404 when unknown or not visible to the caller)."""
        try:
            with self.store.transaction() as tx:
                return Reply(200, self.catalog.dataset(tx, caller, dataset_id).to_json())
        except DspError as err:
            return _error_reply(err, None)

    def version(
        self,
        path: str,
        *,
        identifier_type: str | None = "did:web",
        auth: Mapping[str, Any] | None = None,
    ) -> Reply:
        """``GET /.well-known/dspace-version`` (``path``: where the 2025-1 endpoints live)."""
        doc = m.VersionDocument(
            (
                m.ProtocolVersion(
                    PROTOCOL_VERSION,
                    path,
                    identifier_type=identifier_type,
                    auth=None if auth is None else dict(auth),
                ),
            )
        )
        return Reply(200, doc.to_json())

    # ------------------------------------------------------------------ local commands

    def _command(
        self, kind: ProcessKind, pid: str, step: Callable[[Any, Any, StoreSession], Outcome[Any]]
    ) -> Any:
        for attempt in range(CONFLICT_RETRIES):
            try:
                with self._transaction() as tx:
                    entity = (
                        tx.get_negotiation(pid)
                        if kind is ProcessKind.NEGOTIATION
                        else tx.get_transfer(pid)
                    )
                    if entity is None:
                        raise ProcessNotFoundError(f"no {kind.value} {pid}")
                    outcome = step(self._machine(tx, kind, entity.role), entity, tx)
                    saved = tx.apply(outcome)
                    return saved if saved is not None else entity
            except ConflictError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _create(self, outcome: Outcome[Any]) -> Any:
        with self._transaction() as tx:
            return tx.apply(outcome)

    def start_negotiation(
        self, *, provider_id: str, provider_address: str, offer: Mapping[str, Any]
    ) -> ContractNegotiationEntity:
        """Consumer: request ``offer`` (with ``@id`` and ``target``) from a provider."""
        return self._create(
            self.consumer_negotiations().request(
                provider_id=provider_id, provider_address=provider_address, offer=offer
            )
        )

    def reusable_agreement(
        self, *, provider_id: str, offer: Mapping[str, Any]
    ) -> ContractAgreement | None:
        """A finalised agreement we hold with ``provider_id`` for ``offer['target']`` whose
        terms equal the offer's after normalisation: reuse it instead of negotiating again.
        (Whether it is still usable, e.g. an expired time window, is the usage policy's call.)
        """
        target = offer.get("target")
        if not isinstance(target, str):
            return None
        with self.store.transaction() as tx:
            held = tx.find_agreements(
                asset_id=target, provider_id=provider_id, consumer_id=self.participant_id
            )
        return next((a for a in held if same_terms(offer, a.policy, self.normaliser)), None)

    def accept_offer(self, pid: str) -> ContractNegotiationEntity:
        """Consumer: accept the provider's offer on negotiation ``pid``."""
        return self._command(ProcessKind.NEGOTIATION, pid, lambda mc, e, tx: mc.accept(e))

    def terminate_negotiation(self, pid: str, detail: ErrorDetail) -> ContractNegotiationEntity:
        """Either side: terminate negotiation ``pid`` with a reason."""
        return self._command(
            ProcessKind.NEGOTIATION, pid, lambda mc, e, tx: mc.terminate(e, detail)
        )

    def start_transfer(
        self,
        *,
        agreement_id: str,
        provider_address: str,
        format: str,
        data_address: m.DataAddress | None = None,
    ) -> TransferProcessEntity:
        """Consumer: start a transfer under one of our agreements (404 if unknown)."""
        with self._transaction() as tx:
            agreement = tx.get_agreement(agreement_id)
            if agreement is None or agreement.consumer_id != self.participant_id:
                raise ProcessNotFoundError(f"no agreement {agreement_id} as consumer")
            outcome = self.consumer_transfers().request(
                provider_id=agreement.provider_id,
                provider_address=provider_address,
                agreement=agreement,
                format=format,
                data_address=data_address,
            )
            return tx.apply(outcome)

    def suspend_transfer(self, pid: str, detail: ErrorDetail) -> TransferProcessEntity:
        return self._command(ProcessKind.TRANSFER, pid, lambda mc, e, tx: mc.suspend(e, detail))

    def resume_transfer(self, pid: str) -> TransferProcessEntity:
        return self._command(ProcessKind.TRANSFER, pid, lambda mc, e, tx: mc.resume(e))

    def complete_transfer(self, pid: str) -> TransferProcessEntity:
        return self._command(ProcessKind.TRANSFER, pid, lambda mc, e, tx: mc.complete(e))

    def terminate_transfer(self, pid: str, detail: ErrorDetail) -> TransferProcessEntity:
        return self._command(ProcessKind.TRANSFER, pid, lambda mc, e, tx: mc.terminate(e, detail))

    # ------------------------------------------------------------------ outbox delivery

    def deliver_due(self, send: Sender, *, owner: str, limit: int = 10) -> int:
        """Lease due outbox rows, send them, record the result; returns rows handled."""
        rows = outbox.lease(self.store.engine, owner, now=self.clock(), limit=limit)
        for row in rows:
            self.deliver_leased(send, row, owner=owner)
        return len(rows)

    def deliver_leased(self, send: Sender, row: outbox.OutboxMessage, *, owner: str) -> bool:
        """Send one row ``owner`` holds the lease of and record the result (complete, or
        retry / give up); True when the peer accepted it."""
        result = send(row)
        if result.ok:
            if not (self._acknowledges(row) and result.body is not None
                    and self._complete_acknowledged(row, result.body, owner)):
                outbox.complete(self.store.engine, row.id, owner, now=self.clock())
            return True
        status = outbox.retry(
            self.store.engine,
            row.id,
            owner,
            now=self.clock(),
            error=result.error or f"HTTP {result.status}",
            permanent=result.permanent,
        )
        if status == "dead":
            self._after_failure(row, result.error or f"HTTP {result.status}")
        return False

    @staticmethod
    def _acknowledges(row: outbox.OutboxMessage) -> bool:
        """Whether the answer to ``row`` carries the counter-party's pid (initial messages)."""
        return (
            row.message_type in (m.TransferRequestMessage.TYPE.value,)
            or (
                row.message_type == m.ContractRequestMessage.TYPE.value
                and "providerPid" not in row.body
            )
            or (
                row.message_type == m.ContractOfferMessage.TYPE.value
                and "consumerPid" not in row.body
            )
        )

    def _complete_acknowledged(
        self, row: outbox.OutboxMessage, body: Mapping[str, Any], owner: str
    ) -> bool:
        """An initial request/offer was ACKed: mark the row sent and record the
        counter-party's pid from the answer in one transaction (the next message of the
        conversation is usually arriving meanwhile). False when the answer was not usable;
        the caller then marks the row sent on its own."""
        kind = ProcessKind(row.process_kind)

        def step(mc: Any, entity: Any, tx: StoreSession) -> Outcome[Any]:
            if not outbox.complete_in(tx.conn, row.id, owner, now=self.clock()):
                return Outcome(None, replayed=True)  # lease lost: whoever holds it resends
            return mc.on_acknowledged(entity, body)

        try:
            self._command(kind, row.process_id, step)
        except DspError as err:
            log.warning("ACK for %s %s not usable: %s", kind.value, row.process_id, err)
            return False
        return True

    def _after_failure(self, row: outbox.OutboxMessage, reason: str) -> None:
        kind = ProcessKind(row.process_kind)
        detail = f"{row.message_type} to {row.url} failed: {reason}"
        try:
            self._command(kind, row.process_id, lambda mc, e, tx: mc.on_delivery_failed(e, detail))
        except DspError as err:
            log.warning(
                "could not end %s %s after delivery failure: %s", kind.value, row.process_id, err
            )
