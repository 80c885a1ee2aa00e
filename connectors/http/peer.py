"""Peer authentication for Flask views: ``require_peer`` puts :class:`PeerClaims` in ``g``.

The verifier is installed by the node with :func:`install_verifier`. Every refused
call answers a problem document with the reason code and writes one security log
line; the ``peer_rejected`` signal lets the node count refusals in its metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from blinker import Namespace
from flask import Blueprint, Flask, current_app, g, request

from connectors.http.logs import security_event
from connectors.http.problem import ProblemError
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.trust import PeerClaims, PeerVerifier

VERIFIER_EXTENSION = "autospace.peer_verifier"
signals = Namespace()
#: Sent with ``reason`` (a :class:`Reason`) whenever a peer call is refused.
peer_rejected = signals.signal("peer-rejected")

F = TypeVar("F", bound=Callable[..., Any])


def install_verifier(app: Flask, verifier: PeerVerifier) -> None:
    """Make ``verifier`` the one ``require_peer`` uses in ``app``."""
    app.extensions[VERIFIER_EXTENSION] = verifier


def bearer_token() -> str | None:
    """The bearer token of the current request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_peer() -> PeerClaims:
    """Verify the current request's caller; store and return its claims, or raise a 401/403/503.

    The problem document carries ``reason`` so a peer's operator can tell what to fix.
    """
    verifier: PeerVerifier | None = current_app.extensions.get(VERIFIER_EXTENSION)
    try:
        if verifier is None:
            raise PeerAuthError(Reason.AUTHORITY_UNRESOLVABLE, "this node has no trust anchor "
                                "configured; it accepts no peer calls")
        claims = verifier.verify(bearer_token())
    except PeerAuthError as exc:
        security_event(
            "peer_auth_rejected",
            reason=exc.reason.value,
            status=exc.status,
            detail=exc.detail,
            caller=exc.caller,
            method=request.method,
            path=request.path,
            remote_addr=request.remote_addr,
        )
        peer_rejected.send(current_app._get_current_object(), reason=exc.reason)  # type: ignore[attr-defined]
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", reason="{exc.reason}"'
        elif exc.status == 503:
            headers["Retry-After"] = "5"
        title = {401: "Unauthorized", 403: "Forbidden"}.get(exc.status, "Service Unavailable")
        raise ProblemError(exc.status, title, exc.detail, headers=headers,
                           reason=exc.reason.value) from None
    g.peer = claims
    return claims


def require_peer(view: F) -> F:
    """Decorator: the view runs only for a verified peer; claims are in ``flask.g.peer``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate_peer()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def protect_blueprint(bp: Blueprint) -> Blueprint:
    """Require a verified peer for every view of ``bp``."""
    def _guard() -> None:
        authenticate_peer()

    bp.before_request(_guard)
    return bp


def current_peer() -> PeerClaims:
    """The verified caller of the current request (only inside a protected view)."""
    claims = g.get("peer")
    if not isinstance(claims, PeerClaims):
        raise RuntimeError("current_peer() called outside a peer-authenticated view")
    return claims
