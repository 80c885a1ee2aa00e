"""The ledger as a node component: one log per node, its HTTP surfaces, and anchoring.

``init_app(app)`` (listed in ``node.app.COMPONENTS``) parses ``[ledger]``
(:class:`ledger.settings.LedgerSettings`), opens the node's log once (origin from the
settings: default ``<public host>/ledger``), and mounts the public, peer and management
routes of :mod:`connectors.ledger_api`. Other components append records *in their own
transaction* through :func:`node_ledger`::

    from node.ledger_service import node_ledger
    with engine.begin() as conn:
        ...  # the business change
        node_ledger(app).append(conn, "contract-agreement", record, record_id=agreement_id)

Anchoring runs in the worker (``autospace worker``, or the one ``autospace serve``
starts): the job provider builds an :class:`ledger.anchor.Anchorer` on the configured
chain — ``embedded`` (an in-process EVM started in the worker, EPHEMERAL) or ``rpc``
(needs ``contract``; see ``autospace ledger deploy``) — and calls ``step()`` every few
seconds. With several workers on PostgreSQL, one holds the anchoring lease at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connectors.ledger_api.management import management_blueprint
from connectors.ledger_api.peer import peer_blueprint
from connectors.ledger_api.public import public_blueprint
from connectors.ledger_api.service import LedgerService, newest_confirmed_anchor
from ledger.anchor import Anchorer, StepReport, anchor_status
from ledger.errors import LedgerError, NotFoundError
from ledger.evm import Chain, start_embedded
from ledger.log import Log
from ledger.settings import LedgerSettings
from node.config import ConfigError, NodeConfig

LEDGER_EXTENSION = "autospace.ledger"
JOB_PROVIDER = "node.ledger_service:register_jobs"
JOB_NAME = "ledger.anchor"
# How often the worker runs an anchoring pass; the pass itself decides whether a batch is
# due ([ledger] anchor_interval_seconds / anchor_max_records), so this only bounds latency.
MAX_STEP_SECONDS = 5.0
MIN_STEP_SECONDS = 0.5

log = logging.getLogger("autospace.ledger")
_SERVICES: dict[int, LedgerService] = {}  # id(NodeContext) -> service (for the job provider)


def ledger_settings(config: NodeConfig) -> LedgerSettings:
    """``[ledger]`` of ``config``; a bad value is a ConfigError naming the key."""
    try:
        return LedgerSettings.from_mapping(config.section("ledger"),
                                           public_url=config.public_url)
    except LedgerError as exc:
        raise ConfigError("ledger", exc.diagnosis) from None


def open_log(engine: Engine, origin: str, *, clock: Any = None) -> Log:
    """Open (creating on first start) the log ``origin``; safe when workers race to create it."""
    kwargs = {"clock": clock} if clock is not None else {}
    try:
        with engine.begin() as conn:
            return Log.open(conn, origin, **kwargs)
    except IntegrityError:  # another process created it between our read and insert
        with engine.begin() as conn:
            return Log.open(conn, origin, create=False, **kwargs)


def node_ledger(app: Flask | None = None) -> LedgerService:
    """The node's ledger service (after ``init_app``): append records, read proofs.

    Raises:
        RuntimeError: the ledger component is not part of this app.
    """
    from flask import current_app

    target = app if app is not None else current_app
    service = target.extensions.get(LEDGER_EXTENSION)
    if service is None:
        raise RuntimeError("the ledger component (node.ledger_service) is not enabled")
    return service


def init_app(app: Flask) -> None:
    """Component entry point: open the log, mount the routes, offer the anchoring job."""
    from node import worker
    from node.context import Surface, node_context

    ctx = node_context(app)
    settings = ledger_settings(ctx.config)

    def clock() -> datetime:
        return datetime.fromtimestamp(ctx.clock(), UTC)

    def opener() -> Log:
        return open_log(ctx.engine, settings.origin, clock=clock)

    try:  # open now when the database is up (the usual case: first appends then never wait)
        log: Log | Callable[[], Log] = opener()
    except SQLAlchemyError as exc:  # down: boot anyway, answer 503, open on first use
        logging.getLogger("autospace").warning(
            "ledger not opened at start-up (database unavailable); it opens on first use",
            extra={"fields": {"error": type(exc).__name__}},
        )
        log = opener
    service = LedgerService(ctx.engine, log, ctx.keys, settings)
    app.extensions[LEDGER_EXTENSION] = service
    _SERVICES[id(ctx)] = service
    ctx.blueprints.add(public_blueprint(service), surface=Surface.PUBLIC)
    ctx.blueprints.add(peer_blueprint(service), surface=Surface.PEER)
    ctx.blueprints.add(management_blueprint(service), surface=Surface.MANAGEMENT)
    if JOB_PROVIDER not in worker.JOB_PROVIDERS:
        worker.JOB_PROVIDERS.append(JOB_PROVIDER)


# -- anchoring in the worker ------------------------------------------------------------------
def _lease_key(origin: str) -> int:
    """A stable signed 64-bit advisory-lock key for the anchorer of ``origin``."""
    digest = hashlib.sha256(b"autospace.ledger.anchor\n" + origin.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def anchoring_lease(engine: Engine, origin: str) -> Iterator[bool]:
    """Whether this process may anchor now: one anchorer per log across workers.

    PostgreSQL: a session advisory lock held for the pass. SQLite (one machine, normally
    one worker): always granted — the anchor rows' state machine still stops double sends.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = _lease_key(origin)
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


