"""The coordinator's side: run a task file over the peer channel, store and log every round.

:func:`run_task` is shared by ``autospace fl run`` (in the CLI process, with a live display)
and ``POST /management/v3/fl/runs`` (a background thread of the server). Each round's report
and the global model after it are stored (``fl_rounds`` / ``fl_runs``) and an ``fl-round``
record is appended to the node's ledger in the same transaction.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from connectors.delivery import PeerDirectory
from connectors.identity.peer_client import PeerClient
from federated import store as fl_store
from federated.coordinator import FLCoordinator, RoundReport
from federated.errors import FederatedError
from federated.secagg_server import SecAggCoordinator
from federated.tables import rounds as rounds_table
from federated.tables import runs as runs_table
from federated.task import TaskSpec, loads_task
from ledger.log import Log
from ledger.records import FL_ROUND
from node.fl.negotiate import Negotiator, negotiate_agreements
from node.fl.transport import Directory, IdentityKeys, Peer, PeerTransport

log = logging.getLogger("autospace.fl")

StageCallback = Callable[[int, str, dict[str, Any]], None]


@dataclass
class CoordinatorEnv:
    """What a coordinator needs from its node (built from a home or from the app context)."""

    did: str
    engine: Engine
    peer_client: PeerClient
    directory: Directory
    ledger: Log | None
    stage_timeout: float = 30.0
    clock: Callable[[], float] | None = None
    negotiator: Negotiator | None = None  # None: participants without an agreement are
    # left to their owner (which refuses the round, saying so)

    def now(self) -> datetime:
        if self.clock is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(self.clock(), UTC)


def directory_for(registries: Any, authority_did: str, resolver: Any) -> Directory:
    """Participant lookup through the verified member registry of the node's authority."""
    return Directory(PeerDirectory(registries, [authority_did] if authority_did else []),
                     resolver)


def new_run_id(task: TaskSpec) -> str:
    return f"{task.id}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)
            and math.isfinite(v)}


def ledger_record(run_id: str, task: TaskSpec, report: RoundReport, at: datetime
                  ) -> dict[str, Any]:
    """The ``fl-round`` ledger record of one round: the run, the round's status and the
    agreement each participant trains under next to the model hash and metrics."""
    participants = list(report.survivors or report.accepted or report.invited)
    agreements = {p.id: p.agreement for p in task.participants if p.agreement}
    metrics: dict[str, Any] = {
        **_finite(report.metrics),
        "invited": list(report.invited), "dropped": list(report.dropped),
        "refused": sorted(report.refusals),
    }
    if report.epsilon is not None and math.isfinite(report.epsilon):
        metrics["epsilon"] = float(report.epsilon)
    return {"taskId": task.id, "round": report.round, "modelHash": report.model_hash,
            "participants": participants, "at": at.isoformat().replace("+00:00", "Z"),
            "runId": run_id, "status": report.status,
            "agreementIds": [agreements[p] for p in sorted(agreements)],
            "metrics": metrics}


def with_agreements(engine: Engine, task: TaskSpec, peers: dict[str, Peer]) -> TaskSpec:
    """The task with every missing agreement id filled in from this node's connector store.

    For a participant whose task entry names no agreement, the newest FINALIZED agreement
    this node (the consumer) holds for that participant's asset with that provider is used:
    what a DSP negotiation for the asset leaves behind. Participants with none keep none
    (their node will refuse the round, saying so).
    """
    from dataclasses import replace

    from connectors.dsp.store import ConnectorStore

    missing = [p for p in task.participants if not p.agreement]
    if not missing:
        return task
    resolved = []
    with ConnectorStore(engine).transaction() as tx:
        for p in task.participants:
            if not p.agreement:
                provider = peers[p.id].participant_id or p.id
                found = tx.find_agreements(asset_id=p.asset, provider_id=provider)
                if found:
                    p = replace(p, agreement=found[0].id)
                    log.info("fl task %s: %s trains under agreement %s", task.id, p.id,
                             found[0].id)
            resolved.append(p)
    return replace(task, participants=tuple(resolved))


