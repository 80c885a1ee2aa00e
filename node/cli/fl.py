"""``autospace fl``: run federated tasks as coordinator, inspect runs, export reports.

- ``fl run --home DIR --task TASK.toml``: runs the task from this process over the node's
  peer channel (its key, credential and database), with a live display; rounds are stored
  and logged to the node's ledger exactly as a run started through the management API.
- ``fl status --home DIR [RUN]``: runs, or one run's rounds with refusal reasons.
- ``fl report RUN --home DIR -o DIR``: ``<run>-rounds.csv`` and ``<run>-curves.png``.
- ``fl data --home DIR --asset ID``: writes a worked-scenario supplier data set (synthetic)
  as the node's private copy of an asset (``<home>/fl-data/<asset>.csv``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import click

from node.cli.common import home_option, one_line_errors
from node.config import NodeConfig


def _engine(home: Path) -> Any:
    from node.db import make_engine

    return make_engine(NodeConfig.load(home).db_url)


@click.group("fl")
def fl_group() -> None:
    """Federated learning with secure aggregation (coordinator and data owner)."""


@fl_group.command("run")
@home_option
@click.option("--task", "task_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Task file (TOML).")
@click.option("--quiet", is_flag=True, help="No live display; print the run id at the end.")
@one_line_errors
def run_command(home: Path, task_path: Path, quiet: bool) -> None:
    """Run a training task as coordinator (live progress)."""
    from federated.errors import FederatedError, TaskFileError
    from node.context import build_context
    from node.db import make_engine, migrate
    from node.fl.negotiate import negotiator_for_context
    from node.fl.runs import CoordinatorEnv, directory_for, run_task
    from node.fl.web import stage_timeout
    from node.keystore import KeyStore
    from node.ledger_service import ledger_settings, open_log

    config = NodeConfig.load(home)
    engine = make_engine(config.db_url)
    migrate(engine)
    ctx = build_context(config, keys=KeyStore(home), engine=engine)
    env = CoordinatorEnv(config.did, engine, ctx.peer_client,
                         directory_for(ctx.registries, config.authority_did, ctx.resolver),
                         open_log(engine, ledger_settings(config).origin),
                         stage_timeout(config), negotiator=negotiator_for_context(ctx))
    display = _Progress(quiet)
    try:
        with display:
            run_id = run_task(env, task_path.read_text(), on_round=display.round_done,
                              on_stage=display.stage, on_start=display.start)
    except TaskFileError as exc:
        raise click.ClickException("invalid task file:\n  " + "\n  ".join(exc.problems)) \
            from None
    except FederatedError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        ctx.close()
    with engine.connect() as conn:
        from node.fl.runs import get_run

        run = get_run(conn, run_id)
    engine.dispose()
    assert run is not None
    click.echo(f"run: {run_id}")
    click.echo(f"status: {run['status']}")
    if run["status"] == "failed":
        raise SystemExit(1)


class _Progress:
    """Live table: one row per round (stage while running, then metrics)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.rows: dict[int, dict[str, Any]] = {}
        self.title = "federated run"
        self.total = 0
        self._live: Any = None

    def __enter__(self) -> _Progress:
        if not self.quiet:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(stderr=True),
                              refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def start(self, run_id: str, task: Any) -> None:
        self.title = f"run {run_id} · task {task.id} · {len(task.participants)} participants"
        self.total = task.rounds
        self._refresh()

    def stage(self, r: int, name: str, info: dict[str, Any]) -> None:
        row = self.rows.setdefault(r, {})
        row["stage"] = name
        if info.get("survivors"):
            row["participants"] = len(info["survivors"])
        self._refresh()

    def round_done(self, report: Any) -> None:
        m = report.metrics
        self.rows[report.round] = {
            "stage": report.status, "participants": len(report.survivors),
            "dropouts": len(report.dropped), "refusals": len(report.refusals),
            "loss": m.get("eval_loss"), "accuracy": m.get("eval_accuracy"),
            "why": report.abort_reason or "; ".join(f"{p}: {r}" for p, r in
                                                    report.refusals.items()),
        }
        if report.round < self.total and report.round + 1 not in self.rows:
            self.rows[report.round + 1] = {"stage": "offer"}
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self.title)
        for col in ("round", "stage", "participants", "dropouts", "refusals", "eval loss",
                    "eval accuracy", "note"):
            table.add_column(col)
        for r in sorted(self.rows):
            row = self.rows[r]
            table.add_row(str(r), row.get("stage", ""), _fmt(row.get("participants")),
                          _fmt(row.get("dropouts")), _fmt(row.get("refusals")),
                          _fmt(row.get("loss")), _fmt(row.get("accuracy")),
                          (row.get("why") or "")[:80])
        return table


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


