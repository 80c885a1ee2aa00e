"""C2SP tlog-checkpoint in the C2SP signed-note format, signed with Ed25519.

A checkpoint body is three lines (origin, decimal tree size, base64 root hash) plus
optional extension lines, each ending in a newline. The signed note is the body, an
empty line, and one signature line per signer::

    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>

The key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key)
(C2SP signed-note, Ed25519 signature type 0x01). A verifier key is written
``<name>+<8 hex digits key id>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import FormatError, SignatureError
from ledger.rfc9162 import HASH_SIZE, MAX_TREE_SIZE

# C2SP signed-note: signature algorithm identifier for Ed25519.
ALG_ED25519 = 0x01
# C2SP signed-note: signature lines start with an em dash and a space.
SIG_PREFIX = "\u2014 "
# C2SP signed-note: key ids are 4 bytes; notes with too many signatures are rejected.
KEY_ID_SIZE = 4
MAX_SIGNATURES = 100
ED25519_KEY_SIZE = 32
ED25519_SIG_SIZE = 64
MAX_NOTE_BYTES = 1 << 16


class Signer(Protocol):
    """What the node's key store provides: an Ed25519 key used through two calls."""

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``data``."""
        ...

    def public_key_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...


class Ed25519Signer:
    """A Signer over an in-memory key (tests, tools; the node uses its key store)."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self._key = key or Ed25519PrivateKey.generate()

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_origin(origin: str) -> None:
    """An origin is one line of printable, non-space text (it also names the signing key)."""
    if (
        not isinstance(origin, str)
        or not 0 < len(origin) <= 255
        or any(c.isspace() or c == "+" or not c.isprintable() for c in origin)
    ):
        raise FormatError(
            "log origin must be 1..255 printable characters, no spaces or '+'", found=repr(origin)
        )


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id for an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[
        :KEY_ID_SIZE
    ]


def verifier_key(name: str, public_key: bytes) -> str:
    """The C2SP verifier key string ``name+hexid+base64(0x01||key)``."""
    check_origin(name)
    if len(public_key) != ED25519_KEY_SIZE:
        raise FormatError("Ed25519 public keys are 32 bytes", found=len(public_key))
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    """A parsed verifier key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Parse ``name+hexid+base64key``; FormatError if malformed or inconsistent."""
        parts = text.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise FormatError("verifier key must be name+keyid+key", found=text[:80])
        name, hex_id, b64 = parts
        check_origin(name)
        try:
            kid = bytes.fromhex(hex_id)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise FormatError("verifier key is not hex/base64", found=text[:80]) from exc
        if len(kid) != KEY_ID_SIZE or len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ALG_ED25519:
            raise FormatError("verifier key is not an Ed25519 note key", found=text[:80])
        if key_id(name, raw[1:]) != kid:
            raise FormatError(
                "verifier key id does not match its key",
                expected=key_id(name, raw[1:]).hex(),
                found=hex_id,
            )
        return cls(name, kid, raw[1:])

    def __str__(self) -> str:
        return verifier_key(self.name, self.public_key)


@dataclass(frozen=True)
class Checkpoint:
    """A signed checkpoint: the parsed body plus the note text exactly as signed."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    note: str

    @property
    def body(self) -> str:
        return self.note.split("\n\n", 1)[0] + "\n"

    @classmethod
    def from_note(cls, note: str) -> Checkpoint:
        """Parse a signed note's checkpoint body (no signature check: see `verify`)."""
        body, _sigs = split_note(note)
        return cls(*parse_body(body), note=note)

    def verify(self, verifier: Verifier | str) -> None:
        """Check the note carries a valid signature by ``verifier`` (SignatureError if not)."""
        verify_note(self.note, verifier)

    def signer_keys(self) -> list[tuple[str, bytes]]:
        """(name, key id) of every signature line (for diagnoses)."""
        _body, sigs = split_note(self.note)
        return [(n, s[:KEY_ID_SIZE]) for n, s in sigs]


