"""Tiled storage of the log's perfect subtrees (pure functions, no I/O).

Why tiles: one row per perfect subtree costs about two B-tree insertions per appended leaf,
as much as the entry itself. A tile groups the nodes of ``TILE_HEIGHT`` consecutive levels:
the tile ``(group g, index t)`` holds the nodes of level ``4g`` numbered ``16t .. 16t+15``
and, above them, the 8 + 4 + 2 nodes of the next three levels that those 16 cover. Level
``4g + 4`` starts the next group. So about one row is written per 15 leaves, and an
inclusion proof reads about one tile per group instead of one row per level.

A tile is stored as its *width* (base nodes present, 1..16) and the concatenation of its
hashes row by row (row ``r`` holds ``width >> r`` hashes). Only the tiles on the right edge
of the tree can be partial; they are rewritten as the tree grows, every other tile is
written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from ledger.rfc9162 import HASH_SIZE, NodeId, node_hash

TILE_HEIGHT = 4
TILE_WIDTH = 1 << TILE_HEIGHT
# Bits of a tile key that hold the group (trees up to 2**63 leaves need 16 groups).
GROUP_BITS = 6


class Tile(NamedTuple):
    """One stored tile: its key, how many base nodes it has, and its hashes row by row."""

    key: int
    width: int
    hashes: bytes


def tile_key(group: int, index: int) -> int:
    """Pack (group, tile index) into one integer primary key."""
    return (index << GROUP_BITS) | group


def split_key(key: int) -> tuple[int, int]:
    """(group, tile index) of a tile key."""
    return key & ((1 << GROUP_BITS) - 1), key >> GROUP_BITS


def locate(node: NodeId) -> tuple[int, int, int]:
    """(tile key, row, position in the row) of a perfect subtree."""
    group, row = divmod(node.level, TILE_HEIGHT)
    shift = TILE_HEIGHT - row
    index = node.index >> shift
    return tile_key(group, index), row, node.index - (index << shift)


def row_offsets(width: int) -> list[int]:
    """Where each row starts in a tile of ``width`` base nodes, counted in hashes."""
    out, at = [], 0
    for row in range(TILE_HEIGHT):
        out.append(at)
        at += width >> row
    return out


def node_in(tile: Tile, row: int, position: int) -> bytes | None:
    """The hash at (row, position) of ``tile``, or None when the tile does not hold it."""
    if not 0 <= position < tile.width >> row:
        return None
    at = (row_offsets(tile.width)[row] + position) * HASH_SIZE
    value = tile.hashes[at : at + HASH_SIZE]
    return value if len(value) == HASH_SIZE else None


def tile_size(width: int) -> int:
    """Bytes of a well-formed tile of ``width`` base nodes."""
    return sum(width >> row for row in range(TILE_HEIGHT)) * HASH_SIZE


def edge_keys(size: int) -> list[int]:
    """Keys of the partial tiles on the right edge of a tree of ``size`` leaves.

    They hold every node of the tree's frontier (its rightmost perfect subtrees): a level
    whose bit is set in ``size`` lies in a group whose base count is not a multiple of 16.
    """
    keys = []
    group = 0
    while size >> (TILE_HEIGHT * group):
        base = size >> (TILE_HEIGHT * group)
        if base % TILE_WIDTH:
            keys.append(tile_key(group, base >> TILE_HEIGHT))
        group += 1
    return keys


def rows_of(tile: Tile) -> list[list[bytes]]:
    """The tile's hashes split into rows (ValueError when its length does not fit its width)."""
    if not 1 <= tile.width <= TILE_WIDTH or len(tile.hashes) != tile_size(tile.width):
        raise ValueError(f"tile {tile.key} is malformed")
    data = tile.hashes
    out = []
    for row, start in enumerate(row_offsets(tile.width)):
        first, last = start * HASH_SIZE, (start + (tile.width >> row)) * HASH_SIZE
        out.append([data[at : at + HASH_SIZE] for at in range(first, last, HASH_SIZE)])
    return out


def grow(size: int, edge: Mapping[int, Tile], leaf_hashes: Sequence[bytes]) -> list[Tile]:
    """The tiles to write after appending ``leaf_hashes`` to a tree of ``size`` leaves.

    ``edge`` holds the partial edge tiles of the current tree (see ``edge_keys``). Returned
    tiles replace those with the same key. Each new interior node is hashed exactly once:
    a level's new nodes are paired, with the stored left sibling where the level's old
    count is odd, to give the next level's new nodes.
    """
    old_n, new_n = size, size + len(leaf_hashes)
    out: list[Tile] = []
    new: list[bytes] = list(leaf_hashes)
    group = 0
    while new:
        base_level = TILE_HEIGHT * group
        first = (old_n >> base_level) >> TILE_HEIGHT
        old = edge.get(tile_key(group, first))
        old_rows = rows_of(old) if old is not None else [[] for _ in range(TILE_HEIGHT)]
        rows: list[list[bytes]] = []
        for row in range(TILE_HEIGHT):
            level = base_level + row
            start = first << (TILE_HEIGHT - row)
            seq = old_rows[row] + new
            if start + len(old_rows[row]) != old_n >> level:
                raise ValueError(f"edge tile of group {group} does not match tree size {size}")
            rows.append(seq)
            lo, hi = old_n >> (level + 1), new_n >> (level + 1)
            new = [node_hash(seq[2 * m - start], seq[2 * m - start + 1]) for m in range(lo, hi)]
        out.extend(_cut(group, first, rows, new_n >> base_level))
        group += 1
    return out


def pack(size: int, levels: Mapping[int, Sequence[bytes]]) -> list[Tile]:
    """Tiles holding given perfect subtrees of a tree of ``size`` leaves, as they are.

    ``levels[L]`` lists the hashes of level ``L`` from index 0; it must have ``size >> L``
    of them. Used to move storage from one layout to another without recomputing (and so
    without silently repairing) any stored hash.
    """
    out: list[Tile] = []
    group = 0
    while size >> (TILE_HEIGHT * group):
        base_level = TILE_HEIGHT * group
        rows = []
        for row in range(TILE_HEIGHT):
            level = base_level + row
            seq = list(levels.get(level, ()))
            if len(seq) != size >> level:
                raise ValueError(f"level {level} has {len(seq)} nodes, expected {size >> level}")
            rows.append(seq)
        out.extend(_cut(group, 0, rows, size >> base_level))
        group += 1
    return out


def unpack(tiles: Iterable[Tile]) -> Iterator[tuple[NodeId, bytes]]:
    """Every node the tiles hold, with its id."""
    for tile in tiles:
        group, index = split_key(tile.key)
        for row, hashes in enumerate(rows_of(tile)):
            level = TILE_HEIGHT * group + row
            first = index << (TILE_HEIGHT - row)
            for i, value in enumerate(hashes):
                yield NodeId(level, first + i), value


def _cut(group: int, first: int, rows: list[list[bytes]], base_count: int) -> list[Tile]:
    """Split a group's rows (starting at tile ``first``) into tiles."""
    out = []
    for index in range(first, (base_count + TILE_WIDTH - 1) >> TILE_HEIGHT):
        width = min(TILE_WIDTH, base_count - (index << TILE_HEIGHT))
        parts: list[bytes] = []
        for row in range(TILE_HEIGHT):
            at = (index - first) << (TILE_HEIGHT - row)
            parts.extend(rows[row][at : at + (width >> row)])
        out.append(Tile(tile_key(group, index), width, b"".join(parts)))
    return out
