"""The signing interface every package types against.

Private keys live in the node's key store and never leave it; code that needs a
signature receives a ``Signer``. The protocol is structural, so the libraries
(``ledger/``, ``federated/``), which must not import ``node/`` or ``connectors/``,
declare the same three members locally and accept the same object.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.identity.jwk import jwk_thumbprint, okp_jwk


@runtime_checkable
class Signer(Protocol):
    """An Ed25519 signer whose private key stays with its owner."""

    @property
    def key_id(self) -> str:
        """Stable identifier of the key (RFC 7638 JWK thumbprint, base64url)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``."""
        ...

    def public_key_bytes(self) -> bytes:
        """Return the raw 32-byte Ed25519 public key."""
        ...


class EphemeralSigner:
    """An in-memory Ed25519 signer for tests and short-lived tools.

    Nodes use ``node.keystore.KeyStore``; this class exists so that libraries and
    tests can sign without a node home. The private key is not exposed.
    """

    __slots__ = ("_key", "_key_id", "_public")

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        self._key = private_key or Ed25519PrivateKey.generate()
        self._public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = jwk_thumbprint(okp_jwk(self._public))

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_bytes(self) -> bytes:
        return self._public

    def __repr__(self) -> str:
        return f"EphemeralSigner(key_id={self._key_id!r})"
