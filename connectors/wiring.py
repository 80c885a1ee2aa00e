"""The connector as a node component: builds the DSP protocol and mounts its HTTP surfaces.

``init_app(app)`` (listed in ``node.app.COMPONENTS``) reads ``[connector]`` from the node
configuration::

    [connector]
    protocol_path = "/protocol"   # DSP base path; protocol URL = public_url + protocol_path
    profile = "odrl"             # policy profile (default: [policy] profile, else odrl)
    message_log = ""             # JSON-lines file of every DSP message (tests, debugging)
    ledger = true                # agreements and transfer events into [ledger] origin's log

and wires :class:`~connectors.dsp.service.DspProtocol` with the policy engine
(:class:`~connectors.policy_checker.EnginePolicyChecker`, ``engine_normaliser``), the
outbox sender over the signed peer client, the ledger recorder (a store hook: agreements
and transfer events commit with the state change), and a data flow looked up at call time in
``app.extensions["autospace.dataflow"]`` (set by the data-plane component; without one,
transfers are refused with a clear reason). Background delivery: a dispatcher thread per
process, handed the rows each commit leased to it (the protocol's fast path) and woken
after every commit, plus the ``connector.outbox`` worker job.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from connectors import dsp_http, management
from connectors.delivery import Dispatcher, MessageLog, PeerDirectory, PeerSender
from connectors.dsp import outbox
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.messages import DataAddress
from connectors.dsp.policy import engine_normaliser
from connectors.dsp.service import DspProtocol, FastPath
from connectors.dsp.store import ConnectorStore
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.transfer_handlers import DataFlowError
from connectors.ledger_hook import recorder_for
from connectors.management import edc
from connectors.management.edrs import continue_edr_requests
from connectors.policy_checker import DEFAULT_PROFILE, CachedNormaliser, EnginePolicyChecker
from connectors.runtime import ConnectorRuntime

#: Where a data-plane component puts its ``DataFlow`` (``start(transfer, agreement)``).
DATAFLOW_EXTENSION = "autospace.dataflow"
#: Where this component puts its :class:`ConnectorRuntime`.
RUNTIME_EXTENSION = "autospace.connector"
JOB_PROVIDER = "connectors.wiring:register_jobs"  # listed in node.worker.JOB_PROVIDERS
NODE_EXTENSION = "autospace.node"  # node.context.CONTEXT_EXTENSION (connectors do not import node)
OUTBOX_JOB_INTERVAL = 0.5
DEFAULT_PROTOCOL_PATH = "/protocol"

_RUNTIMES: dict[int, ConnectorRuntime] = {}  # id(NodeContext) -> runtime (worker jobs)


class ExtensionDataFlow:
    """The data flow registered by the data-plane component, looked up when a transfer
    starts (components may be initialised in any order)."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def start(self, transfer: TransferProcessEntity,
              agreement: ContractAgreement) -> DataAddress | None:
        flow = self.app.extensions.get(DATAFLOW_EXTENSION)
        if flow is None:
            raise DataFlowError(
                "this node runs no data plane, so it cannot serve transfers; the operator "
                "must enable the data-plane component"
            )
        return flow.start(transfer, agreement)


def settings(config: Any) -> dict[str, Any]:
    """``[connector]`` with defaults."""
    section = config.section("connector")
    policy = config.section("policy")
    path = str(section.get("protocol_path") or DEFAULT_PROTOCOL_PATH)
    return {
        "protocol_path": "/" + path.strip("/"),
        "profile": str(section.get("profile") or policy.get("profile") or DEFAULT_PROFILE),
        "message_log": str(section.get("message_log") or ""),
    }


def _node_context(app: Flask) -> Any:
    """The node's shared services (``node.context.NodeContext``), read from the app so that
    connectors never import ``node``."""
    return app.extensions[NODE_EXTENSION]


