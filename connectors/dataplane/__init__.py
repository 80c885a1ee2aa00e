"""The provider's data plane: EDR tokens, pull endpoint, push worker, usage enforcement.

- :mod:`connectors.dataplane.web` — ``init_app`` (node component), pull and refresh routes.
- :mod:`connectors.dataplane.flow` — :class:`DataPlaneFlow`, the DSP ``DataFlow``.
- :mod:`connectors.dataplane.service` — :func:`build_dataplane`, :class:`DataPlane`.
- :mod:`connectors.dataplane.gate` — usage control on every access.
- :mod:`connectors.dataplane.tokens` / :mod:`connectors.dataplane.edr` — tokens and EDRs.
- :mod:`connectors.dataplane.sources` — file, HTTP and SQL sources, streamed.
- :mod:`connectors.dataplane.push` / :mod:`connectors.dataplane.jobs` — push transfers.
- :mod:`connectors.dataplane.recorder` — the access log (table + ledger ``data-use``).
"""
