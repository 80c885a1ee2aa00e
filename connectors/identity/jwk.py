"""Ed25519 keys as JSON Web Keys (RFC 8037) and their thumbprints (RFC 7638)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pybase64


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 section 2); ``ValueError`` on anything else.

    Strict: any character outside the base64url alphabet is refused (the standard
    library's decoder silently drops them). pybase64 because every peer call decodes
    about 1.3 kB of token, and its SIMD decoder takes a quarter of the standard
    library's time (docs/benchmarks.md, peer authentication, session 5).
    """
    if not isinstance(text, str) or "=" in text or "+" in text or "/" in text:
        raise ValueError("not base64url")
    try:
        return pybase64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


ED25519_PUBLIC_KEY_BYTES = 32  # RFC 8032 section 5.1.5


def okp_jwk(public_key: bytes, *, kid: str | None = None) -> dict[str, Any]:
    """Return the OKP JWK of a raw Ed25519 public key (RFC 8037 section 2)."""
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    jwk: dict[str, Any] = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_key)}
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def public_key_from_jwk(jwk: Any) -> bytes:
    """Return the raw Ed25519 public key of an OKP JWK; ``ValueError`` if it is not one."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("JWK is not an Ed25519 OKP key")
    if "d" in jwk:
        raise ValueError("JWK carries private key material")
    key = b64url_decode(jwk.get("x", ""))
    if len(key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("JWK x is not a 32-byte Ed25519 key")
    return key


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) over the required OKP members."""
    required = {k: jwk[k] for k in ("crv", "kty", "x")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url_encode(hashlib.sha256(canonical).digest())
