"""Ed25519 signature checks through libsodium (PyNaCl).

Why not cryptography's ``Ed25519PublicKey.verify``: every peer call and every data-plane
request checks one Ed25519 signature, the largest single cost of authenticating a request.
On the reference machine OpenSSL's check takes about 97 µs and libsodium's about 48 µs
(bench/peer_auth.py prints both). Keys stay cryptography objects everywhere else (key store,
JWKs, DID documents); only the check goes to libsodium, which also refuses non-canonical
signatures and small-order keys (RFC 8032 §5.1.7 strict checks).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

SIGNATURE_BYTES = 64


def verify(public_key: Ed25519PublicKey | bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    raw = public_key if isinstance(public_key, bytes) else public_key.public_bytes_raw()
    if len(signature) != SIGNATURE_BYTES or len(raw) != 32:
        return False
    try:
        crypto_sign_open(signature + message, raw)
    except CryptoError:
        return False
    return True
