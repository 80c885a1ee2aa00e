"""Federated learning as a node component: the peer endpoint and the management routes.

- peer ``POST /peer/fl/messages``: one round message (``federated.vocabulary`` wire form)
  in, the reply out.
- management ``GET /management/v3/fl/runs``: runs this node coordinated, newest first.
- management ``POST /management/v3/fl/runs``: body ``{"task": "<task TOML>"}``; starts the
  run in a background thread; 202 ``{"runId"}``.
- management ``GET /management/v3/fl/runs/{runId}``: task file, status, every round.
- management ``GET /management/v3/fl/runs/{runId}/rounds``: per-round metrics, refusals
  (with reasons), dropouts.

``[federated]`` in the node configuration: ``stage_timeout_seconds`` (default 30) bounds how
long a coordinator waits for one stage's replies; later replies count as dropouts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask_smorest import Blueprint as ApiBlueprint

from connectors.http.peer import current_peer
from connectors.http.problem import ProblemError
from federated.errors import FederatedError, ProtocolError, TaskFileError
from federated.task import loads_task
from federated.vocabulary import from_wire, to_wire
from node.config import ConfigError, NodeConfig
from node.context import NodeContext, Surface, node_context
from node.fl.negotiate import negotiator_for_app
from node.fl.owner import OwnerService
from node.fl.runs import CoordinatorEnv, directory_for, get_run, list_runs, new_run_id, run_task

log = logging.getLogger("autospace.fl")
FL_EXTENSION = "autospace.fl"
DEFAULT_STAGE_TIMEOUT = 30.0


def stage_timeout(config: NodeConfig) -> float:
    """``[federated] stage_timeout_seconds`` (a positive number)."""
    raw = config.section("federated").get("stage_timeout_seconds", DEFAULT_STAGE_TIMEOUT)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError("federated", f"stage_timeout_seconds must be a number, "
                                       f"found {raw!r}") from None
    if value <= 0:
        raise ConfigError("federated", "stage_timeout_seconds must be positive")
    return value


def owner_service(ctx: NodeContext) -> OwnerService:
    directory = directory_for(ctx.registries, ctx.config.authority_did, ctx.resolver)
    return OwnerService(engine=ctx.engine, home=ctx.config.home, did=ctx.config.did,
                        participant_id=ctx.config.participant_id, signer=ctx.keys.sign,
                        directory=directory, clock=ctx.clock)


def coordinator_env(app: Flask) -> CoordinatorEnv:
    ctx = node_context(app)
    ledger = None
    try:
        from node.ledger_service import node_ledger

        ledger = node_ledger(app).log
    except RuntimeError:
        log.warning("fl rounds are not logged: the ledger component is not enabled")
    return CoordinatorEnv(ctx.config.did, ctx.engine, ctx.peer_client,
                          directory_for(ctx.registries, ctx.config.authority_did, ctx.resolver),
                          ledger, stage_timeout(ctx.config), ctx.clock,
                          negotiator=negotiator_for_app(app))


def peer_blueprint(owner: OwnerService) -> Blueprint:
    bp = Blueprint("fl_peer", __name__, url_prefix="/peer/fl")

    @bp.post("/messages")
    def message() -> Any:
        try:
            msg = from_wire(request.get_json(silent=True))
        except ProtocolError as exc:
            raise ProblemError(400, "Bad Request", f"not a federated round message: {exc}",
                               reason="bad_message") from None
        return jsonify(to_wire(owner.handle(msg, current_peer())))

    return bp


def management_blueprint(app: Flask) -> ApiBlueprint:
    bp = ApiBlueprint("fl", __name__, url_prefix="/management/v3/fl",
                      description="Federated learning runs this node coordinates")

    @bp.route("/runs", methods=["GET"])
    @bp.doc(summary="List federated runs, newest first")
    def runs() -> Any:
        with node_context().engine.connect() as conn:
            return jsonify(list_runs(conn))

    @bp.route("/runs", methods=["POST"])
    @bp.doc(summary="Start a federated run from a task file (TOML) in the background")
    def start() -> Any:
        body = request.get_json(silent=True)
        text = body.get("task") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ProblemError(400, "Bad Request", 'send {"task": "<task file TOML>"}')
        try:
            task = loads_task(text)
        except TaskFileError as exc:
            raise ProblemError(400, "Bad Request", "invalid task file",
                               errors=list(exc.problems)) from None
        run_id = new_run_id(task)
        env = coordinator_env(app)

        def work() -> None:
            try:
                run_task(env, text, run_id=run_id)
            except FederatedError as exc:
                log.warning("fl run %s could not run: %s", run_id, exc)
            except Exception:
                log.exception("fl run %s crashed", run_id)

        try:  # fail fast on unknown participants, before answering
            for p in task.participants:
                env.directory.peer(p.id)
        except FederatedError as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        threading.Thread(target=work, name=f"fl-run-{run_id}", daemon=True).start()
        return jsonify({"runId": run_id}), 202

    @bp.route("/runs/<run_id>", methods=["GET"])
    @bp.doc(summary="One run: task file, status and every round")
    def run(run_id: str) -> Any:
        with node_context().engine.connect() as conn:
            found = get_run(conn, run_id)
        if found is None:
            raise ProblemError(404, "Not Found", f"no federated run {run_id!r}")
        return jsonify(found)

    @bp.route("/runs/<run_id>/rounds", methods=["GET"])
    @bp.doc(summary="Per-round metrics, refusals (with reasons) and dropouts of a run")
    def rounds(run_id: str) -> Any:
        with node_context().engine.connect() as conn:
            found = get_run(conn, run_id)
        if found is None:
            raise ProblemError(404, "Not Found", f"no federated run {run_id!r}")
        return jsonify(found["rounds"])

    return bp


def init_app(app: Flask) -> None:
    """Component entry point: mount the peer endpoint and the management routes."""
    ctx = node_context(app)
    stage_timeout(ctx.config)  # a bad value stops start-up with a clear message
    owner = owner_service(ctx)
    app.extensions[FL_EXTENSION] = owner
    ctx.blueprints.add(peer_blueprint(owner), surface=Surface.PEER)
    ctx.blueprints.add(management_blueprint(app), surface=Surface.MANAGEMENT)
