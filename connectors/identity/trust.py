"""The peer verifier: turns a bearer token into verified :class:`PeerClaims` or refuses it.

Checks, cheapest and least network-dependent first, so that an unauthenticated
caller cannot make the node fetch arbitrary URLs:

1. token shape, algorithm, audience, lifetime and time window (with clock skew);
2. membership credential: issued by a trust anchor, signature, validity, subject = caller;
3. standing in the anchor's member registry (revocation), re-fetched at an interval;
4. caller signature with the key from the caller's DID document (resolved, cached);
5. ``jti`` not seen before (stored until the token expires); a token issued before the
   store's horizon (its record was lost in a host crash) cannot be decided and is refused.

Every refusal is a :class:`~connectors.identity.errors.PeerAuthError` with a reason.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import credentials, jws, registry, tokens
from connectors.identity.credentials import MembershipCredential, Role
from connectors.identity.did import (
    DEFAULT_HTTP_HOSTS,
    did_web_base_url,
    service_endpoint,
    verification_key,
)
from connectors.identity.errors import DidError, PeerAuthError, Reason
from connectors.identity.resolver import DidResolver

log = logging.getLogger(__name__)

DEFAULT_SKEW = 30  # seconds of clock difference tolerated between nodes
CREDENTIAL_CACHE_SIZE = 1024
#: fraction of the registry refresh interval after which calls start a background refresh
REFRESH_AHEAD = 0.5


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """An authority whose credentials this node accepts.

    ``public_key`` pins the key (raw 32 bytes); without it the key comes from the
    authority's DID document. ``registry_url`` overrides where the registry is read.
    """

    did: str
    public_key: bytes | None = None
    registry_url: str | None = None


@dataclass(frozen=True, slots=True)
class PeerClaims:
    """What a handler may rely on about a verified caller."""

    caller_did: str
    participant_id: str
    name: str
    role: Role
    region: str
    credential_id: str
    credential_issuer: str
    credential_valid_until: int
    token_id: str
    token_expires_at: int
    audience: str


class ReplayStore(Protocol):
    """Remembers token ids until they expire."""

    @property
    def horizon(self) -> float:
        """Unix time: whether tokens issued up to it (plus skew) were used is not known."""
        ...

    def remember(self, issuer: str, jti: str, expires_at: int) -> bool:
        """Store ``(issuer, jti)``; return ``False`` if it was already stored (a replay)."""
        ...


class RegistryStore(Protocol):
    """Optional persistence of the last verified registry document per authority."""

    def load(self, authority: str) -> str | None: ...

    def save(self, authority: str, document: str, fetched_at: int) -> None: ...


class AnchorKeys:
    """Public keys of the trust anchors: pinned, or from their (cached) DID documents."""

    def __init__(self, anchors: Iterable[TrustAnchor], resolver: DidResolver) -> None:
        self.anchors = {a.did: a for a in anchors}
        self._resolver = resolver
        self._pinned = {
            a.did: Ed25519PublicKey.from_public_bytes(a.public_key)
            for a in self.anchors.values()
            if a.public_key is not None
        }
        self._resolved: dict[tuple[str, str | None], tuple[bytes, Ed25519PublicKey]] = {}

    def key(self, did: str, kid: str | None) -> Ed25519PublicKey:
        """Key of anchor ``did`` for ``kid``; 503-family error when it cannot be resolved."""
        if did in self._pinned:
            return self._pinned[did]
        try:
            document = self._resolver.resolve(did)
        except DidError as exc:
            raise PeerAuthError(Reason.AUTHORITY_UNRESOLVABLE, f"{did}: {exc}") from None
        try:
            raw = verification_key(document, did, kid)
        except DidError as exc:  # the credential names a key the authority does not have
            raise PeerAuthError(Reason.CREDENTIAL_BAD_SIGNATURE, f"{did}: {exc}") from None
        cached = self._resolved.get((did, kid))
        if cached is not None and cached[0] == raw:
            return cached[1]
        obj = Ed25519PublicKey.from_public_bytes(raw)
        self._resolved[(did, kid)] = (raw, obj)
        return obj


class HttpRegistrySource:
    """Fetch an anchor's registry document: configured URL, DID service, or ``<base>/registry``."""

    def __init__(
        self,
        client: httpx.Client,
        resolver: DidResolver,
        *,
        allow_http_hosts: tuple[str, ...] = DEFAULT_HTTP_HOSTS,
    ) -> None:
        self._client = client
        self._resolver = resolver
        self._allow_http = allow_http_hosts

    def url(self, anchor: TrustAnchor) -> str:
        if anchor.registry_url:
            return anchor.registry_url
        try:
            document = self._resolver.resolve(anchor.did)
            found = service_endpoint(document, registry.REGISTRY_SERVICE_TYPE)
        except DidError as exc:
            raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"{anchor.did}: {exc}") from None
        if found:
            return found
        if anchor.did.startswith("did:web:"):
            return did_web_base_url(anchor.did, allow_http_hosts=self._allow_http) + "/registry"
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"no registry URL known for {anchor.did}")

    def fetch(self, anchor: TrustAnchor) -> str:
        url = self.url(anchor)
        try:
            response = self._client.get(url, headers={"Accept": "application/jwt"})
        except httpx.HTTPError as exc:
            raise PeerAuthError(
                Reason.REGISTRY_UNAVAILABLE, f"{url}: {type(exc).__name__}"
            ) from None
        if response.status_code != 200:
            raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"{url}: HTTP {response.status_code}")
        return response.text.strip()


