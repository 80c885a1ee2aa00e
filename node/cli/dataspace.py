"""``autospace dataspace``: a local data space (authority, OEM, two suppliers) on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from node.cli.common import one_line_errors
from node.dataspace import (
    DEFAULT_BASE_PORT,
    LAYOUT_FILE,
    DataspaceError,
    Layout,
    describe,
    down,
    init_dataspace,
    running_processes,
    up,
)

directory_argument = click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), default="./dataspace")
base_port_option = click.option(
    "--base-port", type=int, default=DEFAULT_BASE_PORT, show_default=True,
    help="Authority port; the nodes listen on the next three ports.")


def _fail_one_line(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


@click.group("dataspace")
def dataspace_group() -> None:
    """Run a local data space for trying autospace on one machine."""


@dataspace_group.command("init")
@directory_argument
@base_port_option
@one_line_errors
def init_command(directory: Path, base_port: int) -> None:
    """Create the homes (authority, OEM, two suppliers) without starting them."""
    try:
        layout = init_dataspace(directory, base_port=base_port)
    except DataspaceError as exc:
        raise _fail_one_line(exc) from None
    click.echo(f"created {len(layout.participants)} nodes and an authority in {directory}")


@dataspace_group.command("up")
@directory_argument
@base_port_option
@click.option("--no-samples", is_flag=True, help="Do not publish the sample assets.")
@one_line_errors
def up_command(directory: Path, base_port: int, no_samples: bool) -> None:
    """Start the data space (creating it on first use) and publish sample assets."""
    publish = None
    if not no_samples:
        from node.samples import publish_samples as publish
    try:
        layout = up(directory, base_port=base_port, publish=publish)
    except DataspaceError as exc:
        raise _fail_one_line(exc) from None
    _print(layout, Path(directory))


@dataspace_group.command("down")
@directory_argument
def down_command(directory: Path) -> None:
    """Stop every process of the data space."""
    stopped = down(directory)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dataspace_group.command("status")
@directory_argument
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(directory: Path, as_json: bool) -> None:
    """Show which processes of the data space are running."""
    if not (directory / LAYOUT_FILE).exists():
        raise click.ClickException(f"no data space in {directory}")
    running = running_processes(directory.resolve())
    rows = describe(Layout.load(directory.resolve()))
    for row in rows:
        row["running"] = row["name"] in running
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    _table(rows, Console(width=max(Console().width, 110)))


def _print(layout: Layout, directory: Path) -> None:
    console = Console(width=max(Console().width, 110))
    rows = describe(layout)
    for row in rows:
        row["running"] = True
    _table(rows, console)
    console.print(f"participants, URLs and API keys: {directory / LAYOUT_FILE}")
    task = directory / "fl-task.toml"
    if task.exists():
        console.print(f"federated learning: autospace fl run --home {directory / 'oem'} "
                      f"--task {task}")
    console.print(f"stop with: autospace dataspace down {directory}")


def _table(rows: list[dict], console: Console) -> None:
    table = Table(title="autospace local data space")
    for col in ("name", "role", "participant id", "url", "running"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r["name"], r["role"], r["participant_id"], r["url"],
                      "yes" if r["running"] else "no")
    console.print(table)
