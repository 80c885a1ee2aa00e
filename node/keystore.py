"""The node's key store: the Ed25519 identity key and named secp256k1 EVM account keys.

Keys are files under ``HOME/keys`` with mode 0600; a key file readable by others is
refused. The identity key never leaves this object: callers get signatures, the
public key, its JWK and its id. ``evm_private_key`` is the one exception, for the
ledger's anchorer, which must hand the key to web3's in-process account signer; it
is never logged, served or written anywhere else.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.identity.jwk import jwk_thumbprint, okp_jwk

KEYS_DIR = "keys"
IDENTITY_KEY_FILE = "identity.ed25519.pem"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


class KeyStoreError(Exception):
    """A key is missing, unreadable, or too widely readable."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _read_private(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyStoreError(f"key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(f"key file {path} is accessible by others; run chmod 600 {path}")
    return path.read_bytes()


class KeyStore:
    """Keys of one node (or authority) home. Implements the ``Signer`` protocol.

    Use :meth:`create` once (``autospace init``), then construct with the home.
    """

    __slots__ = ("_key", "_key_id", "_public", "home")

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        pem = _read_private(self.home / KEYS_DIR / IDENTITY_KEY_FILE)
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except ValueError:
            raise KeyStoreError("identity key file is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError("identity key is not an Ed25519 key")
        self._key = key
        self._public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = jwk_thumbprint(okp_jwk(self._public))

    @classmethod
    def create(cls, home: Path | str) -> KeyStore:
        """Generate the identity key under ``home``; refuse to overwrite an existing one."""
        path = Path(home) / KEYS_DIR / IDENTITY_KEY_FILE
        if path.exists():
            raise KeyStoreError(f"{path} already exists; refusing to replace an identity key")
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)
        return cls(home)

    @property
    def key_id(self) -> str:
        """RFC 7638 thumbprint of the public key (the DID verification method fragment)."""
        return self._key_id

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_bytes(self) -> bytes:
        return self._public

    def public_jwk(self) -> dict[str, Any]:
        """Public JWK with ``kid``, ``use`` and ``alg`` (for ``/.well-known/jwks.json``)."""
        return {**okp_jwk(self._public, kid=self._key_id), "use": "sig", "alg": "EdDSA"}

    def evm_private_key(self, name: str = "anchor") -> bytes:
        """The 32-byte secp256k1 private key of EVM account ``name``, created on first use.

        For the ledger anchorer only: it stays in-process (web3 signs locally) and must
        never be logged, returned by an API, or written outside ``HOME/keys``.
        """
        if not name or set(name) - _NAME_OK:
            raise KeyStoreError("EVM key name: lowercase letters, digits, - and _ only")
        path = self.home / KEYS_DIR / f"evm-{name}.secp256k1"
        if not path.exists():
            secret = ec.generate_private_key(ec.SECP256K1()).private_numbers().private_value
            with contextlib.suppress(FileExistsError):  # another process won: read theirs
                _write_private(path, secret.to_bytes(32, "big").hex().encode())
        raw = bytes.fromhex(_read_private(path).decode().strip())
        if len(raw) != 32:
            raise KeyStoreError(f"{path} does not hold a 32-byte key")
        return raw

    def __repr__(self) -> str:
        return f"KeyStore(home={str(self.home)!r}, key_id={self._key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("KeyStore cannot be pickled (it holds a private key)")
