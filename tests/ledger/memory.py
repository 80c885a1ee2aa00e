"""An in-memory NodeSource for tests: every perfect subtree of a list of leaves."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.rfc9162 import NodeId, leaf_hash, node_hash


class MemoryTree:
    """Stores the hash of every perfect subtree, as the database tables do."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.size = 0
        for leaf in leaves:
            self.append(leaf)

    def append(self, data: bytes) -> None:
        index, h, level = self.size, leaf_hash(data), 0
        self.nodes[NodeId(0, index)] = h
        while index & 1:
            h = node_hash(self.nodes[NodeId(level, index - 1)], h)
            index >>= 1
            level += 1
            self.nodes[NodeId(level, index)] = h
        self.size += 1

    def get_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {i: self.nodes[i] for i in ids if i in self.nodes}