def format_body(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    """The checkpoint text that gets signed."""
    check_origin(origin)
    if not 0 <= size <= MAX_TREE_SIZE or len(root) != HASH_SIZE:
        raise FormatError(
            "checkpoint needs a size in range and a 32-byte root", found=(size, len(root))
        )
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(line + "\n" for line in lines)


def parse_body(body: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Parse a checkpoint body into (origin, size, root, extension lines)."""
    if not body.endswith("\n"):
        raise FormatError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint needs origin, size and root lines", found=len(lines))
    origin, size_text, root_text, *ext = lines
    check_origin(origin)
    # Decimal without sign or leading zeros (C2SP tlog-checkpoint).
    if (
        not size_text.isdigit()
        or not size_text.isascii()
        or (size_text != "0" and size_text[0] == "0")
    ):
        raise FormatError("checkpoint size is not a decimal number", found=size_text[:40])
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise FormatError("checkpoint size out of range", found=size_text[:40])
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise FormatError("checkpoint root is not base64", found=root_text[:60]) from exc
    if len(root) != HASH_SIZE:
        raise FormatError(
            "checkpoint root is not a SHA-256 hash", expected=HASH_SIZE, found=len(root)
        )
    if any(not line for line in ext):
        raise FormatError("checkpoint extension lines must not be empty")
    return origin, size, root, tuple(ext)


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its body text and [(key name, key id || signature)]."""
    if not isinstance(note, str) or len(note.encode()) > MAX_NOTE_BYTES:
        raise FormatError("signed note is not text or is too large")
    if "\r" in note or not note.endswith("\n"):
        raise FormatError("signed note must use \\n line ends and end with a newline")
    body, sep, sig_block = note.rpartition("\n\n")
    if not sep:
        raise FormatError("signed note lacks the blank line before its signatures")
    body += "\n"
    sigs: list[tuple[str, bytes]] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise FormatError("malformed signature line", found=line[:60])
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2:
            raise FormatError("malformed signature line", found=line[:60])
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except binascii.Error as exc:
            raise FormatError("signature is not base64", found=parts[1][:40]) from exc
        if len(raw) < KEY_ID_SIZE:
            raise FormatError("signature too short", found=len(raw))
        sigs.append((parts[0], raw))
    if not sigs or len(sigs) > MAX_SIGNATURES:
        raise FormatError("signed note has no (or too many) signatures", found=len(sigs))
    return body, sigs


def sign_note(body: str, name: str, signer: Signer) -> str:
    """Sign ``body`` (text ending in a newline) and return the signed note."""
    if not body.endswith("\n"):
        raise FormatError("note body must end with a newline")
    pub = signer.public_key_bytes()
    sig = signer.sign(body.encode())
    if len(sig) != ED25519_SIG_SIZE or len(pub) != ED25519_KEY_SIZE:
        raise FormatError("signer is not Ed25519", found=(len(pub), len(sig)))
    line = f"{SIG_PREFIX}{name} {base64.b64encode(key_id(name, pub) + sig).decode()}\n"
    return body + "\n" + line


def verify_note(note: str, verifier: Verifier | str) -> str:
    """Return the note's body if it carries a valid signature by ``verifier``.

    Signatures by other keys are ignored (a note may be cosigned by witnesses);
    a line claiming the verifier's name and key id with a bad signature fails.
    """
    v = Verifier.parse(verifier) if isinstance(verifier, str) else verifier
    body, sigs = split_note(note)
    matching = [raw for name, raw in sigs if name == v.name and raw[:KEY_ID_SIZE] == v.key_id]
    if not matching:
        raise SignatureError(
            "checkpoint is not signed by the trusted key",
            expected=f"{v.name} key id {v.key_id.hex()}",
            found=", ".join(f"{n} key id {r[:KEY_ID_SIZE].hex()}" for n, r in sigs),
        )
    pub = Ed25519PublicKey.from_public_bytes(v.public_key)
    for raw in matching:
        sig = raw[KEY_ID_SIZE:]
        try:
            if len(sig) != ED25519_SIG_SIZE:
                raise InvalidSignature
            pub.verify(sig, body.encode())
        except InvalidSignature:
            raise SignatureError(
                "checkpoint signature is invalid (note altered or forged)",
                found=f"key id {v.key_id.hex()}",
            ) from None
    return body


def sign_checkpoint(origin: str, size: int, root: bytes, signer: Signer) -> Checkpoint:
    """Build and sign the checkpoint (the key is named after the origin)."""
    body = format_body(origin, size, root)
    note = sign_note(body, origin, signer)
    return Checkpoint(origin, size, root, (), note)


def parse_and_verify(note: str, verifier: Verifier | str) -> Checkpoint:
    """Verify the signature, then parse: the usual order for untrusted input."""
    verify_note(note, verifier)
    return Checkpoint.from_note(note)
