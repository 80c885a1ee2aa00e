"""Neighbour graph and threshold parameters."""

from __future__ import annotations

import os

import pytest

from federated.errors import ProtocolError
from federated.graph import choose_parameters, neighbours


def test_complete_graph_for_small_cohorts() -> None:
    p = choose_parameters(10, 0.3)
    assert p.degree == 9 and p.threshold == 6
    g = neighbours([f"c{i}" for i in range(10)], p.degree, b"s" * 32)
    assert all(len(v) == 9 for v in g.values())


def test_sparse_graph_is_symmetric_regular_and_seed_determined() -> None:
    ids = [f"c{i:03d}" for i in range(200)]
    p = choose_parameters(200, 0.1)
    assert p.degree < 199 and p.degree % 2 == 0
    seed = os.urandom(32)
    g = neighbours(ids, p.degree, seed)
    assert g == neighbours(list(reversed(ids)), p.degree, seed)
    assert g != neighbours(ids, p.degree, os.urandom(32))
    for pid, near in g.items():
        assert len(near) == p.degree and pid not in near
        assert all(pid in g[other] for other in near)


def test_degree_grows_logarithmically() -> None:
    degrees = [choose_parameters(n, 0.1).degree for n in (1000, 10_000, 100_000)]
    assert degrees == sorted(degrees)
    assert degrees[-1] < 4 * degrees[0]
    for n in (100, 1000):
        p = choose_parameters(n, 0.3)
        assert p.threshold == (p.degree + 1) // 2 + 1


def test_invalid_parameters() -> None:
    with pytest.raises(ProtocolError):
        choose_parameters(1)
    with pytest.raises(ProtocolError):
        choose_parameters(10, 0.5)
    with pytest.raises(ProtocolError):
        neighbours(["a", "a", "b"], 1, b"")
    with pytest.raises(ProtocolError):
        neighbours([f"c{i}" for i in range(10)], 3, b"")
