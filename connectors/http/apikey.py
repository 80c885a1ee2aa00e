"""Management API authentication by ``X-Api-Key`` (as EDC), against stored hashes.

Keys are 32 random bytes; only their SHA-256 is stored (a slow KDF adds nothing for
secrets of that entropy). Presented keys are hashed and compared with every stored
hash in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar, cast

from flask import Blueprint, current_app, request

from connectors.http.logs import security_event
from connectors.http.problem import ProblemError

API_KEY_HEADER = "X-Api-Key"
API_KEYS_EXTENSION = "autospace.api_keys"
KEY_PREFIX = "ask_"

F = TypeVar("F", bound=Callable[..., Any])


class ApiKeyHashes(Protocol):
    """Source of the currently valid key hashes (hex SHA-256)."""

    def hashes(self) -> Iterable[str]: ...


def new_api_key() -> str:
    """A fresh management API key (show once, store only :func:`hash_api_key`)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(presented: str, hashes: Iterable[str]) -> bool:
    """Constant-time comparison of ``presented`` against every stored hash."""
    digest = hash_api_key(presented).encode()
    found = False
    for stored in hashes:
        found |= hmac.compare_digest(digest, stored.encode())
    return found


def check_api_key() -> None:
    """Raise 401 unless the request carries a valid management API key."""
    presented = request.headers.get(API_KEY_HEADER)
    source: ApiKeyHashes | None = current_app.extensions.get(API_KEYS_EXTENSION)
    if presented and source is not None and key_matches(presented, source.hashes()):
        return
    security_event(
        "api_key_rejected",
        reason="missing_api_key" if not presented else "invalid_api_key",
        method=request.method,
        path=request.path,
        remote_addr=request.remote_addr,
    )
    raise ProblemError(
        401, "Unauthorized", f"a valid {API_KEY_HEADER} header is required",
        headers={"WWW-Authenticate": "ApiKey"},
    )


def require_api_key(view: F) -> F:
    """Decorator: the view runs only with a valid ``X-Api-Key``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_api_key()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def protect_blueprint(bp: Blueprint) -> Blueprint:
    """Require a valid API key for every view of ``bp``."""
    bp.before_request(check_api_key)
    return bp