def build_runtime(app: Flask) -> ConnectorRuntime:
    """The connector services for ``app``'s node context."""
    ctx = _node_context(app)
    cfg = settings(ctx.config)

    def clock() -> datetime:
        return datetime.fromtimestamp(ctx.clock(), UTC)

    recorder = recorder_for(ctx.config, clock)
    store = ConnectorStore(ctx.engine, clock=clock, hooks=() if recorder is None else (recorder,))
    checker = EnginePolicyChecker(store, profile=cfg["profile"], clock=clock)
    protocol_url = ctx.config.public_url.rstrip("/") + cfg["protocol_path"]
    protocol = DspProtocol(
        store,
        participant_id=ctx.config.participant_id,
        protocol_url=protocol_url,
        checker=checker,
        data_flow=ExtensionDataFlow(app),
        clock=clock,
        normaliser=CachedNormaliser(engine_normaliser),
    )
    authorities = list(ctx.anchor_keys.anchors) if ctx.anchor_keys is not None else []
    directory = PeerDirectory(ctx.registries, authorities)
    messages = MessageLog(Path(cfg["message_log"]) if cfg["message_log"] else None)
    sender = PeerSender(ctx.peer_client, directory, messages)
    host = socket.gethostname()
    owner = outbox.owner_id(host, os.getpid(), f"{id(protocol):x}")
    dispatcher = Dispatcher(protocol, sender, owner=owner)
    # rows a request writes are leased to this dispatcher in that transaction and sent
    # straight after the commit (no lease transaction on a negotiation's critical path)
    protocol.fast_path = FastPath(owner, dispatcher.hand_over)
    dispatcher.on_start = lambda: outbox.release_orphaned_leases(
        ctx.engine, host, now=clock()
    )
    rt = ConnectorRuntime(
        protocol=protocol, store=store, checker=checker, directory=directory,
        peer_client=ctx.peer_client, dispatcher=dispatcher, messages=messages, clock=clock,
        profile=cfg["profile"], protocol_path=cfg["protocol_path"], http=ctx.http,
    )
    dispatcher.after_drain = lambda: continue_edr_requests(rt)
    return rt


def runtime(app: Flask) -> ConnectorRuntime:
    """The connector runtime of ``app`` (after ``init_app``)."""
    return app.extensions[RUNTIME_EXTENSION]


def init_app(app: Flask) -> None:
    """Component entry point: DSP routes (PEER), version document (PUBLIC), EDC management
    API (MANAGEMENT), JSON-LD contexts; the node's worker runs :func:`register_jobs`."""
    edc.register_contexts()
    rt = build_runtime(app)
    app.extensions[RUNTIME_EXTENSION] = rt
    ctx = _node_context(app)
    _RUNTIMES[id(ctx)] = rt
    ctx.blueprints.add(
        dsp_http.protocol_blueprint(rt.protocol, base_path=rt.protocol_path,
                                    messages=rt.messages, after_commit=rt.dispatcher.kick),
        surface="peer",
    )
    ctx.blueprints.add(dsp_http.version_blueprint(rt.protocol, base_path=rt.protocol_path),
                       surface="public")
    for bp in management.blueprints(rt):
        ctx.blueprints.add(bp, surface="management")
    # Deliver what a previous run left in the outbox (crash, restart) without waiting for a
    # request; a forked child (preloading servers) starts its own thread.
    if _has_pending(rt):
        rt.dispatcher.kick()
    os.register_at_fork(after_in_child=lambda: _has_pending(rt) and rt.dispatcher.kick())


def _has_pending(rt: ConnectorRuntime) -> bool:
    try:
        return outbox.pending_count(rt.store.engine) > 0
    except Exception:  # an unreachable store: the worker job and the next request retry
        return False


def register_jobs(registry: Any, ctx: Any) -> None:
    """Worker job provider: deliver due outbox rows and continue EDR requests."""
    rt = _RUNTIMES.get(id(ctx))
    if rt is None:
        return  # the connector component is not part of this app

    def deliver() -> None:
        rt.dispatcher.prepare()
        rt.dispatcher.drain()
        continue_edr_requests(rt)

    registry.register("connector.outbox", OUTBOX_JOB_INTERVAL, deliver)
