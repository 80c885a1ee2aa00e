"""Key agreement, advert signatures and share encryption for SecAgg+.

Each client holds two X25519 key pairs per round: ``c`` (channel keys: encrypts the Shamir
shares sent to each neighbour with AES-GCM) and ``s`` (mask keys: pairwise masks). Both public
keys are signed with the client's Ed25519 identity key over a domain-separated encoding bound to
(task, round, participant), so a coordinator cannot substitute keys (Bonawitz et al. §4, the
active-adversary variant of AdvertiseKeys).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federated.errors import ProtocolError, SecurityError

ADVERT_LABEL = b"autospace/secagg/v1/advertise"
CONSISTENCY_LABEL = b"autospace/secagg/v1/consistency"
CHANNEL_INFO = b"autospace/secagg/v1/channel"
PAIR_INFO = b"autospace/secagg/v1/pair"
NONCE_BYTES = 12
KEY_BYTES = 32

Signer = Callable[[bytes], bytes]
RandomBytes = Callable[[int], bytes]


def _field(data: bytes) -> bytes:
    """Length-prefixed field, so concatenations are unambiguous."""
    return struct.pack(">I", len(data)) + data


def round_context(task_id: str, round_number: int) -> bytes:
    """Bytes binding derived keys and masks to one (task, round)."""
    return _field(task_id.encode()) + struct.pack(">Q", round_number)


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair as raw bytes (private kept by its owner only)."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls, random_bytes: RandomBytes = os.urandom) -> KeyPair:
        """A fresh key pair from ``random_bytes`` (injected for deterministic tests)."""
        sk = X25519PrivateKey.from_private_bytes(random_bytes(KEY_BYTES))
        return cls(sk.private_bytes_raw(), sk.public_key().public_bytes_raw())


def public_from_private(private: bytes) -> bytes:
    """The X25519 public key of a raw private key (to check reconstructed keys)."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def advert_payload(
    task_id: str, round_number: int, participant: str, c_pk: bytes, s_pk: bytes
) -> bytes:
    """The exact bytes a client signs when advertising its two public keys."""
    return (
        ADVERT_LABEL
        + round_context(task_id, round_number)
        + _field(participant.encode())
        + _field(c_pk)
        + _field(s_pk)
    )


def consistency_payload(task_id: str, round_number: int, survivors: tuple[str, ...]) -> bytes:
    """The bytes a participant signs to confirm the survivor set of a round."""
    digest = hashlib.sha256(b"".join(_field(pid.encode()) for pid in survivors)).digest()
    return CONSISTENCY_LABEL + round_context(task_id, round_number) + digest


def verify_signature(identity_key: bytes, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``payload`` (never raises)."""
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_advert(
    identity_key: bytes, payload: bytes, signature: bytes, participant: str
) -> None:
    """Check an advert signature against the participant's known Ed25519 public key."""
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, payload)
    except (InvalidSignature, ValueError) as exc:
        raise SecurityError(
            f"advertised keys of {participant} are not signed by its identity key") from exc


def agree(private: bytes, peer_public: bytes, context: bytes, a: str, b: str, info: bytes) -> bytes:
    """X25519 then HKDF-SHA256 bound to the context and the (unordered) pair of participants."""
    try:
        shared = X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(peer_public)
        )
    except ValueError as exc:
        raise SecurityError("key agreement failed (invalid public key)") from exc
    lo, hi = sorted((a, b))
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
        info=info + context + _field(lo.encode()) + _field(hi.encode()),
    ).derive(shared)


def pair_seed(private: bytes, peer_public: bytes, context: bytes, a: str, b: str) -> bytes:
    """The 256-bit seed of the pairwise mask between ``a`` and ``b`` (same on both sides)."""
    return agree(private, peer_public, context, a, b, PAIR_INFO)


def _aad(context: bytes, src: str, dst: str) -> bytes:
    return context + _field(src.encode()) + _field(dst.encode())


def encrypt_shares(
    channel_key: bytes, context: bytes, src: str, dst: str, seed_share: bytes, key_share: bytes,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """AES-GCM encryption of (self-mask seed share, mask-key share) from ``src`` to ``dst``."""
    nonce = random_bytes(NONCE_BYTES)
    plaintext = _field(seed_share) + _field(key_share)
    return nonce + AESGCM(channel_key).encrypt(nonce, plaintext, _aad(context, src, dst))


def decrypt_shares(
    channel_key: bytes, context: bytes, src: str, dst: str, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """Inverse of :func:`encrypt_shares`; fails with :class:`SecurityError` on any tampering."""
    if len(ciphertext) < NONCE_BYTES + 16:
        raise SecurityError(f"share ciphertext from {src} is too short")
    try:
        plain = AESGCM(channel_key).decrypt(
            ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:], _aad(context, src, dst)
        )
    except InvalidTag as exc:
        raise SecurityError(f"share ciphertext from {src} does not decrypt") from exc
    fields = []
    pos = 0
    while pos < len(plain):
        if pos + 4 > len(plain):
            raise ProtocolError("malformed share plaintext")
        (size,) = struct.unpack(">I", plain[pos : pos + 4])
        fields.append(plain[pos + 4 : pos + 4 + size])
        pos += 4 + size
    if len(fields) != 2:
        raise ProtocolError("share plaintext must hold two shares", found=str(len(fields)))
    return fields[0], fields[1]


def identity_keys_complete(identity_keys: Mapping[str, bytes], cohort: tuple[str, ...]) -> None:
    """Every cohort member must have a known identity key (fail closed otherwise)."""
    missing = [pid for pid in cohort if pid not in identity_keys]
    if missing:
        raise SecurityError("no identity key known for " + ", ".join(missing))
