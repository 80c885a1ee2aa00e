"""Push transfers: deliver the asset to the consumer's endpoint from a background job.

The worker finds provider transfers that are STARTED with a push format (the committed
transfer row is the work item, so nothing is lost between the DSP commit and the push),
leases each in ``dataplane_pushes``, checks usage control like a pull, streams the source
to the destination (chunked, hashed, counted), and then completes the transfer through the
DSP provider machine (its TransferCompletionMessage goes out through the outbox). Failures
retry with back-off; after :data:`MAX_ATTEMPTS` the transfer is terminated with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

import httpx
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from connectors import tables as ct
from connectors.dataplane.flow import destination, is_push
from connectors.dataplane.gate import PROVIDER, STARTED, AccessDenied
from connectors.dataplane.service import DataPlane
from connectors.dataplane.sources import SourceError, SourceRequest
from connectors.dataplane.tables import pushes
from connectors.dataplane.tokens import Grant
from connectors.dsp.errors import ConflictError
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.store import ConnectorStore
from connectors.dsp.transfer_handlers import DataFlowError, ProviderTransferMachine
from connectors.dsp.vocabulary import ErrorCode

log = logging.getLogger("autospace.dataplane")
MAX_ATTEMPTS = 6
LEASE_MS = 10 * 60 * 1000
BACKOFF_MS = (1000, 5000, 30000, 120000, 600000)


class PushRunner:
    """Runs due pushes. ``run_due()`` is the periodic job.

    Args:
        plane: the data plane (gate, sources, recorder, HTTP client).
        store: the connector store (to complete or terminate transfers).
        participant_id: our id (the provider machine's).
        owner: lease owner name (default: host:pid).
    """

    def __init__(self, plane: DataPlane, store: ConnectorStore, *, participant_id: str,
                 owner: str | None = None, clock_ms: Callable[[], int] | None = None) -> None:
        self.plane = plane
        self.store = store
        self.participant_id = participant_id
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.clock_ms = clock_ms or (lambda: int(plane.now().timestamp() * 1000))

    # -- finding and leasing work ----------------------------------------------------------
    def candidates(self, limit: int = 20) -> list[str]:
        """STARTED provider push transfers not yet done, due now."""
        tp, p = ct.transfer_processes, pushes
        now = self.clock_ms()
        q = (
            select(tp.c.id, tp.c.format, tp.c.data_address)
            .select_from(tp.outerjoin(p, p.c.transfer_id == tp.c.id))
            .where(tp.c.role == PROVIDER, tp.c.state == STARTED,
                   or_(func.upper(tp.c.format).like("%-PUSH"),
                       ~func.upper(tp.c.format).like("%-PULL")),
                   or_(p.c.transfer_id.is_(None),
                       (p.c.status == "pending") & (p.c.next_attempt_at <= now)
                       & or_(p.c.leased_until.is_(None), p.c.leased_until < now)))
            .limit(limit * 4)
        )
        with self.plane.gate.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [r.id for r in rows if is_push(r.format, r.data_address)][:limit]

    def lease(self, transfer_id: str) -> int | None:
        """Take the push of ``transfer_id``; the attempt number, or None if someone else has it."""
        now = self.clock_ms()
        values = {"leased_until": now + LEASE_MS, "lease_owner": self.owner,
                  "updated_at": self.plane.now()}
        with self.plane.gate.engine.begin() as conn:
            row = conn.execute(select(pushes).where(pushes.c.transfer_id == transfer_id)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(pushes).values(
                            transfer_id=transfer_id, status="pending", attempts=1,
                            next_attempt_at=now, **values))
                    return 1
                except IntegrityError:
                    return None
            got = conn.execute(
                update(pushes).where(
                    pushes.c.transfer_id == transfer_id, pushes.c.status == "pending",
                    pushes.c.attempts == row.attempts,
                    or_(pushes.c.leased_until.is_(None), pushes.c.leased_until < now))
                .values(attempts=row.attempts + 1, **values))
            return row.attempts + 1 if got.rowcount == 1 else None

    def _finish(self, transfer_id: str, **values: object) -> None:
        with self.plane.gate.engine.begin() as conn:
            conn.execute(update(pushes).where(pushes.c.transfer_id == transfer_id)
                         .values(leased_until=None, updated_at=self.plane.now(), **values))

    # -- the transfer's end ----------------------------------------------------------------
    def _machine(self) -> ProviderTransferMachine:
        def no_agreement(_: str) -> None:
            return None

        class _NoFlow:
            def start(self, *_: object) -> None:
                raise DataFlowError("not used for completion")

        return ProviderTransferMachine(
            participant_id=self.participant_id, agreements=no_agreement, data_flow=_NoFlow(),
            checker=lambda *a, **k: None,  # type: ignore[arg-type,return-value]
            clock=self.store.clock,
        )

    def _end(self, transfer_id: str, detail: ErrorDetail | None) -> None:
        for _ in range(3):
            try:
                with self.store.transaction() as tx:
                    entity = tx.get_transfer(transfer_id)
                    if entity is None or entity.state.value != STARTED:
                        return
                    m = self._machine()
                    tx.apply(m.complete(entity) if detail is None else m.terminate(entity, detail))
                return
            except ConflictError:
                continue

    # -- one push --------------------------------------------------------------------------
    def push(self, transfer_id: str) -> str:
        """Try one push now; returns ``done``, ``retry``, ``failed`` or ``skipped``."""
        attempt = self.lease(transfer_id)
        if attempt is None:
            return "skipped"
        gate = self.plane.gate
        view = gate.transfer(transfer_id)
        if view is None or view.state != STARTED or view.asset_id is None:
            self._finish(transfer_id, status="failed", last_error="transfer is not STARTED")
            return "failed"
        grant = Grant(view.agreement_id, view.id, view.asset_id, view.consumer_id)
        try:
            dest = destination(view.data_address)
            permit = gate.check(grant, purpose=None)
        except (AccessDenied, DataFlowError) as exc:
            reason = "; ".join(exc.reasons) if isinstance(exc, AccessDenied) else str(exc)
            self._finish(transfer_id, status="failed", last_error=reason[:2000])
            code = ErrorCode.POLICY_DENIED if isinstance(exc, AccessDenied) \
                else ErrorCode.DATA_FLOW_FAILED
            self._end(transfer_id, ErrorDetail(code, (reason,)))
            return "failed"
        error: str | None = None
        stream = None
        try:
            body = self.plane.open(permit, SourceRequest(), kind="push")  # failed: use back
            stream = self.plane.meter(permit, body, kind="push")
            headers = dict(dest.headers)
            headers["Content-Type"] = body.content_type
            response = self.plane.http.request(dest.method, dest.url, headers=headers,
                                               content=iter(stream))
            if response.status_code >= 300:
                error = f"destination answered {response.status_code}"
            elif stream.status != "complete":
                error = stream.reason or "the stream ended early"
        except SourceError as exc:
            error = exc.detail
        except httpx.HTTPError as exc:
            error = f"destination unreachable: {type(exc).__name__}"
        finally:
            if stream is not None:
                stream.close()
        if error is None:
            self._finish(transfer_id, status="done", bytes=stream.sent if stream else 0,
                         sha256=stream.sha256 if stream else None, last_error=None)
            self._end(transfer_id, None)
            return "done"
        if attempt >= MAX_ATTEMPTS:
            self._finish(transfer_id, status="failed", last_error=error[:2000])
            self._end(transfer_id, ErrorDetail(ErrorCode.DATA_FLOW_FAILED,
                                               (f"push failed {attempt} times: {error}",)))
            return "failed"
        delay = BACKOFF_MS[min(attempt - 1, len(BACKOFF_MS) - 1)]
        self._finish(transfer_id, next_attempt_at=self.clock_ms() + delay, last_error=error[:2000])
        log.info("push of %s failed (attempt %d): %s", transfer_id, attempt, error)
        return "retry"

    def run_due(self, limit: int = 20) -> int:
        """The periodic job: push every due transfer; returns how many were tried."""
        done = 0
        for transfer_id in self.candidates(limit):
            if self.push(transfer_id) != "skipped":
                done += 1
        return done

