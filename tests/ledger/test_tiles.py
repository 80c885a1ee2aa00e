"""Tile layout: growing a tree batch by batch stores exactly its perfect subtrees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import tiles
from ledger.rfc9162 import NodeId
from tests.ledger.memory import MemoryTree


def _data(i: int) -> bytes:
    return f"leaf-{i}".encode()


def _grow_in_batches(sizes: list[int]) -> tuple[dict[int, tiles.Tile], int]:
    """Apply batches as the log does: read the edge, grow, replace tiles by key."""
    store: dict[int, tiles.Tile] = {}
    n = 0
    tree = MemoryTree()
    for batch in sizes:
        hashes = []
        for i in range(n, n + batch):
            tree.append(_data(i))
            hashes.append(tree.nodes[NodeId(0, i)])
        edge = {k: store[k] for k in tiles.edge_keys(n)}
        assert len(edge) == len(tiles.edge_keys(n))
        for t in tiles.grow(n, edge, hashes):
            store[t.key] = t
        n += batch
    return store, n


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12))
def test_batches_store_every_perfect_subtree_once(sizes):
    store, n = _grow_in_batches(sizes)
    expected = MemoryTree([_data(i) for i in range(n)]).nodes
    held = dict(tiles.unpack(store.values()))
    assert held == expected
    # every tile is well formed and only the edge tiles are partial
    partial = {k for k, t in store.items() if t.width < tiles.TILE_WIDTH}
    assert partial == set(tiles.edge_keys(n))
    for node, value in list(expected.items())[:200]:
        key, row, position = tiles.locate(node)
        assert tiles.node_in(store[key], row, position) == value


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=5000))
def test_pack_matches_grow(n):
    tree = MemoryTree([_data(i) for i in range(n)])
    levels: dict[int, list[bytes]] = {}
    for node in sorted(tree.nodes, key=lambda x: (x.level, x.index)):
        levels.setdefault(node.level, []).append(tree.nodes[node])
    grown = tiles.grow(0, {}, [tree.nodes[NodeId(0, i)] for i in range(n)])
    assert tiles.pack(n, levels) == grown


def test_tile_counts_and_sizes():
    store, n = _grow_in_batches([1000, 24])
    assert n == 1024
    # 64 tiles of leaves, 4 of level-4 nodes, one of level-8 nodes (width 4)
    assert len(store) == 64 + 4 + 1
    full = store[tiles.tile_key(0, 0)]
    assert full.width == 16 and len(full.hashes) == 30 * 32 == tiles.tile_size(16)
    assert store[tiles.tile_key(2, 0)].width == 4
    assert tiles.edge_keys(1024) == [tiles.tile_key(2, 0)]
    assert tiles.edge_keys(0) == []
    assert tiles.edge_keys(17) == [tiles.tile_key(0, 1), tiles.tile_key(1, 0)]


def test_node_in_refuses_positions_the_tile_lacks():
    store, _ = _grow_in_batches([5])
    tile = store[tiles.tile_key(0, 0)]
    assert tile.width == 5
    assert tiles.node_in(tile, 0, 4) is not None
    assert tiles.node_in(tile, 0, 5) is None
    assert tiles.node_in(tile, 2, 0) is not None  # leaves 0..3
    assert tiles.node_in(tile, 3, 0) is None  # needs 8 leaves
    assert tiles.node_in(tile, 1, -1) is None


def test_malformed_or_mismatched_edge_is_refused():
    store, n = _grow_in_batches([21])
    edge = {k: store[k] for k in tiles.edge_keys(n)}
    key = tiles.edge_keys(n)[0]
    short = {**edge, key: edge[key]._replace(hashes=edge[key].hashes[:-1])}
    with pytest.raises(ValueError, match="malformed"):
        tiles.grow(n, short, [hashlib.sha256(b"x").digest()])
    # an edge from another tree size
    with pytest.raises(ValueError, match="does not match"):
        tiles.grow(n + 1, edge, [hashlib.sha256(b"x").digest()])
    with pytest.raises(ValueError, match="level 0"):
        tiles.pack(3, {0: [b"\0" * 32] * 2})
