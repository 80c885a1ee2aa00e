"""Proof bundles: verification offline and against the chain, and every tampering detected."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from sqlalchemy import select, update

from ledger import audit, rfc9162, tables, tiles
from ledger.checkpoint import Ed25519Signer, verifier_key
from ledger.errors import (
    AnchorMismatchError,
    ChainError,
    ForkError,
    FormatError,
    LedgerError,
    RootMismatchError,
    SignatureError,
    VerificationError,
)
from tests.ledger.conftest import ORIGIN
from tests.ledger.helpers import anchor_now, anchored_chain, append


@pytest.fixture
def setup(engine, log, signer):
    append(engine, log, 0, 37)
    a = anchored_chain(engine, log, signer)
    assert anchor_now(a) == 37
    append(engine, log, 37, 20)
    return a


def _bundle(engine, log, signer, record_id="agr-5", **kw):
    with engine.begin() as conn:
        return audit.build_bundle(conn, log, record_id, signer, **kw)


def _vkey(signer):
    return verifier_key(ORIGIN, signer.public_key_bytes())


def test_bundle_verifies_offline_and_on_chain(engine, log, signer, setup):
    b = _bundle(engine, log, signer)
    assert b["tree_size"] == 37 and b["anchor"]["tree_size"] == 37
    assert len(audit.dumps_bundle(b)) < 2048
    rep = audit.verify_bundle(json.dumps(b), trusted_key=_vkey(signer))
    assert [c["check"] for c in rep.checks] == ["checkpoint-signature", "leaf-hash", "inclusion"]
    rep = audit.verify_bundle(b, trusted_key=_vkey(signer), chain=setup.chain)
    assert rep.checks[-1]["check"] == "anchor" and "confirmations" in rep.checks[-1]["detail"]
    assert not [w for w in rep.warnings if "anchor" in w]


def test_unanchored_record_gets_latest_checkpoint(engine, log, signer, setup):
    b = _bundle(engine, log, signer, record_id="agr-50")
    assert b["tree_size"] == 57 and b["anchor"] is None
    rep = audit.verify_bundle(b, trusted_key=_vkey(signer))
    assert any("no anchor" in w for w in rep.warnings)
    with pytest.raises(AnchorMismatchError, match="not \\(yet\\) anchored"):
        audit.verify_bundle(b, trusted_key=_vkey(signer), chain=setup.chain)


def test_older_checkpoint_with_consistency_to_anchor(engine, log, signer, setup):
    # sign a checkpoint at 57, anchor at 57, then ask for a bundle against the 37 checkpoint
    assert anchor_now(setup) == 57
    b = _bundle(engine, log, signer, tree_size=37)
    # the smallest confirmed anchor covering 37 is 37 itself: same size
    assert b["anchor"]["tree_size"] == 37
    with engine.begin() as conn:  # forget the 37 anchor: now the bundle needs consistency
        conn.execute(
            update(tables.anchors).where(tables.anchors.c.tree_size == 37).values(state="failed")
        )
    b = _bundle(engine, log, signer, tree_size=37)
    assert b["anchor"]["tree_size"] == 57 and b["anchor"]["consistency_proof"]
    audit.verify_bundle(b, trusted_key=_vkey(signer), chain=setup.chain)
    fetched = copy.deepcopy(b)
    del fetched["anchor"]["consistency_proof"]
    with pytest.raises(FormatError, match="--from"):
        audit.verify_bundle(fetched, trusted_key=_vkey(signer), chain=setup.chain)
    with engine.connect() as conn:
        fetch = lambda a, z: log.consistency_proof(conn, a, z)  # noqa: E731
        audit.verify_bundle(
            fetched, trusted_key=_vkey(signer), chain=setup.chain, fetch_consistency=fetch
        )
    bad = copy.deepcopy(b)
    bad["anchor"]["consistency_proof"][0] = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ForkError):
        audit.verify_bundle(bad, trusted_key=_vkey(signer), chain=setup.chain)


def _mutate(b, path, value):
    out = copy.deepcopy(b)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return out


def _tampered(b):
    """Everything an attacker could change in a bundle; each must fail verification."""
    first = base64.b64decode(b["inclusion_proof"][0])
    yield "record value", _mutate(b, ["record", "value", "assetId"], "asset-999"), RootMismatchError
    yield "record type", _mutate(b, ["record", "type"], "data-use"), RootMismatchError
    yield (
        "salt",
        _mutate(b, ["record", "salt"], lambda s: ("0" if s[0] != "0" else "1") + s[1:]),
        RootMismatchError,
    )
    yield "leaf index", _mutate(b, ["leaf_index"], lambda i: i + 1), VerificationError
    yield (
        "proof bit",
        _mutate(
            b, ["inclusion_proof", 0], base64.b64encode(bytes([first[0] ^ 1]) + first[1:]).decode()
        ),
        RootMismatchError,
    )
    yield "proof dropped", _mutate(b, ["inclusion_proof"], lambda p: p[:-1]), VerificationError
    yield "tree size", _mutate(b, ["tree_size"], lambda s: s + 1), VerificationError
    yield (
        "checkpoint root",
        _mutate(
            b,
            ["checkpoint"],
            lambda n: n.replace(n.split("\n")[2], base64.b64encode(bytes(32)).decode()),
        ),
        SignatureError,
    )
    sig_line = b["checkpoint"].rstrip("\n").split("\n")[-1]
    _name, sig = sig_line[2:].split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    yield (
        "checkpoint signature",
        _mutate(b, ["checkpoint"], lambda n: n.replace(sig, base64.b64encode(bytes(raw)).decode())),
        SignatureError,
    )
    other = verifier_key(ORIGIN, Ed25519Signer().public_key_bytes())
    yield "swapped log key", _mutate(b, ["log", "verifier_key"], other), SignatureError


def test_every_bundle_tampering_detected(engine, log, signer, setup):
    b = _bundle(engine, log, signer)
    n = 0
    for desc, bad, kind in _tampered(b):
        with pytest.raises(kind):
            audit.verify_bundle(bad, trusted_key=_vkey(signer))
            pytest.fail(desc)
        n += 1
    # a bundle re-signed by an attacker's key verifies only when the auditor pins nothing
    assert n == 10


def test_untrusted_key_rejected_when_pinned(engine, log, signer, setup):
    attacker = Ed25519Signer()
    with engine.begin() as conn:
        forged = audit.build_bundle(conn, log, "agr-5", attacker, tree_size=None)
    with pytest.raises(SignatureError):
        audit.verify_bundle(forged, trusted_key=_vkey(signer))


def test_anchor_claims_checked_on_chain(engine, log, signer, setup):
    b = _bundle(engine, log, signer)
    checks = [
        (["anchor", "root"], base64.b64encode(b"\x01" * 32).decode(), AnchorMismatchError),
        (["anchor", "tree_size"], 36, AnchorMismatchError),
        (["anchor", "tx_hash"], "0x" + "00" * 32, AnchorMismatchError),
        (["anchor", "contract"], "0x" + "11" * 20, AnchorMismatchError),
        (["anchor", "chain_id"], 5, ChainError),
    ]
    for path, value, kind in checks:
        with pytest.raises(kind):
            audit.verify_bundle(
                _mutate(b, path, value), trusted_key=_vkey(signer), chain=setup.chain
            )
            pytest.fail(str(path))


def test_tampered_storage_detected(engine, log, signer, setup):
    # a stored leaf (the record text) altered after the anchored checkpoint was signed
    with engine.begin() as conn:
        conn.execute(
            update(tables.entries)
            .where(tables.entries.c.record_id == "agr-5")
            .values(
                record=log.entry_by_record_id(conn, "agr-5").record_json.replace(
                    "asset-5", "asset-6"
                )
            )
        )
    with pytest.raises(RootMismatchError):
        audit.verify_bundle(_bundle(engine, log, signer), trusted_key=_vkey(signer))


def test_tampered_interior_hash_detected(engine, log, signer, setup):
    victim = rfc9162.inclusion_plan(5, 37).node_ids()[1]
    assert victim.level > 0
    key, row, position = tiles.locate(victim)
    t = tables.tiles
    where = (t.c.log_id == log.log_id) & (t.c.tile_key == key)
    with engine.begin() as conn:
        width, hashes = conn.execute(select(t.c.width, t.c.hashes).where(where)).one()
        at = (tiles.row_offsets(width)[row] + position) * rfc9162.HASH_SIZE
        forged = hashes[:at] + bytes(32) + hashes[at + rfc9162.HASH_SIZE :]
        conn.execute(update(t).where(where).values(hashes=forged))
    with pytest.raises(RootMismatchError):
        audit.verify_bundle(_bundle(engine, log, signer), trusted_key=_vkey(signer))


def _rewrite(engine, log, keep: int, new_records: int, signer):
    """An attacker with database access truncates the log to ``keep`` leaves, appends other
    records, recomputes every hash and signs fresh checkpoints with the real key."""
    with engine.begin() as conn:
        conn.execute(tables.entries.delete().where(tables.entries.c.leaf_index >= keep))
        conn.execute(tables.checkpoints.delete().where(tables.checkpoints.c.tree_size > keep))
        leaves = [log.entry(conn, i).leaf_hash() for i in range(keep)]
        conn.execute(tables.tiles.delete())
        conn.execute(
            tables.tiles.insert(),
            [
                {"log_id": log.log_id, "tile_key": t.key, "width": t.width, "hashes": t.hashes}
                for t in tiles.grow(0, {}, leaves)
            ],
        )
        conn.execute(update(tables.logs).values(size=keep))
    append(engine, log, 1000, new_records)
    with engine.begin() as conn:
        return log.sign_checkpoint(conn, signer)


def test_truncated_log_detected(engine, log, signer, setup):
    with engine.begin() as conn:
        before = log.sign_checkpoint(conn, signer)  # the auditor saw size 57
    with engine.begin() as conn:
        conn.execute(tables.checkpoints.delete())
    after = _rewrite(engine, log, 30, 0, signer)
    assert after.size == 30
    with pytest.raises(ForkError, match="truncated"):
        audit.check_consistency(before.note, after.note, _vkey(signer))


def test_rewritten_history_detected(engine, log, signer, setup):
    with engine.begin() as conn:
        before = log.sign_checkpoint(conn, signer)  # size 57
    after = _rewrite(engine, log, 30, 40, signer)  # size 70, different records from 30 on
    with engine.connect() as conn:
        proof = log.consistency_proof(conn, 57, 70)
        same_size_root = log.root(conn, 57)
    with pytest.raises(ForkError, match="rewritten"):
        audit.check_consistency(before.note, after.note, _vkey(signer), proof=proof)
    assert same_size_root != before.root  # two roots for size 57: a fork
    # and the chain still holds the old root for 37, which the contract refuses to replace
    assert setup.chain.anchored_root(setup.contract, ORIGIN, 37) != log_root_37(engine, log)


def log_root_37(engine, log):
    with engine.connect() as conn:
        return log.root(conn, 37)


def test_consistency_between_honest_checkpoints(engine, log, signer, setup):
    with engine.begin() as conn:
        old = log.checkpoint_at(conn, 37)
        new = log.sign_checkpoint(conn, signer)
        proof = log.consistency_proof(conn, 37, 57)
    audit.check_consistency(old.note, new.note, _vkey(signer), proof=proof)
    audit.check_consistency(old.note, old.note, _vkey(signer))
    with pytest.raises(FormatError, match="--from"):
        audit.check_consistency(old.note, new.note, _vkey(signer))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"format": "other"}',
        "not json",
        '{"format": "autospace.proof-bundle/1"}',
    ],
)
def test_malformed_bundles_are_format_errors(text):
    with pytest.raises(FormatError):
        audit.verify_bundle(text)


def test_malformed_fields(engine, log, signer, setup):
    b = _bundle(engine, log, signer)
    for path, value in [
        (["leaf_index"], -1),
        (["leaf_index"], 1 << 64),
        (["leaf_index"], "3"),
        (["tree_size"], True),
        (["inclusion_proof"], "x"),
        (["inclusion_proof"], ["AAAA"]),
        (["inclusion_proof"], ["@"] * 2),
        (["record", "salt"], "zz"),
        (["record", "salt"], "00"),
        (["checkpoint"], 5),
        (["log", "verifier_key"], "nonsense"),
        (["anchor"], "x"),
        (["anchor", "root"], "AA=="),
        (["inclusion_proof"], [b["inclusion_proof"][0]] * 65),
    ]:
        with pytest.raises(LedgerError) as info:
            audit.verify_bundle(_mutate(b, path, value), trusted_key=_vkey(signer))
        assert isinstance(info.value, FormatError | VerificationError), path


def test_offline_anchor_claim_must_be_coherent(engine, log, signer, setup):
    b = _bundle(engine, log, signer)
    with pytest.raises(ForkError):  # same size as the checkpoint but another root
        audit.verify_bundle(
            _mutate(b, ["anchor", "root"], base64.b64encode(b"\x02" * 32).decode()),
            trusted_key=_vkey(signer),
        )
    with pytest.raises(AnchorMismatchError):  # an anchor smaller than the checkpoint
        audit.verify_bundle(_mutate(b, ["anchor", "tree_size"], 36), trusted_key=_vkey(signer))
