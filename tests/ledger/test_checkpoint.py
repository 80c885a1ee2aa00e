"""C2SP checkpoints and signed notes: published vector, round trips, corruption probes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger import checkpoint as cp
from ledger.errors import FormatError, LedgerError, SignatureError

VEC = json.loads((Path(__file__).parent / "data" / "signed_note_vectors.json").read_text())


def _go_signer() -> cp.Ed25519Signer:
    # PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>; the base64 may itself contain '+'.
    material = VEC["signer_key"].split("+", 4)[4]
    raw = base64.b64decode(material)
    assert raw[0] == cp.ALG_ED25519
    return cp.Ed25519Signer.from_seed(raw[1:])


def test_published_note_vector_reproduced():
    signer = _go_signer()
    assert cp.verifier_key("PeterNeumann", signer.public_key_bytes()) == VEC["verifier_key"]
    assert cp.sign_note(VEC["text"], "PeterNeumann", signer) == VEC["note"]
    assert cp.verify_note(VEC["note"], VEC["verifier_key"]) == VEC["text"]


def test_published_note_tampering_detected():
    with pytest.raises(SignatureError):
        cp.verify_note(VEC["note"].replace("cryptography", "cryptographY"), VEC["verifier_key"])


def test_checkpoint_round_trip(signer):
    root = bytes(range(32))
    c = cp.sign_checkpoint("example.org/log", 42, root, signer)
    assert c.note.startswith(
        "example.org/log\n42\n" + base64.b64encode(root).decode() + "\n\n\u2014 "
    )
    vkey = cp.verifier_key("example.org/log", signer.public_key_bytes())
    parsed = cp.parse_and_verify(c.note, vkey)
    assert (parsed.origin, parsed.size, parsed.root) == ("example.org/log", 42, root)
    assert cp.Verifier.parse(vkey).key_id == cp.key_id("example.org/log", signer.public_key_bytes())
    assert str(cp.Verifier.parse(vkey)) == vkey


def test_cosigned_note_accepts_trusted_signature(signer):
    other = cp.Ed25519Signer()
    c = cp.sign_checkpoint("example.org/log", 1, bytes(32), signer)
    cosigned = cp.sign_note(c.body, "witness.example", other)
    note = c.note + cosigned.split("\n\n", 1)[1]
    cp.verify_note(note, cp.verifier_key("example.org/log", signer.public_key_bytes()))
    cp.verify_note(note, cp.verifier_key("witness.example", other.public_key_bytes()))


def _probes(note: str):
    """Every way an attacker could alter a signed checkpoint; each must be rejected."""
    body, sig_block = note.split("\n\n")
    origin, size, root = body.split("\n")
    yield "size + 1", f"{origin}\n{int(size) + 1}\n{root}\n\n{sig_block}"
    yield "size leading zero", f"{origin}\n0{size}\n{root}\n\n{sig_block}"
    yield "other origin", f"{origin}x\n{size}\n{root}\n\n{sig_block}"
    flipped = base64.b64encode(bytes([base64.b64decode(root)[0] ^ 1]) + base64.b64decode(root)[1:])
    yield "root bit", f"{origin}\n{size}\n{flipped.decode()}\n\n{sig_block}"
    yield "extension added", f"{origin}\n{size}\n{root}\nextra\n\n{sig_block}"
    name, sig = sig_block[2:].rstrip("\n").split(" ")
    raw = base64.b64decode(sig)
    for pos in (0, 3, 4, 40, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        yield (
            f"sig byte {pos}",
            f"{body}\n\n\u2014 {name} {base64.b64encode(bytes(bad)).decode()}\n",
        )
    yield "sig truncated", f"{body}\n\n\u2014 {name} {base64.b64encode(raw[:-1]).decode()}\n"
    yield "sig extended", f"{body}\n\n\u2014 {name} {base64.b64encode(raw + b'x').decode()}\n"
    yield "renamed signer", f"{body}\n\n\u2014 {name}x {sig}\n"
    yield "no signature", f"{body}\n\n"
    yield "no blank line", f"{body}\n{sig_block}"
    yield "crlf", note.replace("\n", "\r\n")
    yield "no final newline", note[:-1]
    yield "hyphen instead of em dash", note.replace("\u2014", "-")
    yield "garbage after", note + "junk\n"


def test_every_checkpoint_corruption_fails(signer):
    c = cp.sign_checkpoint("example.org/log", 1234, bytes(range(32)), signer)
    vkey = cp.verifier_key("example.org/log", signer.public_key_bytes())
    n = 0
    for desc, bad in _probes(c.note):
        with pytest.raises(LedgerError):
            cp.parse_and_verify(bad, vkey)
            pytest.fail(desc)
        n += 1
    assert n > 15


def test_wrong_key_rejected(signer):
    c = cp.sign_checkpoint("example.org/log", 1, bytes(32), signer)
    other = cp.verifier_key("example.org/log", cp.Ed25519Signer().public_key_bytes())
    with pytest.raises(SignatureError, match="not signed by the trusted key"):
        c.verify(other)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "name",
        "name+abcd+AQ==",
        "na me+00000000+" + "A" * 44,
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpcnQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong alg byte
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys(key):
    with pytest.raises(FormatError):
        cp.Verifier.parse(key)


@pytest.mark.parametrize("origin", ["", "has space", "a+b", "tab\there", "x" * 256, "line\nbreak"])
def test_bad_origins(origin):
    with pytest.raises(FormatError):
        cp.check_origin(origin)
