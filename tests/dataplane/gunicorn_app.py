"""Serve the data-plane blueprint under gunicorn for tests: ``python -m ... STATE PORT``.

STATE is a JSON file with ``db`` (database URL), ``home`` (key store home), ``participant``
and ``public`` (public URL). Used to test the sendfile path, which only gunicorn takes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def build(state: dict[str, Any]) -> Any:
    from flask import Flask

    from connectors.dataplane.service import build_dataplane
    from connectors.dataplane.web import DATAFLOW_EXTENSION, DATAPLANE_EXTENSION, make_blueprint
    from connectors.http.problem import register_error_handlers
    from node.db import make_engine
    from node.keystore import KeyStore

    plane = build_dataplane(make_engine(state["db"]), KeyStore(state["home"]),
                            participant_id=state["participant"], public_url=state["public"])
    app = Flask("dataplane-gunicorn-test")
    app.extensions[DATAPLANE_EXTENSION] = plane
    app.extensions[DATAFLOW_EXTENSION] = plane.flow
    app.register_blueprint(make_blueprint())
    register_error_handlers(app)
    return app


def main(state_file: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication

    state = json.loads(Path(state_file).read_text())

    class App(BaseApplication):
        def load_config(self) -> None:
            for key, value in {"bind": f"127.0.0.1:{port}", "workers": 1,
                               "worker_class": "gthread", "threads": 4, "timeout": 120,
                               "accesslog": None, "loglevel": "warning",
                               "control_socket_disable": True}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return build(state)

    App().run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
