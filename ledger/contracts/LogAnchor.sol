// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LogAnchor: anchors signed checkpoints of autospace transparency logs.
/// @notice Only the deploying account (the node's key) may anchor. A root, once anchored
///         for (origin, tree size), can never be replaced by a different one: the chain
///         refuses a rewritten history instead of recording it.
contract LogAnchor {
    address public immutable owner;

    /// keccak256(origin) => tree size => root hash
    mapping(bytes32 => mapping(uint64 => bytes32)) public rootOf;
    /// keccak256(origin) => largest anchored tree size
    mapping(bytes32 => uint64) public latestSize;

    event Anchored(bytes32 indexed originHash, uint64 indexed treeSize, bytes32 root, string origin);

    error NotOwner();
    error EmptyRoot();
    error ConflictingRoot(bytes32 anchored);

    constructor() {
        owner = msg.sender;
    }

    /// @notice Record that the log `origin` had root `root` at `treeSize` leaves.
    function anchor(string calldata origin, uint64 treeSize, bytes32 root) external {
        if (msg.sender != owner) revert NotOwner();
        if (root == bytes32(0)) revert EmptyRoot();
        bytes32 key = keccak256(bytes(origin));
        bytes32 existing = rootOf[key][treeSize];
        if (existing != bytes32(0) && existing != root) revert ConflictingRoot(existing);
        if (existing == bytes32(0)) {
            rootOf[key][treeSize] = root;
        }
        if (treeSize > latestSize[key]) {
            latestSize[key] = treeSize;
        }
        emit Anchored(key, treeSize, root, origin);
    }
}