class AnchorJob:
    """The worker job: start the chain when first needed, then one `Anchorer.step()` a run."""

    def __init__(self, service: LedgerService, keys: Any) -> None:
        self.service = service
        self.keys = keys
        self.settings = service.settings
        self.anchorer: Anchorer | None = None
        self.chain: Chain | None = None

    def _start(self) -> Anchorer:
        s = self.settings
        account_key = self.keys.evm_private_key("anchor")
        if s.backend == "embedded":
            self.chain, contract = start_embedded(account_key)
            log.warning("ledger anchors go to an EPHEMERAL in-process EVM (backend = "
                        "\"embedded\"): they vanish when this worker exits; use backend = "
                        "\"rpc\" for evidence")
        else:
            assert s.rpc_url is not None and s.contract is not None
            self.chain, contract = Chain.rpc(s.rpc_url), s.contract
        self.anchorer = Anchorer(self.service.engine, self.service.log, self.chain,
                                 contract=contract, account_key=account_key,
                                 signer=self.keys, policy=s.policy, chain_id=s.chain_id)
        return self.anchorer

    def __call__(self) -> StepReport | None:
        with anchoring_lease(self.service.engine, self.service.log.origin) as mine:
            if not mine:
                return None  # another worker anchors this log
            anchorer = self.anchorer or self._start()
            if self.chain is not None and self.chain.ephemeral:
                # The embedded EVM only makes a block per transaction; one block per pass
                # stands in for a live chain so anchors gain their confirmations.
                self.chain.w3.provider.ethereum_tester.mine_blocks(1)  # type: ignore[attr-defined]
            report = anchorer.step()
        if report.error:
            log.warning("anchoring: %s", report.error)
        if report.sent or report.confirmed or report.reset:
            log.info("anchoring", extra={"fields": {
                "created": report.created, "sent": report.sent,
                "confirmed": report.confirmed, "requeued": report.reset}})
        return report


def step_interval(settings: LedgerSettings) -> float:
    return max(MIN_STEP_SECONDS, min(MAX_STEP_SECONDS, settings.policy.interval_seconds))


def register_jobs(registry: Any, ctx: Any) -> None:
    """Worker job provider: the anchoring pass of this node's log."""
    service = _SERVICES.get(id(ctx))
    if service is None:
        return  # the ledger component is not part of this app
    s = service.settings
    if s.backend == "rpc" and not s.contract:
        log.warning("ledger anchoring is off: [ledger] backend = \"rpc\" needs a contract "
                    "address (deploy one with `autospace ledger deploy`)")
        return
    registry.register(JOB_NAME, step_interval(s), AnchorJob(service, ctx.keys))


# -- for `autospace status` ---------------------------------------------------------------
def ledger_status(config: NodeConfig, engine: Engine) -> dict[str, Any]:
    """Ledger lines of ``autospace status``: backend (ephemeral?), tree size, last anchor."""
    try:
        settings = ledger_settings(config)
    except ConfigError as exc:
        return {"error": str(exc)}
    out: dict[str, Any] = {"origin": settings.origin, "backend": settings.backend,
                           "ephemeral": settings.ephemeral, "treeSize": 0,
                           "lastAnchor": None, "lastError": None}
    try:
        with engine.connect() as conn:
            lg = Log.open(conn, settings.origin, create=False)
            status = anchor_status(conn, lg)
            out.update(treeSize=status["log_size"], lastError=status["last_error"],
                       lastAnchor=newest_confirmed_anchor(conn, lg))
    except NotFoundError:
        pass  # the log is created when the server first starts
    except LedgerError as exc:
        out["error"] = exc.diagnosis
    except SQLAlchemyError as exc:
        out["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return out


def ledger_line(status: dict[str, Any]) -> str:
    """One rich-markup line for ``autospace status`` (warns loudly about the ephemeral chain)."""
    if "error" in status and "origin" not in status:
        return f"[red]{status['error']}[/]"
    anchor = status.get("lastAnchor")
    parts = [f"{status['origin']}: {status['treeSize']} records",
             (f"last anchor {anchor['treeSize']} leaves in block {anchor['blockNumber']} "
              f"(tx {anchor['txHash']})") if anchor else "not anchored yet"]
    if status.get("ephemeral"):
        parts.append("[yellow]EPHEMERAL chain (embedded): anchors vanish on restart, not "
                     "evidence; set \\[ledger] backend = \"rpc\"[/]")
    else:
        parts.append(f"chain: {status['backend']}")
    if status.get("lastError") or status.get("error"):
        parts.append(f"[red]{status.get('lastError') or status.get('error')}[/]")
    return "; ".join(parts)
