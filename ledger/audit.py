"""Proof bundles for auditors, and their verification.

A bundle (format ``autospace.proof-bundle/1``, documented in docs/ledger.md) carries
everything needed to check one record offline: the record and its salt, its leaf index,
an inclusion proof into a signed checkpoint, the log's origin and verifier key, and a
reference to the on-chain anchor that covers the checkpoint. `verify_bundle` checks the
checkpoint signature, the leaf hash and the inclusion proof offline; given a `Chain` it
also checks that the contract holds an anchored root covering the checkpoint (same size,
or a later size plus a consistency proof from the bundle or fetched from the log).

Failures are `VerificationError` (the evidence is wrong: exit 1) or `FormatError` /
`ChainError` (the input cannot be read or checked: exit 2), each with a diagnosis.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from ledger import rfc9162
from ledger.anchor import covering_anchor
from ledger.checkpoint import Checkpoint, Signer, Verifier, parse_and_verify, verifier_key
from ledger.errors import (
    AnchorMismatchError,
    ChainError,
    ForkError,
    FormatError,
    LedgerError,
    NotFoundError,
    RemoteError,
    RootMismatchError,
    SignatureError,
    VerificationError,
)
from ledger.log import Log
from ledger.records import canonical_record, leaf_data

BUNDLE_FORMAT = "autospace.proof-bundle/1"
# Bundles are small (a record and ~log2(n) hashes); refuse anything absurd before parsing.
MAX_BUNDLE_BYTES = 2 << 20
MAX_PROOF_LENGTH = 64

ConsistencyFetcher = Callable[[int, int], list[bytes]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- building --------------------------------------------------------------------------------
def build_bundle(
    conn: Connection,
    log: Log,
    record_id: str,
    signer: Signer,
    *,
    tree_size: int | None = None,
) -> dict[str, Any]:
    """The proof bundle for ``record_id``.

    Uses the smallest confirmed anchor covering the record and the checkpoint signed at
    that size (so no consistency proof is needed); without one, the latest checkpoint
    (signed now if none covers the record) and ``anchor: null``. With ``tree_size``, the
    bundle proves inclusion in the checkpoint of that size, plus a consistency proof up to
    the anchor that covers it.
    """
    entry = log.entry_by_record_id(conn, record_id)
    anchor = covering_anchor(conn, log, tree_size or entry.leaf_index + 1)
    if tree_size is not None:
        cp = log.checkpoint_at(conn, tree_size)
        if cp is None or tree_size <= entry.leaf_index:
            raise NotFoundError(
                "no signed checkpoint of that size covering the record", found=tree_size
            )
    elif anchor is not None:
        cp = log.checkpoint_at(conn, anchor.tree_size)
        if cp is None:
            raise NotFoundError("anchored size has no stored checkpoint", found=anchor.tree_size)
    else:
        latest = log.latest_checkpoint(conn)
        cp = (
            latest
            if latest and latest.size > entry.leaf_index
            else log.sign_checkpoint(conn, signer)
        )
    anchor_json: dict[str, Any] | None = None
    if anchor is not None:
        anchor_json = anchor.to_json()
        del anchor_json["state"]
        if anchor.tree_size > cp.size:
            anchor_json["consistency_proof"] = [
                _b64(h) for h in log.consistency_proof(conn, cp.size, anchor.tree_size)
            ]
    return {
        "format": BUNDLE_FORMAT,
        "record": {
            "id": entry.record_id,
            "type": entry.record_type,
            "value": json.loads(entry.record_json),
            "salt": entry.salt.hex(),
        },
        "leaf_index": entry.leaf_index,
        "tree_size": cp.size,
        "inclusion_proof": [_b64(h) for h in log.inclusion_proof(conn, entry.leaf_index, cp.size)],
        "checkpoint": cp.note,
        "log": {
            "origin": log.origin,
            "verifier_key": verifier_key(log.origin, signer.public_key_bytes()),
        },
        "anchor": anchor_json,
    }


def dumps_bundle(bundle: Mapping[str, Any]) -> str:
    """Compact JSON text of a bundle (what the size target refers to)."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


# -- parsing ---------------------------------------------------------------------------------
def _int(value: Any, name: str) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 0 <= value <= rfc9162.MAX_TREE_SIZE
    ):
        raise FormatError(
            f"bundle field {name} must be an integer in 0..2^63-1", found=repr(value)[:40]
        )
    return value


