"""The federated ``Transport`` over the node's signed peer channel, and participant directory.

One stage's requests go out in parallel (a thread per participant, bounded) as
``POST {participant url}/peer/fl/messages`` with a fresh peer token each. Whatever has not
answered a valid message within the stage deadline — connection refused, timeout, HTTP error,
an undecodable body — is absent from the result: the round engine treats it as a dropout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from time import monotonic
from typing import Any

import httpx

from connectors.delivery import PeerDirectory
from connectors.identity.did import verification_key
from connectors.identity.errors import DidError, IdentityError, PeerAuthError
from connectors.identity.peer_client import PeerClient
from federated.errors import FederatedError
from federated.vocabulary import Message, from_wire, to_wire

log = logging.getLogger("autospace.fl")
MESSAGE_PATH = "/peer/fl/messages"


@dataclass(frozen=True)
class Peer:
    """Where and who a participant of a task is."""

    ident: str  # id used in the task file and the protocol headers
    did: str
    url: str
    participant_id: str = ""  # the DSP participant id (agreements name it)


class Directory:
    """Resolves task participant ids (DID or participant id) via the member registries."""

    def __init__(self, members: PeerDirectory, resolver: Any) -> None:
        self._members = members
        self._resolver = resolver

    def peer(self, ident: str) -> Peer:
        """The member named ``ident``; raises FederatedError if it is not a member."""
        try:
            m = self._members.member(ident)
        except Exception as exc:  # UnknownPeerError, registry unavailable
            raise FederatedError(str(exc)) from None
        return Peer(ident, m.did, m.url.rstrip("/"), m.participant_id)

    def identity_key(self, ident: str) -> bytes:
        """Raw Ed25519 key of ``ident`` from its DID document."""
        did = ident if ident.startswith("did:") else self.peer(ident).did
        try:
            doc = self._resolver.resolve(did)
            methods = doc.get("verificationMethod") or []
            kid = methods[0].get("id") if methods and isinstance(methods[0], dict) else None
            return verification_key(doc, did, kid)
        except (DidError, IdentityError, PeerAuthError, AttributeError) as exc:
            raise FederatedError(f"no identity key for {ident}: {exc}") from None


class IdentityKeys(Mapping[str, bytes]):
    """A lazy ``{participant id: Ed25519 key}`` for a known set of ids (resolved once each)."""

    def __init__(self, directory: Directory, idents: tuple[str, ...]) -> None:
        self._directory = directory
        self._idents = tuple(idents)
        self._cache: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def __getitem__(self, ident: str) -> bytes:
        if ident not in self._idents:
            raise KeyError(ident)
        with self._lock:
            if ident not in self._cache:
                try:
                    self._cache[ident] = self._directory.identity_key(ident)
                except FederatedError as exc:
                    log.warning("fl identity key unavailable: %s", exc)
                    self._cache[ident] = None
            key = self._cache[ident]
        if key is None:
            raise KeyError(ident)
        return key

    def __iter__(self) -> Iterator[str]:
        return iter(self._idents)

    def __len__(self) -> int:
        return len(self._idents)


class PeerTransport:
    """``Transport.exchange`` over signed HTTP calls with a per-stage deadline.

    Args:
        client: the node's peer client (signs a token per call).
        peers: participant id -> :class:`Peer`.
        stage_timeout: seconds one stage waits for all replies.
        max_workers: parallel calls.
    """

    def __init__(self, client: PeerClient, peers: Mapping[str, Peer], *,
                 stage_timeout: float = 30.0, max_workers: int = 16) -> None:
        self.client = client
        self.peers = dict(peers)
        self.stage_timeout = stage_timeout
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fl-call")
        self.failures: dict[str, str] = {}  # last reason per participant that dropped

    def _call(self, pid: str, message: Message) -> Message:
        peer = self.peers[pid]
        response = self.client.post(peer.url + MESSAGE_PATH, audience=peer.did,
                                    json=to_wire(message), idempotent=False)
        if response.status_code != 200:
            detail = ""
            try:
                body = response.json()
                detail = body.get("detail") or body.get("title") or ""
            except ValueError:
                pass
            raise FederatedError(f"HTTP {response.status_code} {detail}".strip())
        return from_wire(response.json())

    def exchange(self, requests: Mapping[str, Message]) -> dict[str, Message]:
        """Send every request in parallel; return the replies that arrived in time."""
        deadline = monotonic() + self.stage_timeout
        futures: dict[Future[Message], str] = {}
        for pid, message in requests.items():
            if pid not in self.peers:
                self.failures[pid] = "not a known participant"
                continue
            futures[self._pool.submit(self._call, pid, message)] = pid
        replies: dict[str, Message] = {}
        pending = set(futures)
        while pending:
            left = deadline - monotonic()
            if left <= 0:
                break
            done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
            for f in done:
                pid = futures[f]
                try:
                    replies[pid] = f.result()
                except (httpx.HTTPError, FederatedError, IdentityError, ValueError) as exc:
                    self.failures[pid] = f"{type(exc).__name__}: {exc}"
                    log.info("fl participant %s dropped: %s", pid, self.failures[pid])
        for f in pending:
            self.failures[futures[f]] = f"no reply within {self.stage_timeout:g}s"
            f.cancel()
        return replies

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