@fl_group.command("status")
@home_option
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def status_command(home: Path, run_id: str | None, as_json: bool) -> None:
    """List runs, or show one run's rounds (with refusal and abort reasons)."""
    from node.fl.runs import get_run, list_runs

    engine = _engine(home)
    try:
        with engine.connect() as conn:
            doc: Any = get_run(conn, run_id) if run_id else list_runs(conn)
    finally:
        engine.dispose()
    if run_id and doc is None:
        raise click.ClickException(f"no federated run {run_id!r} on this node")
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    if not run_id:
        if not doc:
            click.echo("no federated runs")
        for r in doc:
            click.echo(f"{r['runId']}  {r['status']:<9} round {r['currentRound']}  "
                       f"task {r['taskId']}  {r['createdAt']}")
        return
    click.echo(f"run: {doc['runId']}\ntask: {doc['taskId']}\nstatus: {doc['status']}")
    for rd in doc["rounds"]:
        m = rd["metrics"]
        line = (f"round {rd['round']}: {rd['status']}  participants {len(rd['survivors'])}"
                f"  dropped {len(rd['dropped'])}")
        if m:
            line += (f"  eval loss {_fmt(m.get('eval_loss'))}  "
                     f"eval accuracy {_fmt(m.get('eval_accuracy'))}")
        click.echo(line)
        for pid, reason in sorted(rd["refusals"].items()):
            click.echo(f"  refused by {pid}: {reason}")
        if rd["abortReason"]:
            click.echo(f"  aborted: {rd['abortReason']}")


CSV_FIELDS = ("round", "status", "invited", "accepted", "survivors", "dropped", "refused",
              "train_loss", "eval_loss", "eval_accuracy", "eval_count", "epsilon",
              "model_hash", "abort_reason")


@fl_group.command("report")
@home_option
@click.argument("run_id")
@click.option("-o", "--out", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@one_line_errors
def report_command(home: Path, run_id: str, out_dir: Path) -> None:
    """Write a run's per-round metrics (CSV) and learning curves (PNG)."""
    from node.fl.runs import get_run

    engine = _engine(home)
    try:
        with engine.connect() as conn:
            run = get_run(conn, run_id)
    finally:
        engine.dispose()
    if run is None:
        raise click.ClickException(f"no federated run {run_id!r} on this node")
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{run_id}-rounds.csv"
    png_path = out_dir / f"{run_id}-curves.png"
    write_rounds_csv(run, csv_path)
    plot_curves(run, png_path)
    click.echo(f"csv: {csv_path}")
    click.echo(f"plot: {png_path}")


def write_rounds_csv(run: dict[str, Any], path: Path) -> None:
    """One line per round; metrics blank for aborted rounds."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for rd in run["rounds"]:
            m = rd["metrics"]
            w.writerow([rd["round"], rd["status"], len(rd["invited"]), len(rd["accepted"]),
                        len(rd["survivors"]), len(rd["dropped"]), len(rd["refusals"]),
                        *(m.get(k, "") for k in ("train_loss", "eval_loss", "eval_accuracy",
                                                  "eval_count")),
                        "" if rd["epsilon"] is None else rd["epsilon"], rd["modelHash"],
                        rd["abortReason"] or ""])


def plot_curves(run: dict[str, Any], path: Path) -> None:
    """Loss and accuracy per round (completed rounds; aborted ones marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [rd for rd in run["rounds"] if rd["status"] == "completed"]
    aborted = [rd["round"] for rd in run["rounds"] if rd["status"] != "completed"]
    xs = [rd["round"] for rd in done]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train loss (local)"),
                       ("eval_loss", "eval loss (model entering the round)")):
        ax1.plot(xs, [rd["metrics"].get(key, float("nan")) for rd in done], marker="o",
                 label=label)
    ax2.plot(xs, [rd["metrics"].get("eval_accuracy", float("nan")) for rd in done],
             marker="o", color="tab:green", label="eval accuracy")
    for ax, name in ((ax1, "loss"), (ax2, "accuracy")):
        for r in aborted:
            ax.axvline(r, color="tab:red", alpha=0.3, linestyle="--")
        ax.set_xlabel("round")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{run['taskId']} · run {run['runId']}"
                 + (f" · {len(aborted)} aborted round(s)" if aborted else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@fl_group.command("data")
@home_option
@click.option("--asset", required=True, help="Asset id the data set belongs to.")
@click.option("--supplier", type=click.IntRange(0, 2), default=0, show_default=True,
              help="Which scenario supplier profile (0, 1, 2).")
@click.option("--seed", type=int, default=0, show_default=True)
@one_line_errors
def data_command(home: Path, asset: str, supplier: int, seed: int) -> None:
    """Write a synthetic scenario supplier data set as this node's private asset data."""
    from federated import scenario
    from federated.data import write_csv
    from node.fl.owner import DATA_DIR

    NodeConfig.load(home)  # a real node home
    datasets = list(scenario.suppliers(3, seed).values())
    path = home / DATA_DIR / f"{asset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(datasets[supplier], path)
    click.echo(f"wrote {len(datasets[supplier])} records to {path}")