def _hash(value: Any, name: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except binascii.Error:
        raw = None
    if raw is None or len(raw) != rfc9162.HASH_SIZE:
        raise FormatError(
            f"bundle field {name} must be a base64 SHA-256 hash", found=repr(value)[:60]
        )
    return raw


def _proof(value: Any, name: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_LENGTH:
        raise FormatError(
            f"bundle field {name} must be a list of at most {MAX_PROOF_LENGTH} hashes"
        )
    return [_hash(v, f"{name}[{i}]") for i, v in enumerate(value)]


@dataclass(frozen=True)
class AnchorClaim:
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    tree_size: int
    root: bytes
    consistency_proof: list[bytes] | None


@dataclass(frozen=True)
class Bundle:
    """A parsed (not yet verified) proof bundle."""

    record_id: str
    record_type: str
    record: Any
    salt: bytes
    leaf_index: int
    tree_size: int
    inclusion_proof: list[bytes]
    checkpoint: str
    origin: str
    verifier_key: str
    anchor: AnchorClaim | None


def load_bundle(source: str | bytes | Mapping[str, Any]) -> Bundle:
    """Parse bundle JSON (text, bytes or an already decoded dict); FormatError if malformed."""
    if isinstance(source, str | bytes):
        if len(source) > MAX_BUNDLE_BYTES:
            raise FormatError(
                "bundle too large", expected=f"<= {MAX_BUNDLE_BYTES} bytes", found=len(source)
            )
        try:
            data = json.loads(source)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormatError("bundle is not JSON", found=str(exc)[:100]) from None
    else:
        data = source
    if not isinstance(data, Mapping) or data.get("format") != BUNDLE_FORMAT:
        raise FormatError(
            "not a proof bundle",
            expected=BUNDLE_FORMAT,
            found=data.get("format") if isinstance(data, Mapping) else type(data).__name__,
        )
    rec, logd = data.get("record"), data.get("log")
    if not isinstance(rec, Mapping) or not isinstance(logd, Mapping):
        raise FormatError("bundle lacks the record or log object")
    try:
        salt = bytes.fromhex(rec.get("salt", ""))
    except (TypeError, ValueError):
        salt = b""
    if len(salt) != 16:
        raise FormatError("record salt must be 32 hex digits", found=repr(rec.get("salt"))[:40])
    for key in ("id", "type"):
        if not isinstance(rec.get(key), str):
            raise FormatError(f"record.{key} must be a string")
    if (
        not isinstance(data.get("checkpoint"), str)
        or not isinstance(logd.get("verifier_key"), str)
        or not isinstance(logd.get("origin"), str)
    ):
        raise FormatError("bundle lacks checkpoint, log.origin or log.verifier_key text")
    anchor = None
    a = data.get("anchor")
    if a is not None:
        if not isinstance(a, Mapping):
            raise FormatError("bundle anchor must be an object or null")
        for key in ("contract", "tx_hash"):
            if not isinstance(a.get(key), str) or not a[key].startswith("0x"):
                raise FormatError(f"anchor.{key} must be 0x-hex text", found=repr(a.get(key))[:70])
        cons = a.get("consistency_proof")
        anchor = AnchorClaim(
            _int(a.get("chain_id"), "anchor.chain_id"),
            a["contract"],
            a["tx_hash"],
            _int(a.get("block_number"), "anchor.block_number"),
            _int(a.get("tree_size"), "anchor.tree_size"),
            _hash(a.get("root"), "anchor.root"),
            None if cons is None else _proof(cons, "anchor.consistency_proof"),
        )
    return Bundle(
        rec["id"],
        rec["type"],
        rec.get("value"),
        salt,
        _int(data.get("leaf_index"), "leaf_index"),
        _int(data.get("tree_size"), "tree_size"),
        _proof(data.get("inclusion_proof"), "inclusion_proof"),
        data["checkpoint"],
        logd["origin"],
        logd["verifier_key"],
        anchor,
    )


# -- verifying -------------------------------------------------------------------------------
@dataclass
class Report:
    """The outcome of a verification: every check with its result, for humans and --json."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ok(self, name: str, detail: str) -> None:
        self.checks.append({"check": name, "ok": True, "detail": detail})

    def to_json(self, *, valid: bool, error: LedgerError | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": valid, "checks": self.checks, "warnings": self.warnings}
        if error is not None:
            out["error"] = {"kind": type(error).__name__, "reason": error.diagnosis}
        return out


def verify_bundle(
    bundle: Bundle | str | bytes | Mapping[str, Any],
    *,
    trusted_key: str | None = None,
    chain: Any | None = None,
    fetch_consistency: ConsistencyFetcher | None = None,
    report: Report | None = None,
) -> Report:
    """Verify a bundle; return the report of passed checks or raise the first failure.

    Offline: checkpoint signature (by ``trusted_key`` when given, else the bundle's own key,
    with a warning), leaf hash, inclusion. With ``chain`` (a `ledger.evm.Chain`): the
    anchored root covers the checkpoint. Raises VerificationError, FormatError, ChainError.
    """
    rep = report or Report()
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    key = Verifier.parse(b.verifier_key)
    if trusted_key is not None:
        trusted = Verifier.parse(trusted_key)
        if trusted != key:
            raise SignatureError(
                "bundle names a log key other than the trusted one",
                expected=str(trusted),
                found=b.verifier_key,
            )
    else:
        rep.warnings.append("log key taken from the bundle itself; pin it with --trusted-key")
    if key.name != b.origin:
        raise SignatureError(
            "verifier key is not named after the log origin", expected=b.origin, found=key.name
        )
    cp = parse_and_verify(b.checkpoint, key)
    rep.ok("checkpoint-signature", f"signed by {key.name} (key id {key.key_id.hex()})")
    if cp.origin != b.origin or cp.size != b.tree_size:
        raise VerificationError(
            "checkpoint does not match the bundle",
            expected=f"{b.origin} size {b.tree_size}",
            found=f"{cp.origin} size {cp.size}",
        )
    try:
        record_json = canonical_record(b.record)
    except LedgerError as exc:
        raise FormatError(
            "bundle record is not canonicalisable JSON", found=exc.diagnosis
        ) from None
    leaf = rfc9162.leaf_hash(leaf_data(b.record_type, record_json, b.salt))
    rep.ok("leaf-hash", f"leaf {leaf.hex()[:16]}... from record, type and salt")
    try:
        rfc9162.verify_inclusion(b.leaf_index, b.tree_size, leaf, b.inclusion_proof, cp.root)
    except RootMismatchError as exc:
        raise RootMismatchError(
            "record is not in the log as claimed (altered record, salt, index or proof)",
            expected=exc.expected,
            found=exc.found,
        ) from None
    rep.ok("inclusion", f"leaf {b.leaf_index} is in the tree of {b.tree_size} with the signed root")
    if b.anchor is None:
        if chain is not None:  # the auditor asked for the anchor: fail closed
            raise AnchorMismatchError(
                "bundle has no anchor reference: the record is not (yet) anchored",
                expected="an anchor covering the checkpoint",
                found="none",
            )
        rep.warnings.append("bundle has no anchor reference (not yet anchored)")
    elif chain is None:
        _check_anchor_offline(b, cp, rep)
        rep.warnings.append("anchor not checked on chain (no --rpc)")
    else:
        _check_anchor_on_chain(b, cp, chain, fetch_consistency, rep)
    return rep


def _consistency_to_anchor(
    b: Bundle, cp: Checkpoint, root: bytes, fetch: ConsistencyFetcher | None, rep: Report
) -> None:
    assert b.anchor is not None
    if b.anchor.tree_size < cp.size:
        raise AnchorMismatchError(
            "anchor does not cover the checkpoint",
            expected=f">= {cp.size}",
            found=b.anchor.tree_size,
        )
    if b.anchor.tree_size == cp.size:
        if root != cp.root:
            raise ForkError(
                "anchored root differs from the signed checkpoint of the same size (fork)",
                expected=cp.root,
                found=root,
            )
        return
    proof = b.anchor.consistency_proof
    if proof is None:
        if fetch is None:
            raise FormatError(
                "anchor is larger than the checkpoint and no consistency proof is "
                "in the bundle; give the log's URL (--from)"
            )
        proof = fetch(cp.size, b.anchor.tree_size)
    try:
        rfc9162.verify_consistency(cp.size, b.anchor.tree_size, cp.root, root, proof)
    except VerificationError as exc:
        raise ForkError(
            "anchored tree does not extend the checkpoint: " + exc.message,
            expected=exc.expected,
            found=exc.found,
        ) from None
    rep.ok("consistency", f"tree {cp.size} is a prefix of anchored tree {b.anchor.tree_size}")


def _check_anchor_offline(b: Bundle, cp: Checkpoint, rep: Report) -> None:
    assert b.anchor is not None
    # Without a chain we can still check the bundle's own anchor claim is coherent.
    if b.anchor.tree_size <= cp.size or b.anchor.consistency_proof is not None:
        _consistency_to_anchor(b, cp, b.anchor.root, None, rep)


def _check_anchor_on_chain(
    b: Bundle, cp: Checkpoint, chain: Any, fetch: ConsistencyFetcher | None, rep: Report
) -> None:
    a = b.anchor
    assert a is not None
    chain_id = chain.chain_id()
    if chain_id != a.chain_id:
        raise ChainError(
            "the RPC node is on another chain than the anchor", expected=a.chain_id, found=chain_id
        )
    if not chain.code_at(a.contract):
        raise AnchorMismatchError("no contract at the anchor address", found=a.contract)
    onchain = chain.anchored_root(a.contract, b.origin, a.tree_size)
    if onchain is None:
        raise AnchorMismatchError(
            "the contract holds no root for this log and size",
            expected=f"{b.origin} size {a.tree_size}",
            found="nothing",
        )
    if onchain != a.root:
        raise AnchorMismatchError(
            "anchored root differs from the bundle's", expected=a.root, found=onchain
        )
    _consistency_to_anchor(b, cp, onchain, fetch, rep)
    receipt = chain.receipt(a.tx_hash)
    if receipt is None or receipt.status != 1:
        raise AnchorMismatchError(
            "anchor transaction not found in the chain (or reverted)", found=a.tx_hash
        )
    events = [
        e
        for e in chain.anchor_events(a.contract, receipt)
        if (e.origin, e.tree_size, e.root) == (b.origin, a.tree_size, onchain)
    ]
    if not events:
        raise AnchorMismatchError(
            "anchor transaction emitted no matching Anchored event", found=a.tx_hash
        )
    depth = chain.block_number() - receipt.block_number + 1
    if receipt.block_number != a.block_number:
        rep.warnings.append(
            f"anchor transaction is in block {receipt.block_number}, bundle says {a.block_number}"
        )
    rep.ok(
        "anchor",
        f"root of size {a.tree_size} anchored by {a.tx_hash} in block "
        f"{receipt.block_number} ({depth} confirmations) on chain {chain_id}",
    )


# -- comparing checkpoints -------------------------------------------------------------------
def check_consistency(
    old_note: str,
    new_note: str,
    verifier: str | Verifier,
    *,
    proof: list[bytes] | None = None,
    fetch: ConsistencyFetcher | None = None,
) -> tuple[Checkpoint, Checkpoint]:
    """Check that the log only grew from ``old_note`` to ``new_note``.

    Raises ForkError for two roots at one size or a failed consistency proof,
    SignatureError/FormatError for unusable checkpoints.
    """
    a = parse_and_verify(old_note, verifier)
    b = parse_and_verify(new_note, verifier)
    if a.origin != b.origin:
        raise FormatError("checkpoints are of different logs", expected=a.origin, found=b.origin)
    old, new = a, b
    if new.size < old.size:
        raise ForkError(
            "the newer checkpoint is smaller: the log was truncated",
            expected=f">= {old.size}",
            found=new.size,
        )
    if old.size == new.size:
        if old.root != new.root:
            raise ForkError(
                "two different roots for one tree size: the log forked",
                expected=old.root,
                found=new.root,
            )
        return old, new
    if old.size == 0:
        return old, new
    if proof is None:
        if fetch is None:
            raise FormatError(
                "checkpoints differ in size; a consistency proof is needed (--from URL)"
            )
        proof = fetch(old.size, new.size)
    try:
        rfc9162.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except VerificationError as exc:
        raise ForkError(
            f"log history was rewritten between {old.size} and {new.size}: {exc.message}",
            expected=exc.expected,
            found=exc.found,
        ) from None
    return old, new


def consistency_proof_json(conn: Connection, log: Log, first: int, second: int) -> dict[str, Any]:
    """What the public consistency endpoint answers (and `http_fetcher` reads)."""
    return {
        "first": first,
        "second": second,
        "proof": [_b64(h) for h in log.consistency_proof(conn, first, second)],
    }


def inclusion_proof_json(conn: Connection, log: Log, index: int, size: int) -> dict[str, Any]:
    """What the public inclusion endpoint answers."""
    return {
        "leaf_index": index,
        "tree_size": size,
        "proof": [_b64(h) for h in log.inclusion_proof(conn, index, size)],
    }


def http_fetcher(base_url: str, *, timeout: float = 10.0) -> ConsistencyFetcher:
    """Fetch consistency proofs from ``GET {base_url}/proof/consistency?first=A&second=B``."""
    import httpx

    def fetch(first: int, second: int) -> list[bytes]:
        url = base_url.rstrip("/") + "/proof/consistency"
        try:
            resp = httpx.get(url, params={"first": first, "second": second}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise RemoteError(
                "could not fetch the consistency proof from the log", found=f"{url}: {exc}"
            ) from None
        if resp.status_code != 200:
            raise FormatError(
                "log endpoint refused the consistency proof", found=f"HTTP {resp.status_code}"
            )
        try:
            body = resp.json()
        except ValueError:
            raise FormatError("log endpoint answered non-JSON") from None
        if (
            not isinstance(body, Mapping)
            or body.get("first") != first
            or body.get("second") != second
        ):
            raise FormatError("log endpoint answered for other sizes", expected=(first, second))
        return _proof(body.get("proof"), "proof")

    return fetch
