"""The data plane of one node: tokens, usage gate, sources, access log, wired together.

:func:`build_dataplane` makes a :class:`DataPlane` from what the node has (engine, key
store, clock, public URL); the HTTP layer (:mod:`connectors.dataplane.web`) and the push
worker (:mod:`connectors.dataplane.push`) call it. :meth:`DataPlane.pull` decides the access
before any byte is read, then streams the source through a meter that hashes (SHA-256) and
counts every byte, re-checks the transfer state while streaming, and records the access
when the stream ends, however it ends.

Use counting: the gate counts the use when it grants access (concurrent accesses never
exceed a count). A permitted access that delivered no byte of the data gives the use back
when it is recorded: the source failed to open (status ``failed``) or the stream ended
before the server took its first chunk (status ``aborted``, 0 bytes). Once a chunk has been
handed to the server (the server asked for the next one, or the body ended), the use stays
counted even if the download is cut later: the consumer got data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy.engine import Engine

from connectors.dataplane.edr import EdrIssuer, RefreshGenerations, TokenPair
from connectors.dataplane.flow import DataPlaneFlow
from connectors.dataplane.gate import STARTED, AccessDenied, Permit, UsageGate
from connectors.dataplane.recorder import AccessRecord, AccessRecorder, SqlAccessRecorder
from connectors.dataplane.sources import (
    Body,
    EngineCache,
    SourceError,
    SourceRequest,
    open_source,
)
from connectors.dataplane.tokens import ACCESS, Signer, TokenCodec, TokenError, VerifiedToken
from policies.usage import UsageStore

log = logging.getLogger("autospace.dataplane")
RECHECK_SECONDS = 1.0  # a suspension stops a running stream within this time
PIPELINE_AFTER_CHUNKS = 4  # bodies above 4 MiB hash in a helper thread


@dataclass
class Metered:
    """A permitted stream: headers to send and the chunks (hashed, counted, recorded)."""

    body: Body
    chunks: MeteredStream


class DataPlane:
    """Everything the pull endpoint, the refresh endpoint and the push worker need."""

    def __init__(
        self,
        *,
        gate: UsageGate,
        codec: TokenCodec,
        issuer: EdrIssuer,
        recorder: AccessRecorder,
        http: httpx.Client,
        engines: EngineCache | None = None,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gate = gate
        self.codec = codec
        self.issuer = issuer
        self.recorder = recorder
        self.http = http
        self.engines = engines or EngineCache()
        self.now = now or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.flow = DataPlaneFlow(gate, issuer)

    # -- tokens ----------------------------------------------------------------------------
    def authenticate(self, token: str) -> VerifiedToken:
        """Verify an access token (raises :class:`AccessDenied` 401 with the reason)."""
        try:
            return self.codec.verify(token, kind=ACCESS)
        except TokenError as exc:
            raise AccessDenied(401, "Unauthorized", str(exc)) from None

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token (raises :class:`TokenError`)."""
        return self.issuer.refresh(refresh_token)

    # -- pull ------------------------------------------------------------------------------
    def _denied(self, kind: str, tok: VerifiedToken | None, purpose: str | None,
                exc: AccessDenied) -> None:
        g = tok.grant if tok else None
        self.recorder.record(AccessRecord(
            at=self.now(), kind=kind, transfer_id=g and g.transfer_id,
            agreement_id=g and g.agreement_id, asset_id=g and g.asset_id,
            consumer_id=g and g.consumer_id, purpose=purpose, decision="deny", status="denied",
            reason="; ".join(exc.reasons)[:2000],
        ))

    def pull(self, token: str, req: SourceRequest, *, purpose: str | None,
             count: bool = True) -> Metered:
        """Decide and open one access.

        Raises:
            AccessDenied: bad token (401), policy or state refusal (403), no asset (404).
            SourceError: the source cannot serve it (status in the error).
        """
        tok: VerifiedToken | None = None
        try:
            tok = self.authenticate(token)
            permit = self.gate.check(tok.grant, purpose=purpose, count=count)
        except AccessDenied as exc:
            if tok is not None:  # garbage tokens are not worth a log row each
                self._denied("pull", tok, purpose, exc)
            raise
        body = self.open(permit, req, kind="pull")
        return Metered(body, self.meter(permit, body, kind="pull"))

    def open(self, permit: Permit, req: SourceRequest, *, kind: str) -> Body:
        """Open the permitted asset's source; if that fails, the access is recorded as
        ``failed`` and its use given back (nothing was delivered), and the error raised.
        (A HEAD counted no use and is no access: nothing is recorded for it.)"""
        try:
            return open_source(permit.asset.data_address, req, http=self.http,
                               engines=self.engines)
        except Exception as exc:
            if not permit.counted:
                raise
            reason = exc.detail if isinstance(exc, SourceError) else \
                f"the source failed: {type(exc).__name__}"
            self.record_permitted(permit, kind=kind, status="failed", sent=0, sha256=None,
                                  reason=reason, detail=req.subpath)
            raise

    def record_permitted(self, permit: Permit, *, kind: str, status: str, sent: int,
                         sha256: str | None, reason: str | None, detail: str) -> None:
        """Record one permitted access once its last byte went out (or it was cut).

        An access that did not complete and delivered no byte gives its use back, in the
        transaction that records it (the record then says ``use_released``).
        """
        release = None if status == "complete" or sent else self.gate.releaser(permit)
        self.recorder.record(AccessRecord(
            at=self.now(), kind=kind, transfer_id=permit.transfer.id,
            agreement_id=permit.agreement.id, asset_id=permit.asset.id,
            consumer_id=permit.transfer.consumer_id, purpose=permit.purpose, decision="permit",
            status=status, bytes=sent, sha256=sha256, reason=reason, detail=detail,
        ), release=release)

    def meter(self, permit: Permit, body: Body, *, kind: str) -> MeteredStream:
        """``body``'s chunks, hashed and counted; the access is recorded once, at the end."""
        return MeteredStream(self, permit, body, kind)


