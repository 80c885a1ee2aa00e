"""RFC 9162 transparency log, signed checkpoints, EVM anchoring and audit proofs (library)."""
