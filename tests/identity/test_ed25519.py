"""The libsodium-backed Ed25519 check agrees with cryptography's and refuses what it must."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.identity import ed25519

# Order of the Ed25519 base point (RFC 8032 §5.1).
L = 2**252 + 27742317777372353535851937790883648493


@pytest.fixture
def key():
    return Ed25519PrivateKey.generate()


def test_accepts_signatures_made_by_cryptography(key):
    for n in range(20):
        message = bytes([n]) * (n * 37)
        sig = key.sign(message)
        assert ed25519.verify(key.public_key(), sig, message)
        assert ed25519.verify(key.public_key().public_bytes_raw(), sig, message)


def test_refuses_tampering_and_wrong_keys(key):
    message = b"header.payload"
    sig = key.sign(message)
    other = Ed25519PrivateKey.generate().public_key()
    assert not ed25519.verify(key.public_key(), sig, message + b"x")
    assert not ed25519.verify(key.public_key(), bytes([sig[0] ^ 1]) + sig[1:], message)
    assert not ed25519.verify(other, sig, message)
    assert not ed25519.verify(key.public_key(), sig[:-1], message)
    assert not ed25519.verify(key.public_key(), sig + b"\0", message)
    assert not ed25519.verify(b"\0" * 31, sig, message)
    assert not ed25519.verify(b"", sig, message)


def test_refuses_a_malleated_signature(key):
    """S + L verifies under lax checks; RFC 8032 requires S < L, so it must be refused."""
    message = b"pay 10"
    sig = key.sign(message)
    s = int.from_bytes(sig[32:], "little") + L
    assert s < 2**256
    assert not ed25519.verify(key.public_key(), sig[:32] + s.to_bytes(32, "little"), message)
