"""Getting DSP messages to peers: who they are, how they are signed, when they go out.

- :class:`PeerDirectory` maps a DSP participant id to the peer's DID (the audience of
  the peer token) through the authority's verified member registry.
- :class:`PeerSender` is the outbox :class:`~connectors.dsp.service.Sender`: it POSTs a
  row over the signed :class:`~connectors.identity.peer_client.PeerClient` and reports
  what happened as a value (it never raises).
- :class:`Dispatcher` is a background thread that drains the outbox as soon as a request
  committed something to send (``kick()``), so a negotiation does not wait for the next
  worker tick; the periodic worker job still retries what failed. Rows a request leased
  as it wrote them (the protocol's fast path) arrive through ``hand_over()`` and are sent
  without a lease transaction; a full drain (lease, ``after_drain``, pending count) runs
  when a kick was not covered by a hand-over, after a failed send, and at least every
  ``idle_seconds``.
- :class:`MessageLog` appends every DSP message sent or received to a JSON-lines file when
  ``[connector] message_log`` is set (the end-to-end tests validate each one against the
  official schemas).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from connectors.dsp import outbox
from connectors.dsp.service import DeliveryResult, DspProtocol
from connectors.identity.errors import IdentityError, PeerAuthError
from connectors.identity.peer_client import PeerClient
from connectors.identity.registry import Member
from connectors.identity.trust import RegistryCache

log = logging.getLogger("autospace.connector")
MAX_FAILURES = 5  # consecutive store failures before the dispatcher thread gives up


class UnknownPeerError(LookupError):
    """No member of the data space has this participant id or DID."""


class PeerDirectory:
    """Participant id <-> DID of data-space members, from the verified registries."""

    def __init__(self, registries: RegistryCache | None, authorities: list[str]) -> None:
        self._registries = registries
        self._authorities = authorities

    def members(self) -> list[Member]:
        if self._registries is None:
            return []
        found: list[Member] = []
        for authority in self._authorities:
            try:
                found.extend(self._registries.get(authority).members.values())
            except PeerAuthError as exc:
                log.warning("member registry of %s unavailable: %s", authority, exc.detail)
        return found

    def member(self, ident: str) -> Member:
        """The member whose participant id or DID is ``ident``.

        Raises:
            UnknownPeerError: nobody in the registry has it.
        """
        for m in self.members():
            if ident in (m.participant_id, m.did):
                return m
        raise UnknownPeerError(
            f"{ident!r} is not a member of the data space (neither a participant id nor a "
            "DID in the authority's registry)"
        )

    def did_of(self, ident: str) -> str:
        """The DID to address tokens to: ``ident`` itself when it is a DID."""
        return ident if ident.startswith("did:") else self.member(ident).did

    def participant_of(self, ident: str) -> str:
        """The DSP participant id for ``ident`` (a participant id or a member's DID)."""
        if not ident.startswith("did:"):
            return ident
        return self.member(ident).participant_id


class MessageLog:
    """Append DSP messages as JSON lines: ``{"direction", "endpoint", "status", "body",
    "pid", "at"}`` (direction: sent, response, received, answered; ``at``: Unix seconds)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def write(self, direction: str, endpoint: str, body: Any, status: int | None = None) -> None:
        if self.path is None or body is None:
            return
        line = json.dumps(
            {"direction": direction, "endpoint": endpoint, "status": status, "body": body,
             "pid": os.getpid(), "at": time.time()}
        )
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class PeerSender:
    """POST outbox rows to peers as this node (the outbox ``Sender``)."""

    def __init__(
        self, client: PeerClient, directory: PeerDirectory, messages: MessageLog | None = None
    ) -> None:
        self.client = client
        self.directory = directory
        self.messages = messages or MessageLog(None)

    def __call__(self, row: outbox.OutboxMessage) -> DeliveryResult:
        try:
            audience = self.directory.did_of(row.recipient_id)
        except UnknownPeerError as exc:
            return DeliveryResult(False, error=str(exc))
        self.messages.write("sent", row.url, row.body)
        try:
            response = self.client.post(row.url, audience=audience, json=row.body,
                                        headers={"Content-Type": "application/json"})
        except (httpx.HTTPError, IdentityError) as exc:
            return DeliveryResult(False, error=f"{type(exc).__name__}: {exc}")
        body: Mapping[str, Any] | None = None
        if response.content:
            try:
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else None
            except ValueError:
                body = None
        self.messages.write("response", row.url, body, response.status_code)
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, response.status_code, body)
        return DeliveryResult(False, response.status_code, body,
                              error=f"HTTP {response.status_code}: {refusal(body, response)}")


def refusal(body: Mapping[str, Any] | None, response: httpx.Response) -> str:
    """What a peer said when it refused a message: the DSP error's code and reasons."""
    if body is not None and "code" in body:
        reasons = body.get("reason") or []
        text = "; ".join(str(r) for r in (reasons if isinstance(reasons, list) else [reasons]))
        return f"{body['code']}: {text}" if text else str(body["code"])
    return response.text[:500]


class Dispatcher:
    """A daemon thread delivering due outbox rows whenever it is kicked (and on its own
    every ``idle_seconds``, which picks up retries whose back-off has passed)."""

    def __init__(
        self,
        protocol: DspProtocol,
        send: Callable[[outbox.OutboxMessage], DeliveryResult],
        *,
        owner: str,
        idle_seconds: float = 1.0,
        batch: int = 20,
    ) -> None:
        self.protocol = protocol
        self.send = send
        self.owner = owner
        self.idle_seconds = idle_seconds
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: run after each drain by the thread (e.g. continue EDR requests); errors logged
        self.after_drain: Callable[[], Any] | None = None
        #: run once, when the first thread starts (e.g. free leases of dead processes)
        self.on_start: Callable[[], Any] | None = None
        self._started = False
        self._handed: deque[outbox.OutboxMessage] = deque()  # leased rows to send first
        self._drain_due = True  # a full drain (lease query) is wanted on the next wake
        self._local = threading.local()  # per request thread: last commit handed over

    def prepare(self) -> None:
        """Run ``on_start`` once per dispatcher, from its thread or the worker job."""
        with self._start_lock:
            if self._started or self.on_start is None:
                return
            self._started = True
        try:
            self.on_start()
        except Exception as exc:  # the leases then expire on their own
            log.warning("outbox start-up step failed: %s", exc)

    def kick(self) -> None:
        """Ask for delivery now (starts the thread lazily, so forked workers get their own).

        A kick right after a commit whose rows were all handed over (same thread) only
        makes sure the thread runs: those rows need no lease query.
        """
        if getattr(self._local, "covered", False):
            self._local.covered = False
            self._ensure_thread()
            return
        self._drain_due = True
        self._wake.set()
        self._ensure_thread()

    def hand_over(self, rows: Sequence[outbox.OutboxMessage], unleased: int = 0) -> None:
        """Rows a committed transaction leased to :attr:`owner`: send them without a lease
        transaction. ``unleased`` rows of that transaction wait for a full drain."""
        for row in rows:
            if row.lease_owner != self.owner:
                raise ValueError(f"row {row.id} is leased to {row.lease_owner}, not {self.owner}")
        self._handed.extend(rows)
        if unleased:
            self._drain_due = True
        self._local.covered = bool(rows) and not unleased
        self._wake.set()
        self._ensure_thread()

    def drain(self) -> int:
        """Deliver until nothing is due; returns rows handled (used by the worker job)."""
        total = 0
        while True:
            n = self.protocol.deliver_due(self.send, owner=self.owner, limit=self.batch)
            total += n
            if n < self.batch:
                return total

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dsp-dispatcher",
                                                daemon=True)
                self._thread.start()

    def _send_handed_over(self) -> bool:
        """Send the handed-over rows in order; False if one failed (it went to retry)."""
        ok = True
        while self._handed:
            row = self._handed.popleft()
            ok = self.protocol.deliver_leased(self.send, row, owner=self.owner) and ok
        return ok

    def _run(self) -> None:
        """Send handed-over rows on every wake; drain on kicks, after a failure and at
        least every ``idle_seconds`` while rows are pending; end when the outbox is empty
        after ``idle_seconds`` without a wake, or when the store keeps failing (the next
        kick starts a new thread, and the worker job covers retries in between). A row
        left in the queue by a failing store keeps its lease until it expires, then the
        normal path takes it."""
        failures = 0
        self.prepare()
        # a new thread drains at once only when asked (first start: leases of dead
        # processes were just freed; a kick); rows handed over are sent without one
        next_sweep = time.monotonic() + self.idle_seconds
        while not self._stop.is_set():
            woken = self._wake.wait(self.idle_seconds)
            self._wake.clear()
            try:
                sent_ok = self._send_handed_over()
                drain_due, self._drain_due = self._drain_due, False
                if sent_ok and not drain_due and time.monotonic() < next_sweep:
                    failures = 0
                    continue
                next_sweep = time.monotonic() + self.idle_seconds
                self.drain()
                if self.after_drain is not None:
                    self.after_drain()
                failures = 0
                # retire only after a quiet interval: a node busy with a conversation
                # would otherwise start a new thread for every message it sends
                if (
                    not woken
                    and not self._handed
                    and outbox.pending_count(self.protocol.store.engine) == 0
                    and self._retire()
                ):
                    return
            except Exception as exc:
                failures += 1
                self._drain_due = True
                log.warning("outbox delivery failed (%d in a row): %s", failures, exc)
                if failures >= MAX_FAILURES and self._retire():
                    return
                time.sleep(min(self.idle_seconds * failures, 5.0))

    def _retire(self) -> bool:
        """End this thread unless a kick arrived meanwhile (checked under the start lock,
        so a kick either sees the thread gone and starts a new one, or is seen here)."""
        with self._start_lock:
            if self._wake.is_set():
                return False
            self._thread = None
            return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
