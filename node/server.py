"""Running the node's HTTP server: gunicorn (default) or Werkzeug's server (``--dev``).

Migrations run once in the parent before any worker starts. With several gunicorn
workers the Prometheus multiprocess directory is prepared here, before anything
imports ``prometheus_client`` (see ``node.metrics``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.config import NodeConfig

METRICS_DIR = "run/metrics"


def binds(config: NodeConfig) -> list[str]:
    """Addresses to listen on: the main one, plus the management one when separate."""
    s = config.server
    out = [f"{s.host}:{s.port}"]
    if s.management_port:
        out.append(f"{s.management_host or s.host}:{s.management_port}")
    return out


def prepare_metrics_dir(home: Path) -> Path:
    """Empty ``HOME/run/metrics`` and point ``PROMETHEUS_MULTIPROC_DIR`` at it."""
    path = Path(home) / METRICS_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def gunicorn_settings(config: NodeConfig) -> dict[str, Any]:
    """Gunicorn settings for a node (shared by ``autospace serve`` and deploy/gunicorn.conf.py)."""
    s = config.server
    return {
        "bind": binds(config),
        "workers": s.workers,
        "worker_class": "gthread",
        "threads": s.threads,
        "timeout": s.timeout_seconds,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,  # the app writes structured access lines itself
        "errorlog": "-",
        "loglevel": config.logging.level,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "child_exit": child_exit,
        "control_socket_disable": True,  # one shared default path would clash between nodes
    }


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: drop a dead worker's live gauges from the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def run_gunicorn(app_factory: Callable[[], Any], settings: dict[str, Any]) -> None:
    """Run ``app_factory()`` in gunicorn workers with ``settings``; returns on shutdown."""
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app_factory()

    _App().run()


def run_dev(apps: list[tuple[str, int, Any]]) -> None:
    """Serve each ``(host, port, app)`` with Werkzeug's threaded server until interrupted."""
    from werkzeug.serving import make_server

    servers = [make_server(host, port, app, threaded=True) for host, port, app in apps]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers[1:]]
    for t in threads:
        t.start()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for s in servers:
            s.shutdown() if s is not servers[0] else None
            s.server_close()


def start_embedded_worker(home: Path) -> subprocess.Popen[bytes]:
    """Start ``autospace worker`` beside the server (embedded mode)."""
    return subprocess.Popen([sys.executable, "-m", "node.cli", "worker", "--home", str(home)])