def run_task(env: CoordinatorEnv, task_text: str, *, run_id: str | None = None,
             on_round: Callable[[RoundReport], None] | None = None,
             on_stage: StageCallback | None = None,
             on_start: Callable[[str, TaskSpec], None] | None = None) -> str:
    """Run every round of the task in ``task_text``; return the run id.

    Raises:
        TaskFileError: the task file is invalid (nothing stored).
        FederatedError: a participant is not a member of the data space, or no agreement
            could be negotiated with it (``NegotiationError``); nothing stored.
        IdentityError: this node has no membership credential to call peers with.
    """
    task = loads_task(task_text)
    peers: dict[str, Peer] = {p.id: env.directory.peer(p.id) for p in task.participants}
    task = with_agreements(env.engine, task, peers)
    if env.negotiator is not None:  # before round one: an agreement with every owner
        if on_stage is not None:
            on_stage(1, "negotiate", {})
        task = negotiate_agreements(env.negotiator, task, peers)
    for peer in peers.values():  # fail before storing anything if this node cannot sign
        env.peer_client.token_for(peer.did)
    run_id = run_id or new_run_id(task)
    with env.engine.begin() as conn:
        fl_store.create_run(conn, run_id, task.id, task_text, clock=env.now)
    if on_start is not None:
        on_start(run_id, task)
    transport = PeerTransport(env.peer_client, peers, stage_timeout=env.stage_timeout)
    keys = IdentityKeys(env.directory, tuple(peers))
    holder: dict[str, FLCoordinator] = {}

    def persist(report: RoundReport) -> None:
        why = {pid: transport.failures[pid] for pid in report.dropped
               if pid in transport.failures and pid not in report.refusals}
        for pid, reason in why.items():
            log.info("fl run %s round %s: %s dropped (%s)", run_id, report.round, pid, reason)
        if report.status == "aborted" and why:
            report.abort_reason = (f"{report.abort_reason or 'aborted'}; dropped: "
                                   + "; ".join(f"{p} ({r})" for p, r in sorted(why.items())))
        transport.failures.clear()
        at = env.now()
        with env.engine.begin() as conn:
            fl_store.save_round(conn, run_id, report, holder["c"].model.get_weights(),
                                clock=lambda: at)
            if env.ledger is not None:
                env.ledger.append(conn, FL_ROUND, ledger_record(run_id, task, report, at),
                                  record_id=f"urn:autospace:fl:{run_id}:round:{report.round}")
        if on_round is not None:
            on_round(report)

    def stage(r: int, name: str, c: SecAggCoordinator) -> None:
        if on_stage is not None:
            on_stage(r, name, {"state": c.state.value, "survivors": list(c.survivors or ())})

    coordinator = FLCoordinator(task, env.did, transport, keys, on_round=persist,
                                on_stage=stage)
    holder["c"] = coordinator
    status = "failed"
    try:
        if on_stage is not None:
            on_stage(1, "offer", {})
        result = coordinator.run()
        completed = sum(1 for r in result.rounds if r.status == "completed")
        status = "stopped" if result.stopped_early else ("completed" if completed else "failed")
    except FederatedError as exc:
        log.warning("fl run %s failed: %s", run_id, exc)
        raise
    finally:
        transport.close()
        with env.engine.begin() as conn:
            fl_store.finish_run(conn, run_id, status, clock=env.now)
    return run_id


# -- reading runs (status, report, management API) ----------------------------------------------
def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def run_summary(row: Any) -> dict[str, Any]:
    return {"runId": row["id"], "taskId": row["task_id"], "status": row["status"],
            "currentRound": row["current_round"], "createdAt": _iso(row["created_at"]),
            "updatedAt": _iso(row["updated_at"])}


def round_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"round": row["round"], "status": row["status"], "invited": row["invited"],
            "accepted": row["accepted"], "survivors": row["survivors"],
            "dropped": row["dropped"], "refusals": row["refusals"],
            "metrics": row["metrics"], "modelHash": row["model_hash"],
            "epsilon": row["epsilon"], "abortReason": row["abort_reason"],
            "finishedAt": _iso(row["finished_at"])}


def list_runs(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(runs_table).order_by(runs_table.c.created_at.desc())
                        .limit(limit)).mappings()
    return [run_summary(r) for r in rows]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """A run with its task file and every round, or None."""
    row = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).mappings().first()
    if row is None:
        return None
    out = run_summary(row)
    out["task"] = row["task_toml"]
    out["rounds"] = [round_view(r) for r in fl_store.run_rounds(conn, run_id)]
    return out


def latest_run_id(conn: Connection) -> str | None:
    return conn.execute(select(runs_table.c.id).order_by(runs_table.c.created_at.desc())
                        .limit(1)).scalar()


def round_rows(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Rounds of a run for CSV export (flat metrics)."""
    rows = conn.execute(select(rounds_table).where(rounds_table.c.run_id == run_id)
                        .order_by(rounds_table.c.round)).mappings()
    return [dict(r) for r in rows]
