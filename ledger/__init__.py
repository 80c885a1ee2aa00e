"""RFC 9162 transparency log, signed checkpoints, EVM anchoring and audit proofs (library).

No import of ``node/`` or ``connectors/``. Entry points (see docs/ledger.md):

- ``ledger.log.Log`` — append records inside the caller's transaction; roots, inclusion and
  consistency proofs; signed checkpoints.
- ``ledger.epcis`` — GS1 EPCIS 2.0 capture, get by eventID, query by identifier and time.
- ``ledger.anchor.Anchorer`` — batches checkpoints onto an EVM chain (``ledger.evm.Chain``).
- ``ledger.audit`` — proof bundles, their verification, checkpoint consistency.
- ``ledger.rfc9162`` / ``ledger.checkpoint`` — the pure proof and signed-note functions.
"""
