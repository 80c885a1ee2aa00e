"""DID resolution with an expiring cache.

did:key resolves locally; did:web over HTTP(S) through an injected ``httpx.Client``
(the only network access identity code does, to peers the data space names).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from connectors.identity.did import DEFAULT_HTTP_HOSTS, did_key_document, did_web_document_url
from connectors.identity.errors import DidError

MAX_DID_DOCUMENT_BYTES = 64 * 1024


class DidResolver(Protocol):
    """Returns the DID document of a DID or raises ``DidError`` saying why not."""

    def resolve(self, did: str) -> dict[str, Any]: ...


class StaticDidResolver:
    """Resolves from a mapping (tests, pinned peers; read live, not copied) and did:key locally."""

    def __init__(self, documents: Mapping[str, dict[str, Any]]) -> None:
        self._documents = documents

    def resolve(self, did: str) -> dict[str, Any]:
        if did.startswith("did:key:"):
            return did_key_document(did)
        try:
            return self._documents[did]
        except KeyError:
            raise DidError(f"unknown DID {did!r}") from None


class HttpDidResolver:
    """Resolve did:web over HTTP(S), caching documents for ``ttl`` seconds.

    Args:
        client: pooled HTTP client (timeouts set by the caller).
        ttl: how long a fetched document is trusted before it is fetched again.
        clock: Unix seconds.
        allow_http_hosts: hosts whose did:web resolves over plain HTTP (loopback by
            default); every other host must be HTTPS as the method requires.
        max_entries: cache bound; the oldest entries are dropped first.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        ttl: float = 300.0,
        clock: Callable[[], float],
        allow_http_hosts: tuple[str, ...] = DEFAULT_HTTP_HOSTS,
        max_entries: int = 4096,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._allow_http = tuple(allow_http_hosts)
        self._max = max_entries
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def resolve(self, did: str) -> dict[str, Any]:
        if did.startswith("did:key:"):
            return did_key_document(did)
        now = self._clock()
        hit = self._cache.get(did)
        if hit is not None and hit[0] > now:
            return hit[1]
        document = self._fetch(did)
        with self._lock:
            if len(self._cache) >= self._max:
                for old in sorted(self._cache, key=lambda k: self._cache[k][0])[: self._max // 4]:
                    del self._cache[old]
            self._cache[did] = (now + self._ttl, document)
        return document

    def forget(self, did: str) -> None:
        """Drop a cached document (e.g. after a signature failed with a rotated key)."""
        with self._lock:
            self._cache.pop(did, None)

    def _fetch(self, did: str) -> dict[str, Any]:
        if not did.startswith("did:web:"):
            raise DidError(f"unsupported DID method: {did.split(':')[:2]}")
        url = did_web_document_url(did, allow_http_hosts=self._allow_http)
        try:
            response = self._client.get(url, headers={"Accept": "application/did+json"})
        except httpx.HTTPError as exc:
            raise DidError(f"fetching {url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise DidError(f"fetching {url}: HTTP {response.status_code}")
        if len(response.content) > MAX_DID_DOCUMENT_BYTES:
            raise DidError(f"DID document at {url} is larger than {MAX_DID_DOCUMENT_BYTES} bytes")
        try:
            document = response.json()
        except ValueError:
            raise DidError(f"DID document at {url} is not JSON") from None
        if not isinstance(document, dict) or document.get("id") != did:
            raise DidError(f"document at {url} is not the DID document of {did}")
        return document
