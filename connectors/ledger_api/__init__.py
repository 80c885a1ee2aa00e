"""The node's transparency log over HTTP.

Three surfaces, each a thin translation onto :class:`~connectors.ledger_api.service.LedgerService`:

- :mod:`.public` — checkpoint and proofs, for anyone (auditors, witnesses, peers);
- :mod:`.peer` — entries (record + salt) for the parties to a record and for auditors;
- :mod:`.management` — EPCIS 2.0 capture/query and proof bundles, for the operator.

The access rule for entries lives in :mod:`.access` as pure functions.
"""