class RegistrySource(Protocol):
    def fetch(self, anchor: TrustAnchor) -> str: ...


class RegistryCache:
    """The latest verified registry per anchor, refreshed every ``refresh_interval`` seconds.

    A call that finds the document older than :data:`REFRESH_AHEAD` of the interval starts
    a refresh in a background thread and goes on with the current document, so a node
    under steady traffic never waits for the authority; only a document older than the
    whole interval is refreshed in the caller's thread (revocation is still seen within
    the interval). A failed refresh keeps the previous document until its own ``exp``;
    after that, or if none was ever fetched, membership cannot be decided and calls are
    refused.
    """

    def __init__(
        self,
        keys: AnchorKeys,
        source: RegistrySource,
        *,
        clock: Callable[[], float],
        refresh_interval: float,
        store: RegistryStore | None = None,
    ) -> None:
        self._keys = keys
        self._source = source
        self._clock = clock
        self._interval = refresh_interval
        self._store = store
        self._current: dict[str, tuple[float, registry.Registry]] = {}
        self._tried_behind: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, authority: str) -> registry.Registry:
        now = self._clock()
        entry = self._current.get(authority)
        if entry is not None and now - entry[0] < self._interval:
            if (
                now - entry[0] >= self._interval * REFRESH_AHEAD
                and now - self._tried_behind.get(authority, -1e18) >= self._interval / 10
                and self._lock.acquire(blocking=False)
            ):
                self._tried_behind[authority] = now  # an outage: not a thread per call
                self._refresh_behind(authority)
            return entry[1]
        if entry is not None and not self._lock.acquire(blocking=False):
            return self._usable(entry, now, authority)  # another thread is refreshing
        if entry is None:
            self._lock.acquire()
        try:
            return self._refresh(authority, now)
        finally:
            self._lock.release()

    def _refresh_behind(self, authority: str) -> None:
        """Refresh in a daemon thread; the caller holds :attr:`_lock`, the thread frees it."""

        def run() -> None:
            try:
                self._refresh(authority, self._clock(), force=True)
            except Exception as exc:  # the next call past the interval tries again
                log.warning("background registry refresh failed for %s: %s", authority, exc)
            finally:
                self._lock.release()

        try:
            threading.Thread(target=run, name="registry-refresh", daemon=True).start()
        except BaseException:
            self._lock.release()
            raise

    def refresh(self, authority: str) -> registry.Registry:
        """Fetch now (used by the worker's refresh job)."""
        with self._lock:
            return self._refresh(authority, self._clock(), force=True)

    def _refresh(self, authority: str, now: float, force: bool = False) -> registry.Registry:
        entry = self._current.get(authority)
        if entry is not None and not force and now - entry[0] < self._interval:
            return entry[1]
        anchor = self._keys.anchors[authority]
        try:
            document = self._source.fetch(anchor)
            reg = self._verify(authority, document, now)
        except PeerAuthError as exc:
            if entry is None and self._store is not None:
                entry = self._from_store(authority, now)
            if entry is None:
                raise
            log.warning("registry refresh failed for %s: %s", authority, exc.detail)
            return self._usable(entry, now, authority)
        self._current[authority] = (now, reg)
        if self._store is not None:
            self._store.save(authority, document, int(now))
        return reg

    def _verify(self, authority: str, document: str, now: float) -> registry.Registry:
        try:
            kid = jws.parse(document).header.get("kid")
        except ValueError as exc:
            raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"registry: {exc}") from None
        key = self._keys.key(authority, kid)
        return registry.verify(document, issuer=authority, key=key, now=now)

    def _from_store(self, authority: str, now: float) -> tuple[float, registry.Registry] | None:
        assert self._store is not None
        document = self._store.load(authority)
        if document is None:
            return None
        try:
            return (now, self._verify(authority, document, now))
        except PeerAuthError:
            return None

    def _usable(
        self, entry: tuple[float, registry.Registry], now: float, authority: str
    ) -> registry.Registry:
        if now >= entry[1].expires_at:
            raise PeerAuthError(
                Reason.REGISTRY_UNAVAILABLE,
                f"registry of {authority} is stale and cannot be fetched",
            )
        return entry[1]


