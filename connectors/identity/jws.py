"""Compact JWS with EdDSA (RFC 7515, RFC 8037), signed through a ``Signer``.

The key store never hands out private keys, so tokens are assembled here and only
the signing input goes to ``Signer.sign``. Verification is a pure function of the
token and a public key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import ed25519
from connectors.identity.jwk import b64url_decode, b64url_encode
from connectors.identity.signer import Signer

ALGORITHM = "EdDSA"  # RFC 8037 section 3.1
MAX_TOKEN_CHARS = 16 * 1024  # a peer token with its credential is ~1.5 kB


def encode(header: dict[str, Any], payload: dict[str, Any], signer: Signer) -> str:
    """Return ``header.payload.signature`` signed by ``signer`` (alg forced to EdDSA)."""
    head = {**header, "alg": ALGORITHM}
    signing_input = (
        b64url_encode(json.dumps(head, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    )
    signature = signer.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A compact JWS split and decoded, signature not yet checked."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse(token: str) -> Parsed:
    """Split and decode a compact JWS; ``ValueError`` naming what is wrong.

    orjson for the JSON: it runs on every peer call, and it is also stricter than the
    standard library (no NaN or infinities, UTF-8 only).
    """
    if not isinstance(token, str) or not token:
        raise ValueError("token is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"token longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"expected 3 dot-separated parts, found {len(parts)}")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        payload = orjson.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as exc:  # orjson's and binascii's errors, bad UTF-8 included
        raise ValueError(f"undecodable part: {exc}") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("header and payload must be JSON objects")
    return Parsed(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def verify_signature(parsed: Parsed, public_key: Ed25519PublicKey) -> bool:
    """True when ``parsed`` carries a valid EdDSA signature by ``public_key``."""
    if parsed.header.get("alg") != ALGORITHM:
        return False
    return ed25519.verify(public_key, parsed.signature, parsed.signing_input)
