"""RFC 9162 tree hashing and proofs: published vectors, a naive reference, corruption probes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ledger import rfc9162
from ledger.errors import ProofError, RootMismatchError, VerificationError
from tests.ledger import reference
from tests.ledger.corruption import (
    ConsistencyCase,
    InclusionCase,
    corrupt_consistency,
    corrupt_inclusion,
)
from tests.ledger.memory import MemoryTree

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc6962_vectors.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves_hex"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots_hex"]]


def _root(tree: MemoryTree, size: int) -> bytes:
    if size == 0:
        return rfc9162.empty_root()
    ids = rfc9162.root_plan(size)
    return rfc9162.fold([tree.nodes[i] for i in ids])


# -- published vectors ----------------------------------------------------------------------
def test_empty_root_vector():
    assert rfc9162.empty_root().hex() == VECTORS["empty_root_hex"]


@pytest.mark.parametrize("size", range(1, 9))
def test_root_vectors(size):
    tree = MemoryTree(LEAVES[:size])
    assert _root(tree, size) == ROOTS[size - 1]
    assert reference.mth(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize("vec", VECTORS["inclusion"], ids=lambda v: f"{v['leaf']}-{v['size']}")
def test_inclusion_vectors(vec):
    index, size = vec["leaf"], vec["size"]
    proof = [bytes.fromhex(p) for p in vec["proof"]]
    tree = MemoryTree(LEAVES[:size])
    assert rfc9162.inclusion_plan(index, size).resolve(tree) == proof
    leaf = rfc9162.leaf_hash(LEAVES[index])
    rfc9162.verify_inclusion(index, size, leaf, proof, ROOTS[size - 1])


@pytest.mark.parametrize("vec", VECTORS["consistency"], ids=lambda v: f"{v['size1']}-{v['size2']}")
def test_consistency_vectors(vec):
    s1, s2 = vec["size1"], vec["size2"]
    proof = [bytes.fromhex(p) for p in vec["proof"]]
    tree = MemoryTree(LEAVES[:s2])
    assert rfc9162.consistency_plan(s1, s2).resolve(tree) == proof
    rfc9162.verify_consistency(s1, s2, ROOTS[s1 - 1], ROOTS[s2 - 1], proof)


# -- cross-check with the naive reference ---------------------------------------------------
def _leaves(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


def test_against_reference_all_small_trees():
    leaves = _leaves(70)
    tree = MemoryTree(leaves)
    for n in range(1, 71):
        root = reference.mth(leaves[:n])
        assert _root(tree, n) == root
        for m in range(n):
            got = rfc9162.inclusion_plan(m, n).resolve(tree)
            assert got == reference.path(m, leaves[:n]), (m, n)
            rfc9162.verify_inclusion(m, n, rfc9162.leaf_hash(leaves[m]), got, root)
        for m in range(1, n + 1):
            got = rfc9162.consistency_plan(m, n).resolve(tree)
            want = reference.proof(m, leaves[:n]) if m < n else []
            assert got == want, (m, n)
            rfc9162.verify_consistency(m, n, reference.mth(leaves[:m]), root, got)


def test_against_reference_random_large_sizes():
    rng = random.Random(11)
    leaves = _leaves(1100, seed=3)
    tree = MemoryTree(leaves)
    for _ in range(40):
        n = rng.randrange(2, 1101)
        m = rng.randrange(0, n)
        assert rfc9162.inclusion_plan(m, n).resolve(tree) == reference.path(m, leaves[:n])
        k = rng.randrange(1, n)
        assert rfc9162.consistency_plan(k, n).resolve(tree) == reference.proof(k, leaves[:n])


def test_proof_reads_are_logarithmic():
    for n in (2, 1000, 1 << 20, (1 << 40) + 12345):
        bound = 2 * n.bit_length()
        assert len(rfc9162.inclusion_plan(n // 3, n).node_ids()) <= bound
        assert len(rfc9162.consistency_plan(max(1, n // 7), n).node_ids()) <= bound


# -- corruption: every probe must fail -------------------------------------------------------
def _good_inclusion_cases():
    leaves = _leaves(40, seed=5)
    tree = MemoryTree(leaves)
    for n in (1, 2, 3, 5, 8, 13, 32, 40):
        for m in sorted({0, n // 2, n - 1}):
            proof = tuple(rfc9162.inclusion_plan(m, n).resolve(tree))
            yield InclusionCase(m, n, rfc9162.leaf_hash(leaves[m]), proof, _root(tree, n))


def _good_consistency_cases():
    leaves = _leaves(40, seed=6)
    tree = MemoryTree(leaves)
    for n in (3, 7, 8, 13, 32, 40):
        for m in sorted({1, 2, n // 2, n - 1}):
            proof = tuple(rfc9162.consistency_plan(m, n).resolve(tree))
            yield ConsistencyCase(m, n, _root(tree, m), _root(tree, n), proof)


def test_inclusion_corruptions_all_fail():
    count = 0
    for case in _good_inclusion_cases():
        rfc9162.verify_inclusion(case.index, case.size, case.leaf, case.proof, case.root)
        for desc, bad in corrupt_inclusion(case):
            if bad == case:
                continue  # e.g. index ^ 2 on a one-leaf tree can coincide; not a corruption
            with pytest.raises(VerificationError):
                rfc9162.verify_inclusion(bad.index, bad.size, bad.leaf, bad.proof, bad.root)
                pytest.fail(f"probe {desc!r} verified for {case.index}/{case.size}")
            count += 1
    assert count > 300


def test_consistency_corruptions_all_fail():
    count = 0
    for case in _good_consistency_cases():
        rfc9162.verify_consistency(case.size1, case.size2, case.root1, case.root2, case.proof)
        for desc, bad in corrupt_consistency(case):
            if bad.size1 == bad.size2 == case.size1 and bad.root1 == bad.root2 and not bad.proof:
                continue
            with pytest.raises(VerificationError):
                rfc9162.verify_consistency(bad.size1, bad.size2, bad.root1, bad.root2, bad.proof)
                pytest.fail(f"probe {desc!r} verified for {case.size1}->{case.size2}")
            count += 1
    assert count > 300


# -- edge cases and errors as values ---------------------------------------------------------
def test_edge_cases():
    h = rfc9162.leaf_hash(b"data")
    rfc9162.verify_inclusion(0, 1, h, [], h)  # one-leaf tree: root == leaf hash
    with pytest.raises(ProofError):
        rfc9162.verify_inclusion(0, 0, h, [], h)
    with pytest.raises(ProofError):
        rfc9162.verify_inclusion(1, 1, h, [], h)
    with pytest.raises(ProofError):
        rfc9162.verify_inclusion(0, 1, b"", [], h)
    empty = rfc9162.empty_root()
    rfc9162.verify_consistency(0, 0, empty, empty, [])
    rfc9162.verify_consistency(0, 5, empty, h, [])
    rfc9162.verify_consistency(1, 1, h, h, [])
    with pytest.raises(RootMismatchError):
        rfc9162.verify_consistency(1, 1, h, empty, [])  # a fork at one size
    with pytest.raises(ProofError):
        rfc9162.verify_consistency(2, 1, h, h, [])  # time travel
    with pytest.raises(ProofError):
        rfc9162.verify_consistency(1, 1, h, h, [empty])
    with pytest.raises(ProofError):
        rfc9162.inclusion_plan(5, 5)
    with pytest.raises(ProofError):
        rfc9162.consistency_plan(0, 5)
    with pytest.raises(ProofError):
        rfc9162.inclusion_plan(0, 1 << 64)


def test_missing_storage_node_is_an_error():
    tree = MemoryTree(_leaves(9))
    del tree.nodes[rfc9162.NodeId(3, 0)]
    with pytest.raises(ProofError, match="lacks tree nodes"):
        rfc9162.inclusion_plan(8, 9).resolve(tree)


def test_diagnosis_is_one_line():
    h = rfc9162.leaf_hash(b"x")
    with pytest.raises(RootMismatchError) as info:
        rfc9162.verify_inclusion(0, 1, h, [], rfc9162.empty_root())
    assert "expected" in info.value.diagnosis and "\n" not in info.value.diagnosis
