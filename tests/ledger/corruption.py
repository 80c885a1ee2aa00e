"""Corruption generators (STYLE.md item 3): every probe they yield must fail to verify."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@dataclass(frozen=True)
class InclusionCase:
    index: int
    size: int
    leaf: bytes
    proof: tuple[bytes, ...]
    root: bytes


@dataclass(frozen=True)
class ConsistencyCase:
    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: tuple[bytes, ...]


def _flip(proof: tuple[bytes, ...], i: int, bit: int) -> tuple[bytes, ...]:
    changed = bytearray(proof[i])
    changed[0] ^= 1 << bit
    return (*proof[:i], bytes(changed), *proof[i + 1 :])


def corrupt_inclusion(c: InclusionCase) -> Iterator[tuple[str, InclusionCase]]:
    """Wrong index, doubled/halved size, wrong leaf or root, garbage around, flipped bits."""
    yield "index - 1", replace(c, index=c.index - 1)
    yield "index + 1", replace(c, index=c.index + 1)
    yield "index ^ 2", replace(c, index=c.index ^ 2)
    yield "size * 2", replace(c, size=c.size * 2)
    yield "size // 2", replace(c, size=c.size // 2)
    yield "huge index", replace(c, index=1 << 62)
    yield "wrong leaf", replace(c, leaf=b"WrongLeaf")
    yield "other leaf", replace(c, leaf=SOME_HASH)
    yield "empty root", replace(c, root=EMPTY_ROOT)
    yield "random root", replace(c, root=SOME_HASH)
    yield "trailing garbage", replace(c, proof=(*c.proof, b""))
    yield "trailing root", replace(c, proof=(*c.proof, c.root))
    yield "preceding garbage", replace(c, proof=(b"", *c.proof))
    yield "preceding root", replace(c, proof=(c.root, *c.proof))
    yield "byte added after", replace(c, proof=tuple(p + b"\x00" for p in c.proof) or (b"\x00",))
    yield "byte added before", replace(c, proof=tuple(b"\x00" + p for p in c.proof) or (b"\x00",))
    for i in range(len(c.proof)):
        for bit in (0, 3, 7):
            yield f"proof[{i}] bit {bit}", replace(c, proof=_flip(c.proof, i, bit))
    if c.proof:
        yield "removed component", replace(c, proof=c.proof[:-1])
    if len(c.proof) > 1:
        yield "inserted component", replace(c, proof=(c.proof[0], SOME_HASH, *c.proof[1:]))
        yield "swapped components", replace(c, proof=(c.proof[1], c.proof[0], *c.proof[2:]))


def corrupt_consistency(c: ConsistencyCase) -> Iterator[tuple[str, ConsistencyCase]]:
    """Wrong sizes, wrong or swapped roots, empty/extended/truncated proofs, flipped bits."""
    yield "size1 - 1", replace(c, size1=c.size1 - 1)
    yield "size1 + 1", replace(c, size1=c.size1 + 1)
    yield "size1 ^ 2", replace(c, size1=c.size1 ^ 2)
    yield "size2 * 2", replace(c, size2=c.size2 * 2)
    yield "size2 // 2", replace(c, size2=c.size2 // 2)
    yield "wrong root1", replace(c, root1=SOME_HASH)
    yield "wrong root2", replace(c, root2=SOME_HASH)
    yield "short root1", replace(c, root1=b"WrongRoot")
    yield "swapped roots", replace(c, root1=c.root2, root2=c.root1)
    yield "empty proof", replace(c, proof=())
    yield "trailing garbage", replace(c, proof=(*c.proof, b""))
    yield "trailing root1", replace(c, proof=(*c.proof, c.root1))
    yield "trailing root2", replace(c, proof=(*c.proof, c.root2))
    yield "preceding garbage", replace(c, proof=(b"", *c.proof))
    yield "preceding root1", replace(c, proof=(c.root1, *c.proof))
    yield "preceding root2", replace(c, proof=(c.root2, *c.proof))
    yield "preceding proof[0]", replace(c, proof=(c.proof[0], *c.proof))
    yield "truncated proof", replace(c, proof=c.proof[:-1])
    for i in range(len(c.proof)):
        for bit in (0, 4, 7):
            yield f"proof[{i}] bit {bit}", replace(c, proof=_flip(c.proof, i, bit))
