"""HTTP client for calls to other nodes: every attempt carries a fresh peer token.

Pooled connections (one ``httpx.Client``), timeouts, and retries with exponential
backoff for idempotent methods on connection errors and 502/503/504 (honouring
``Retry-After``). Each retry signs a new token, since the callee refuses a ``jti``
it has already seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from connectors.identity import tokens
from connectors.identity.errors import IdentityError
from connectors.identity.signer import Signer

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUS = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 30.0


class PeerClient:
    """Signs and sends calls to peer nodes.

    Args:
        signer: this node's key.
        own_did: this node's DID (token issuer).
        credential: returns the node's membership credential JWT (read when needed, so
            an imported credential is picked up without restart).
        clock: Unix seconds, for token times.
        timeout: seconds per attempt (connect, read, write, pool).
        retries: extra attempts for idempotent calls.
        backoff: first backoff in seconds, doubled per attempt, with jitter.
        token_lifetime: seconds a token is valid (<= 300).
        transport: optional httpx transport (tests, proxies).
    """

    def __init__(
        self,
        signer: Signer,
        own_did: str,
        credential: Callable[[], str | None],
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
        token_lifetime: int = 60,
        max_connections: int = 50,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._signer = signer
        self.own_did = own_did
        self._credential = credential
        self._clock = clock
        self._retries = retries
        self._backoff = backoff
        self._lifetime = token_lifetime
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
            transport=transport,
            follow_redirects=False,
        )

    def token_for(self, audience: str) -> str:
        """A fresh peer token for one call to ``audience``."""
        credential = self._credential()
        if not credential:
            raise IdentityError(
                "this node has no membership credential; run `autospace credential import`"
            )
        return tokens.issue(
            self._signer,
            issuer=self.own_did,
            audience=audience,
            credential=credential,
            now=self._clock(),
            lifetime=self._lifetime,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        audience: str,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a signed request to the peer whose DID is ``audience``.

        Raises ``httpx.HTTPError`` when the last attempt fails to connect; HTTP error
        statuses are returned, not raised.
        """
        method = method.upper()
        retry = method in IDEMPOTENT if idempotent is None else idempotent
        attempts = 1 + (self._retries if retry else 0)
        for attempt in range(attempts):
            hdrs = dict(headers or {})
            hdrs["Authorization"] = f"Bearer {self.token_for(audience)}"
            last = attempt == attempts - 1
            try:
                response = self._http.request(method, url, json=json, content=content, headers=hdrs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout,
                    httpx.RemoteProtocolError):
                if last:
                    raise
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and not last:
                self._sleep(self._delay(attempt, response.headers.get("Retry-After")))
                response.close()
                continue
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def get(self, url: str, *, audience: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, audience=audience, **kwargs)

    def post(self, url: str, *, audience: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, audience=audience, **kwargs)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
            except ValueError:
                pass
        base = self._backoff * (2**attempt)
        return base + random.uniform(0, base / 2)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
