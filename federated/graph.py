"""Neighbour graphs and threshold parameters for SecAgg+ (Bell et al., CCS 2020).

Every party derives the same graph from the public round seed: participants are ordered by
SHA-256(seed || id) and each is joined to its ``degree/2`` nearest on either side of that ring
(a randomly relabelled Harary graph, the construction Bell et al. analyse). When the degree
reaches ``n - 1`` this is the complete graph of the original SecAgg (Bonawitz et al., CCS 2017).

Parameters. A participant's secrets are shared among its neighbourhood of ``m = degree + 1``
holders (neighbours and itself) with threshold ``t = floor(m/2) + 1``: a strict majority, so the
coordinator together with fewer than half of a neighbourhood learns nothing, and a client refuses
to reveal both secrets of one peer. The degree is the smallest even number such that, with each
client dropping independently with probability ``max_dropout``, the chance that any of the ``n``
neighbourhoods keeps fewer than ``t`` holders is below ``2**-failure_bits`` (a union bound over
exact binomial tails). This grows as O(log n) for a fixed dropout rate.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from federated.errors import ProtocolError

GRAPH_LABEL = b"autospace/secagg/v1/graph"


@dataclass(frozen=True)
class GraphParameters:
    """Degree of the neighbour graph and reconstruction threshold per neighbourhood."""

    degree: int
    threshold: int


def _binomial_tail(m: int, p: float, more_than: int) -> float:
    """P[Binomial(m, p) > more_than]."""
    return sum(math.comb(m, j) * p**j * (1 - p) ** (m - j) for j in range(more_than + 1, m + 1))


def majority_threshold(holders: int) -> int:
    """Strict majority of ``holders`` share holders."""
    return holders // 2 + 1


def choose_parameters(
    n: int, max_dropout: float = 0.3, failure_bits: int = 20
) -> GraphParameters:
    """Smallest even degree whose neighbourhoods survive ``max_dropout`` (see module doc)."""
    if n < 2:
        raise ProtocolError("a cohort needs at least two participants", found=str(n))
    if not 0 <= max_dropout < 0.5:
        raise ProtocolError("max_dropout must be in [0, 0.5)", found=str(max_dropout))
    target = 2.0**-failure_bits
    degree = 2
    while degree < n - 1:
        m = degree + 1
        t = majority_threshold(m)
        if n * _binomial_tail(m, max_dropout, m - t) <= target:
            return GraphParameters(degree, t)
        degree += 2
    return GraphParameters(n - 1, majority_threshold(n))


def ring_order(cohort: Sequence[str], seed: bytes) -> list[str]:
    """The cohort ordered by a keyed hash of the public round seed (same for every party)."""
    def key(pid: str) -> bytes:
        return hashlib.sha256(GRAPH_LABEL + seed + pid.encode()).digest()

    return sorted(cohort, key=key)


def neighbours(cohort: Sequence[str], degree: int, seed: bytes) -> dict[str, frozenset[str]]:
    """Neighbour sets (excluding the participant itself) of the graph for ``seed``."""
    n = len(cohort)
    if len(set(cohort)) != n:
        raise ProtocolError("cohort has duplicate participant ids")
    if degree >= n - 1:
        everyone = frozenset(cohort)
        return {pid: everyone - {pid} for pid in cohort}
    if degree < 2 or degree % 2:
        raise ProtocolError("sparse degree must be even and >= 2", found=str(degree))
    order = ring_order(cohort, seed)
    half = degree // 2
    result: dict[str, frozenset[str]] = {}
    for pos, pid in enumerate(order):
        near = {order[(pos + k) % n] for k in range(-half, half + 1) if k}
        result[pid] = frozenset(near)
    return result