class PeerVerifier:
    """Verify peer tokens addressed to ``own_did``.

    Args:
        own_did: this node's DID; tokens for any other audience are refused.
        keys: trust anchors and their keys.
        registries: member registries of the anchors (revocation).
        resolver: resolves callers' DID documents (cached).
        replay: the ``jti`` store.
        clock: Unix seconds.
        skew: tolerated clock difference in seconds.
        max_lifetime: longest accepted ``exp - iat``.
    """

    def __init__(
        self,
        *,
        own_did: str,
        keys: AnchorKeys,
        registries: RegistryCache,
        resolver: DidResolver,
        replay: ReplayStore,
        clock: Callable[[], float],
        skew: int = DEFAULT_SKEW,
        max_lifetime: int = tokens.MAX_LIFETIME,
    ) -> None:
        self.own_did = own_did
        self._keys = keys
        self._registries = registries
        self._resolver = resolver
        self._replay = replay
        self._clock = clock
        self._skew = skew
        self._max_lifetime = min(max_lifetime, tokens.MAX_LIFETIME)
        self._trusted = frozenset(keys.anchors)
        self._callers: dict[tuple[str, str | None], tuple[dict, Ed25519PublicKey]] = {}
        self._credentials: OrderedDict[str, MembershipCredential] = OrderedDict()
        self._cred_lock = threading.Lock()

    def verify(self, token: str | None) -> PeerClaims:
        """Return the verified claims of ``token`` or raise ``PeerAuthError``."""
        if not token:
            raise PeerAuthError(Reason.MISSING_TOKEN, "no bearer token in Authorization header")
        now = self._clock()
        parsed, claims = tokens.read(token)
        caller = claims.issuer
        if claims.audience != self.own_did:
            raise PeerAuthError(
                Reason.WRONG_AUDIENCE,
                f"token is for {claims.audience}, this node is {self.own_did}",
                caller=caller,
            )
        tokens.check_time(claims, now=now, skew=self._skew, max_lifetime=self._max_lifetime)
        cred = self._credential(claims.credential, now, caller)
        if cred.subject != caller:
            raise PeerAuthError(
                Reason.SUBJECT_MISMATCH, f"credential is for {cred.subject}, caller is {caller}",
                caller=caller,
            )
        standing = self._registries.get(cred.issuer).standing(caller, cred.id)
        if standing is not None:
            raise PeerAuthError(standing, f"{caller} is not a member in good standing of "
                                f"{cred.issuer} ({standing.value})", caller=caller)
        if not jws.verify_signature(parsed, self._caller_key(caller, claims.kid)):
            raise PeerAuthError(Reason.BAD_SIGNATURE, "token signature does not verify with the "
                                "caller's DID document key", caller=caller)
        if claims.issued_at <= self._replay.horizon + self._skew:
            raise PeerAuthError(Reason.REPLAY_UNDECIDABLE, "token issued before this node lost "
                                "its record of used tokens (host restart); sign a new one",
                                caller=caller)
        if not self._replay.remember(caller, claims.jti, claims.expires_at + self._skew):
            raise PeerAuthError(Reason.REPLAYED, f"jti {claims.jti!r} was already used",
                                caller=caller)
        return PeerClaims(
            caller_did=caller,
            participant_id=cred.participant_id,
            name=cred.name,
            role=cred.role,
            region=cred.region,
            credential_id=cred.id,
            credential_issuer=cred.issuer,
            credential_valid_until=cred.valid_until,
            token_id=claims.jti,
            token_expires_at=claims.expires_at,
            audience=claims.audience,
        )

    def _credential(self, token: str, now: float, caller: str) -> MembershipCredential:
        """Verify the credential; a signature verified once is cached by the exact token text."""
        cached = self._credentials.get(token)
        try:
            if cached is not None:
                credentials.check_validity(cached, now=now, skew=self._skew)
                return cached
            cred = credentials.verify(
                token, issuer_key=self._keys.key, trusted_issuers=self._trusted, now=now,
                skew=self._skew,
            )
        except PeerAuthError as exc:
            exc.caller = caller
            raise
        with self._cred_lock:
            self._credentials[token] = cred
            if len(self._credentials) > CREDENTIAL_CACHE_SIZE:
                self._credentials.popitem(last=False)
        return cred

    def _caller_key(self, did: str, kid: str | None) -> Ed25519PublicKey:
        try:
            document = self._resolver.resolve(did)
        except DidError as exc:
            raise PeerAuthError(Reason.CALLER_UNRESOLVABLE, str(exc), caller=did) from None
        cached = self._callers.get((did, kid))
        if cached is not None and cached[0] is document:
            return cached[1]
        try:
            raw = verification_key(document, did, kid)
        except DidError as exc:
            raise PeerAuthError(Reason.UNKNOWN_KEY, str(exc), caller=did) from None
        key = Ed25519PublicKey.from_public_bytes(raw)
        self._callers[(did, kid)] = (document, key)
        return key
