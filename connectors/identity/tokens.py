"""Self-issued peer tokens: the JWT a node signs for every call to another node.

Claims: ``iss`` = ``sub`` = caller DID, ``aud`` = callee DID, ``iat``, ``exp``
(at most :data:`MAX_LIFETIME` after ``iat``), a unique ``jti``, and ``credential``,
the caller's membership credential JWT. Header: ``alg`` EdDSA, ``typ`` JWT and
``kid`` = the caller's verification method id (``<did>#<key id>``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from connectors.identity import jws
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.signer import Signer

MAX_LIFETIME = 300  # seconds; the issue fixes exp <= 5 minutes
DEFAULT_LIFETIME = 120
TOKEN_TYP = "JWT"
_REQUIRED_CLAIMS = (("iss", str), ("sub", str), ("aud", str), ("jti", str), ("iat", int),
                    ("exp", int))


def issue(
    signer: Signer,
    *,
    issuer: str,
    audience: str,
    credential: str,
    now: float,
    lifetime: int = DEFAULT_LIFETIME,
    jti: str | None = None,
) -> str:
    """Sign a peer token for one call from ``issuer`` to ``audience``."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME}] seconds, got {lifetime}")
    iat = int(now)
    payload = {
        "iss": issuer,
        "sub": issuer,
        "aud": audience,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": jti or secrets.token_urlsafe(18),
        "credential": credential,
    }
    header = {"typ": TOKEN_TYP, "kid": f"{issuer}#{signer.key_id}"}
    return jws.encode(header, payload, signer)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """Claims of a peer token whose shape (not signature) has been checked."""

    issuer: str
    audience: str
    issued_at: int
    expires_at: int
    jti: str
    credential: str
    kid: str | None


def read(token: str) -> tuple[jws.Parsed, TokenClaims]:
    """Decode a peer token and check the shape of its claims (no signature, no time)."""
    try:
        parsed = jws.parse(token)
    except ValueError as exc:
        raise PeerAuthError(Reason.MALFORMED_TOKEN, str(exc)) from None
    h, p = parsed.header, parsed.payload
    caller = p.get("iss") if isinstance(p.get("iss"), str) else None
    if h.get("alg") != jws.ALGORITHM:
        raise PeerAuthError(
            Reason.UNSUPPORTED_ALGORITHM, f"alg must be EdDSA, got {h.get('alg')!r}", caller=caller
        )
    if "crit" in h:
        raise PeerAuthError(Reason.MALFORMED_TOKEN, "crit header not supported", caller=caller)
    for key, kind in _REQUIRED_CLAIMS:
        value = p.get(key)
        if type(value) is not kind or value == "":  # exact types: a bool is not an int
            raise PeerAuthError(
                Reason.MALFORMED_TOKEN, f"claim {key!r} missing or not a {kind.__name__}",
                caller=caller,
            )
    if p["iss"] != p["sub"]:
        raise PeerAuthError(Reason.MALFORMED_TOKEN, "iss and sub differ", caller=caller)
    if len(p["jti"]) > 128:
        raise PeerAuthError(Reason.MALFORMED_TOKEN, "jti longer than 128 characters", caller=caller)
    credential = p.get("credential")
    if not isinstance(credential, str) or not credential:
        raise PeerAuthError(
            Reason.MISSING_CREDENTIAL, "token carries no membership credential", caller=caller
        )
    kid = h.get("kid") if isinstance(h.get("kid"), str) else None
    claims = TokenClaims(p["iss"], p["aud"], p["iat"], p["exp"], p["jti"], credential, kid)
    return parsed, claims


def check_time(claims: TokenClaims, *, now: float, skew: int, max_lifetime: int) -> None:
    """Raise unless ``now`` is inside ``[iat, exp)`` (with ``skew``) and the lifetime is short."""
    if claims.expires_at - claims.issued_at > max_lifetime:
        raise PeerAuthError(
            Reason.LIFETIME_TOO_LONG,
            f"exp - iat = {claims.expires_at - claims.issued_at}s exceeds {max_lifetime}s",
            caller=claims.issuer,
        )
    if now - skew >= claims.expires_at:
        raise PeerAuthError(
            Reason.EXPIRED, f"token expired at {claims.expires_at}, now {int(now)}",
            caller=claims.issuer,
        )
    if now + skew < claims.issued_at:
        raise PeerAuthError(
            Reason.NOT_YET_VALID, f"token issued at {claims.issued_at}, now {int(now)}",
            caller=claims.issuer,
        )
