"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

Proof *generation* is split in two: pure functions work out which stored
tree nodes a proof needs (`inclusion_plan`, `consistency_plan`), and the
caller's storage supplies those hashes (`NodeSource`). Proof *verification*
(`verify_inclusion`, `verify_consistency`) is a pure function over bytes,
following the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.

Tree nodes are named by ``NodeId(level, index)``: the perfect subtree of
``2**level`` leaves starting at leaf ``index * 2**level``. Only perfect
subtrees are ever stored; the ragged right edge of a tree is folded on the fly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ledger.errors import ProofError, RootMismatchError

# RFC 9162 §2.1.1: domain separation between leaf and interior node hashes.
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
# SHA-256 output length; RFC 9162 §2.1.1 fixes the hash for this log.
HASH_SIZE = 32
# Largest tree size we accept anywhere (2**63 - 1: fits a signed 64-bit column).
MAX_TREE_SIZE = (1 << 63) - 1


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """MTH({}) = SHA-256() — the root of the empty tree."""
    return hashlib.sha256(b"").digest()


class NodeId(NamedTuple):
    """A perfect subtree: ``2**level`` leaves starting at ``index << level``."""

    level: int
    index: int


class NodeSource(Protocol):
    """Storage interface: returns the stored hash of each requested perfect subtree."""

    def get_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Return a hash for every id (missing ids are a storage error for the caller)."""
        ...


def _largest_power_of_two_below(n: int) -> int:
    """k such that k < n <= 2k, for n > 1 (the split point of RFC 9162 §2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """Perfect subtrees, left to right, whose right fold is MTH(D[begin:end]).

    Precondition: ``begin`` is a multiple of the smallest power of two >= end - begin,
    which holds for every subtree that appears in the RFC's recursive definitions.
    """
    ids: list[NodeId] = []
    while begin < end:
        size = end - begin
        level = size.bit_length() - 1  # largest perfect subtree that fits
        ids.append(NodeId(level, begin >> level))
        begin += 1 << level
    return ids


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash perfect subtrees of a ragged range together from the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


@dataclass(frozen=True)
class ProofPlan:
    """Which stored nodes a proof needs: each proof element folds one group of nodes."""

    groups: tuple[tuple[NodeId, ...], ...]

    def node_ids(self) -> list[NodeId]:
        """All distinct node ids to fetch, in a stable order."""
        seen: dict[NodeId, None] = {}
        for group in self.groups:
            for node in group:
                seen.setdefault(node, None)
        return list(seen)

    def resolve(self, source: NodeSource) -> list[bytes]:
        """Fetch the nodes from ``source`` and fold each group into one proof hash."""
        ids = self.node_ids()
        found = source.get_nodes(ids) if ids else {}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ProofError(
                "the log storage lacks tree nodes needed for the proof",
                expected=f"{len(ids)} nodes",
                found=f"missing {missing[:3]}",
            )
        return [fold([found[i] for i in group]) for group in self.groups]


def _check_index(index: int, size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError("tree size out of range", expected=f"0..{MAX_TREE_SIZE}", found=size)
    if not 0 <= index < size:
        raise ProofError("leaf index outside the tree", expected=f"0..{size - 1}", found=index)


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Nodes for the audit path PATH(index, D[0:size]) of RFC 9162 §2.1.3.1.

    Precondition: 0 <= index < size. The groups are ordered leaf-side first, as
    the RFC's proof lists them.
    """
    _check_index(index, size)
    groups: list[tuple[NodeId, ...]] = []
    begin, end, m = 0, size, index
    # Walk down from the root, remembering the sibling at each level, then reverse.
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if m < k:
            groups.append(tuple(range_nodes(begin + k, end)))
            end = begin + k
        else:
            groups.append(tuple(range_nodes(begin, begin + k)))
            begin, m = begin + k, m - k
    groups.reverse()
    return ProofPlan(tuple(groups))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """Nodes for PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1.

    Precondition: 0 < old_size <= new_size. An equal-size proof is empty.
    """
    if not 0 < old_size <= new_size <= MAX_TREE_SIZE:
        raise ProofError(
            "consistency proof needs 0 < old size <= new size",
            expected=f"0 < {old_size} <= {new_size}",
            found=f"old={old_size} new={new_size}",
        )
    groups: list[tuple[NodeId, ...]] = []
    begin, end, m, complete = 0, new_size, old_size, True
    while True:
        if m == end - begin:
            if not complete:
                groups.append(tuple(range_nodes(begin, end)))
            break
        k = _largest_power_of_two_below(end - begin)
        if m <= k:
            groups.append(tuple(range_nodes(begin + k, end)))
            end = begin + k
        else:
            groups.append(tuple(range_nodes(begin, begin + k)))
            begin, m, complete = begin + k, m - k, False
    groups.reverse()
    return ProofPlan(tuple(groups))


def root_plan(size: int) -> tuple[NodeId, ...]:
    """Nodes whose right fold is the root of a tree of ``size`` > 0 leaves."""
    return tuple(range_nodes(0, size))


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{name} is not a SHA-256 hash", expected=f"{HASH_SIZE} bytes", found=size)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 §2.1.3.2).

    Raises ProofError when the proof has the wrong shape for (index, size).
    """
    _check_index(index, size)
    _check_hash("leaf hash", leaf)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(
                "inclusion proof is longer than the path", expected="shorter", found=len(proof)
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            "inclusion proof is shorter than the path", expected="longer", found=len(proof)
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` with ``root``.

    Raises ProofError (malformed) or RootMismatchError (well-formed but wrong).
    """
    _check_hash("root", root)
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise RootMismatchError(
            "inclusion proof does not lead to the root", expected=root, found=computed
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends (old_size, old_root) (RFC 9162 §2.1.4.2).

    Sizes 0 and equal sizes need an empty proof (and equal roots when equal).
    Raises ProofError (malformed) or RootMismatchError (history differs).
    """
    if not 0 <= old_size <= new_size <= MAX_TREE_SIZE:
        raise ProofError(
            "a log cannot shrink",
            expected=f"old size <= new size <= {MAX_TREE_SIZE}",
            found=f"old={old_size} new={new_size}",
        )
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty proof", expected=0, found=len(proof))
        if old_root != new_root:
            raise RootMismatchError(
                "two different roots for one tree size (fork)", expected=old_root, found=new_root
            )
        return
    if old_size == 0:
        if proof:
            raise ProofError(
                "a proof from the empty tree must be empty", expected=0, found=len(proof)
            )
        return
    if not proof:
        raise ProofError("consistency proof is empty", expected="at least one hash", found=0)
    path = list(proof)
    # Step 1: if the old size is a power of two, the old root is the first element.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Step 3: shift right while LSB(fn) is set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long", expected="shorter", found=len(proof))
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short", expected="longer", found=len(proof))
    if fr != old_root:
        raise RootMismatchError(
            "the old tree is not a prefix of the new one", expected=old_root, found=fr
        )
    if sr != new_root:
        raise RootMismatchError(
            "consistency proof does not lead to the new root", expected=new_root, found=sr
        )
