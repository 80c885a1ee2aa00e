"""EDR tokens: short-lived access tokens and single-use refresh tokens (JWS, EdDSA).

Both are compact JWS signed with the node's Ed25519 identity key (through the key store's
``sign``; the private key never leaves it) and verified with its public key. The claims bind
a token to one agreement, one transfer process, one asset and one consumer, and carry
``exp``. ``typ`` in the claims separates access from refresh tokens, so one can never be used
as the other. Refresh tokens also carry ``gen``: the store of generations
(:class:`RefreshGenerations`) accepts each generation once, which is how a used refresh
token stops working (rotation).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.identity import ed25519

ACCESS = "edr-access"
REFRESH = "edr-refresh"
AUDIENCE = "autospace:dataplane"  # our data plane only; other audiences are refused
MAX_TOKEN_BYTES = 4096  # far above a real token; bounds the work done on garbage
_HEADER = {"alg": "EdDSA", "typ": "JWT"}


class Signer(Protocol):
    """What the key store offers: signatures and the public key (node.keystore.KeyStore)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key_bytes(self) -> bytes: ...


class TokenError(Exception):
    """A token is malformed, forged, expired, of the wrong kind or for another transfer."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token lets its holder do: read one asset under one agreement and transfer."""

    agreement_id: str
    transfer_id: str
    asset_id: str
    consumer_id: str


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that passed every check."""

    grant: Grant
    kind: str
    expires_at: int
    token_id: str
    generation: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token is not base64url") from None


class TokenCodec:
    """Issue and verify EDR tokens with one node key.

    Args:
        signer: the key store (``sign``, ``public_key_bytes``, ``key_id``).
        clock: Unix seconds (injected so expiry is testable).
        issuer: the node's participant id, checked back on verification.
        access_ttl: lifetime of an access token in seconds (short: the consumer refreshes).
        refresh_ttl: lifetime of a refresh token in seconds.
    """

    def __init__(
        self,
        signer: Signer,
        *,
        clock: Callable[[], float],
        issuer: str,
        access_ttl: int = 300,
        refresh_ttl: int = 86400,
    ) -> None:
        self._signer = signer
        self._public_raw = bytes(signer.public_key_bytes())
        self._clock = clock
        self.issuer = issuer
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._header = _b64(
            json.dumps({**_HEADER, "kid": signer.key_id}, separators=(",", ":")).encode()
        )

    def _issue(self, grant: Grant, kind: str, ttl: int, extra: dict[str, Any]) -> str:
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": grant.consumer_id,
            "typ": kind,
            "agr": grant.agreement_id,
            "tpid": grant.transfer_id,
            "asset": grant.asset_id,
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(12),
            **extra,
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode("ascii")
        return f"{self._header}.{payload}.{_b64(self._signer.sign(signing_input))}"

    def access_token(self, grant: Grant) -> str:
        """A bearer token for the pull endpoint, valid ``access_ttl`` seconds."""
        return self._issue(grant, ACCESS, self.access_ttl, {})

    def refresh_token(self, grant: Grant, generation: int) -> str:
        """A refresh token accepted once, while the stored generation is ``generation``."""
        return self._issue(grant, REFRESH, self.refresh_ttl, {"gen": generation})

    def verify(self, token: str, *, kind: str) -> VerifiedToken:
        """Check signature, issuer, audience, kind and expiry; return what it grants.

        Raises:
            TokenError: with a reason safe to show the caller.
        """
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenError("missing or oversized token")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("token is not a compact JWS")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise TokenError("token header or claims are not JSON") from None
        if not isinstance(header, dict) or header.get("alg") != "EdDSA":
            raise TokenError("token algorithm must be EdDSA")
        signature = _unb64(parts[2])
        if not ed25519.verify(self._public_raw, signature, f"{parts[0]}.{parts[1]}".encode()):
            raise TokenError("token signature is invalid")
        if not isinstance(claims, dict):
            raise TokenError("token claims are not an object")
        if claims.get("iss") != self.issuer or claims.get("aud") != AUDIENCE:
            raise TokenError("token was not issued for this data plane")
        if claims.get("typ") != kind:
            raise TokenError(f"expected a {kind} token, got {claims.get('typ')!r}")
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise TokenError("token has no expiry")
        if exp <= self._clock():
            raise TokenError("token has expired")
        fields = [claims.get(k) for k in ("agr", "tpid", "asset", "sub", "jti")]
        if not all(isinstance(f, str) and f for f in fields):
            raise TokenError("token does not name agreement, transfer, asset and consumer")
        gen = claims.get("gen", 0)
        if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0:
            raise TokenError("refresh token generation is invalid")
        agr, tpid, asset, sub, jti = fields
        return VerifiedToken(Grant(agr, tpid, asset, sub), kind, exp, jti, gen)


def bearer(value: str | None) -> str:
    """The token of an ``Authorization`` header (``Bearer x`` or the bare token, as EDC sends)."""
    if not value:
        return ""
    value = value.strip()
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return value