class PipelinedDigest:
    """SHA-256 of a stream, computed beside the sending thread once the stream is large.

    ``hashlib`` releases the GIL on large updates, so hashing chunk *n* in a helper thread
    while chunk *n+1* is read and sent uses the second core instead of adding the hashing
    time to the transfer time. At most one chunk is being hashed at any moment (constant
    memory); updates stay in order. Small bodies never start the helper.
    """

    def __init__(self, inline_chunks: int = PIPELINE_AFTER_CHUNKS) -> None:
        self._digest = hashlib.sha256()
        self._inline = inline_chunks
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        if self._inline > 0:
            self._inline -= 1
            self._digest.update(chunk)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dp-sha256")
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._digest.update, chunk)

    def hexdigest(self) -> str:
        """Wait for the last chunk, stop the helper, and return the hex digest."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return self._digest.hexdigest()


class MeteredStream:
    """An iterable of chunks whose ``close`` always releases the source and records.

    WSGI servers call ``close`` even when they never iterate (client gone before the first
    byte), so cleanup lives here rather than only in a generator's ``finally``. ``sent``
    counts the chunks the server took (it asked for the next one after writing each), so
    a stream closed before the first was taken has sent 0 bytes and gives its use back.
    """

    def __init__(self, plane: DataPlane, permit: Permit, body: Body, kind: str) -> None:
        self.plane = plane
        self.permit = permit
        self.body = body
        self.kind = kind
        self.digest = PipelinedDigest()
        self.sent = 0
        self.status = "aborted"
        self.reason: str | None = None
        self.sha256: str | None = None  # set by close(): hex SHA-256 of the bytes yielded
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        plane, transfer_id = self.plane, self.permit.transfer.id
        next_check = plane.monotonic() + RECHECK_SECONDS
        try:
            for chunk in self.body.chunks:
                if plane.monotonic() >= next_check:
                    state = plane.gate.state(transfer_id)
                    if state != STARTED:
                        self.reason = f"transfer became {state} while streaming"
                        return
                    next_check = plane.monotonic() + RECHECK_SECONDS
                yield chunk
                # The server wrote the chunk and asks for more (a failed write closes the
                # stream at the yield instead): only now does it count as sent.
                self.digest.update(chunk)
                self.sent += len(chunk)
            self.status = "complete"
        except Exception as exc:  # a failing source ends the stream; the client sees it cut
            self.reason = str(exc)[:500] or type(exc).__name__
            log.warning("data stream of transfer %s failed: %s", transfer_id, self.reason)
        finally:
            self.close()

    def discard(self) -> None:
        """Release the source without recording (HEAD: headers only, not an access)."""
        if not self._closed:
            self._closed = True
            self.body.close()

    def close(self) -> None:
        """Release the source and record the access (idempotent)."""
        if self._closed:
            return
        self._closed = True
        p = self.permit
        try:
            self.body.close()
        finally:
            if self.status == "complete" or self.sent:
                self.sha256 = self.digest.hexdigest()
            self.plane.record_permitted(p, kind=self.kind, status=self.status, sent=self.sent,
                                        sha256=self.sha256, reason=self.reason,
                                        detail=self.body.detail)

    def detach(self) -> Body:
        """Hand the open source to another sender (sendfile); this stream records nothing."""
        self._closed = True
        return self.body


def build_dataplane(
    engine: Engine,
    signer: Signer,
    *,
    participant_id: str,
    public_url: str,
    clock: Callable[[], float] = time.time,
    http: httpx.Client | None = None,
    ledger_origin: str | None = None,
    access_ttl: int = 300,
    refresh_ttl: int = 86400,
    recorder: AccessRecorder | None = None,
) -> DataPlane:
    """Wire a data plane for one node.

    Args:
        engine: the node database (all tables migrated).
        signer: the node key store (EDR tokens are EdDSA JWS with the identity key).
        participant_id: our id (token issuer; provider in agreements).
        public_url: the node's public base URL (EDR endpoint: ``{public_url}/dataplane/public``).
        clock: Unix seconds (token times, usage decisions).
        http: client for HTTP backends and pushes (default: a streaming client, 30 s timeouts).
        ledger_origin: origin of the node's transparency log; None records to the table only.
        recorder: replaces the default :class:`SqlAccessRecorder`.
    """

    def now() -> datetime:
        return datetime.fromtimestamp(clock(), UTC)

    usage = UsageStore(engine, clock=now)
    gate = UsageGate(engine, usage, participant_id=participant_id)
    codec = TokenCodec(signer, clock=clock, issuer=participant_id, access_ttl=access_ttl,
                       refresh_ttl=refresh_ttl)
    issuer = EdrIssuer(codec, RefreshGenerations(engine, now=now), public_base=public_url,
                       is_started=lambda pid: gate.state(pid) == STARTED)
    client = http or httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=False)
    return DataPlane(
        gate=gate, codec=codec, issuer=issuer,
        recorder=recorder or SqlAccessRecorder(engine, ledger_origin=ledger_origin, clock=now),
        http=client, now=now,
    )
