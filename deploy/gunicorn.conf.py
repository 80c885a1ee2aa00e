"""gunicorn settings for an autospace node run directly by gunicorn (behind a reverse proxy).

``autospace serve`` applies the same settings itself; use this file when a process
manager starts gunicorn directly::

    AUTOSPACE_HOME=/srv/autospace gunicorn -c deploy/gunicorn.conf.py \
        'node.app:app_from_home("/srv/autospace")'

Addresses, workers and threads come from the node's configuration (``[server]`` or
``AUTOSPACE_SERVER_*``). Migrations run once in the master before workers start.
With several workers, Prometheus metrics are aggregated through
``PROMETHEUS_MULTIPROC_DIR`` (``HOME/run/metrics``), prepared here before any worker
imports ``prometheus_client``.
"""

import os
from pathlib import Path

from node.config import NodeConfig
from node.server import gunicorn_settings, prepare_metrics_dir

_home = Path(os.environ["AUTOSPACE_HOME"])
_config = NodeConfig.load(_home)
if _config.server.workers > 1:
    prepare_metrics_dir(_home)
globals().update(gunicorn_settings(_config))


def on_starting(server):
    """Apply every package's migrations once, before any worker serves."""
    from node.db import make_engine, migrate

    engine = make_engine(_config.db_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
