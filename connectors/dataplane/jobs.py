"""The data plane's periodic job: push transfers (``"connectors.dataplane.jobs:register"``).

Add ``"connectors.dataplane.jobs:register"`` to ``node.worker.JOB_PROVIDERS``; the worker
calls it with its registry and the node context (duck-typed: ``engine``, ``keys``,
``config``, ``clock``), as the embedded worker and ``autospace worker`` both do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.dataplane.push import PushRunner
from connectors.dataplane.service import build_dataplane
from connectors.dataplane.web import dataplane_settings, ledger_origin_of
from connectors.dsp.store import ConnectorStore

PUSH_INTERVAL = 2.0  # seconds between looks for STARTED push transfers


def push_runner(ctx: Any) -> PushRunner:
    """A push runner over the node context ``ctx``."""
    settings = dataplane_settings(ctx)
    plane = build_dataplane(
        ctx.engine, ctx.keys, participant_id=ctx.config.participant_id,
        public_url=ctx.config.public_url, clock=ctx.clock,
        ledger_origin=ledger_origin_of(ctx, settings),
    )
    store = ConnectorStore(ctx.engine, clock=lambda: datetime.fromtimestamp(ctx.clock(), UTC))
    return PushRunner(plane, store, participant_id=ctx.config.participant_id)


def register(registry: Any, ctx: Any) -> None:
    """Job provider: ``dataplane.push`` every :data:`PUSH_INTERVAL` seconds."""
    runner = push_runner(ctx)
    registry.register("dataplane.push", PUSH_INTERVAL, runner.run_due)
