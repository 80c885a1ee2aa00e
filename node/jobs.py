"""The node's own periodic jobs: purge expired token ids, refresh member registries."""

from __future__ import annotations

import logging

from connectors.identity.errors import PeerAuthError
from node.context import NodeContext
from node.worker import JobRegistry

log = logging.getLogger("autospace.worker")
REPLAY_PURGE_INTERVAL = 300.0


def register_identity_jobs(registry: JobRegistry, ctx: NodeContext) -> None:
    registry.register("identity.replay_purge", REPLAY_PURGE_INTERVAL, ctx.replay.purge)
    if ctx.registries is not None and ctx.anchor_keys is not None:
        registries, anchors = ctx.registries, list(ctx.anchor_keys.anchors)

        def refresh() -> None:
            for did in anchors:
                try:
                    registries.refresh(did)
                except PeerAuthError as exc:
                    log.warning("registry refresh of %s failed: %s", did, exc.detail)

        registry.register("identity.registry_refresh",
                          ctx.config.trust.registry_refresh_seconds, refresh)
