"""``autospace serve`` and ``autospace worker``."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import click

from node.cli.common import home_option, one_line_errors
from node.config import NodeConfig


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@click.command("serve")
@home_option
@click.option("--dev", is_flag=True, help="Flask's development server (one process).")
@click.option("--no-worker", is_flag=True, help="Do not start the embedded background worker.")
@one_line_errors
def serve_command(home: Path, dev: bool, no_worker: bool) -> None:
    """Run the node's HTTP server (gunicorn; Flask's server with --dev)."""
    from connectors.http.logs import configure_logging
    from node import server

    config = NodeConfig.load(home)
    configure_logging(config.logging.level, json_lines=config.logging.json)
    if not dev and config.server.workers > 1:
        server.prepare_metrics_dir(home)  # before prometheus_client is imported
    from node.app import create_app
    from node.db import make_engine, migrate

    engine = make_engine(config.db_url)
    migrate(engine)
    engine.dispose()
    worker = None
    if config.worker.embedded and not no_worker:
        worker = server.start_embedded_worker(home)
    logging.getLogger("autospace").info(
        "serving", extra={"fields": {"did": config.did, "bind": server.binds(config),
                                     "dev": dev, "pid": os.getpid()}})
    try:
        if dev:
            # SIGTERM ends the dev server like Ctrl-C, so the worker below is stopped too
            signal.signal(signal.SIGTERM, _interrupt)
            app = create_app(config, run_migrations=False)
            apps = [(config.server.host, config.server.port, app)]
            if config.server.management_port:
                apps.append((config.server.management_host or config.server.host,
                             config.server.management_port, app))
            server.run_dev(apps)
        else:
            server.run_gunicorn(lambda: create_app(NodeConfig.load(home), run_migrations=False),
                                server.gunicorn_settings(config))
    finally:
        if worker is not None:
            worker.terminate()  # SIGTERM: the worker finishes its current job and exits
            worker.wait(timeout=30)


@click.command("worker")
@home_option
@one_line_errors
def worker_command(home: Path) -> None:
    """Run the background job loop until SIGTERM (finishing the running job first)."""
    from connectors.http.logs import configure_logging
    from node.app import create_app
    from node.context import node_context
    from node.worker import WorkerLoop, build_registry

    config = NodeConfig.load(home)
    configure_logging(config.logging.level, json_lines=config.logging.json)
    app = create_app(config)  # the same wiring as the server; migrations are idempotent
    ctx = node_context(app)
    loop = WorkerLoop(build_registry(ctx), tick=config.worker.tick_seconds)
    loop.install_signal_handlers()
    try:
        loop.run()
    finally:
        ctx.close()
