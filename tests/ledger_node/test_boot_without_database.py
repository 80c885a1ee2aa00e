"""A node whose database is unreachable at start-up still boots (503) and recovers.

gunicorn stops the whole server when a worker cannot boot, so a worker restarted during a
database outage must not fail in the app factory; the ledger opens its log on first use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from node.app import create_app
from node.home import init_home


def test_boots_with_the_database_down_and_serves_once_it_is_back(tmp_path: Path) -> None:
    home = tmp_path / "node"
    db = tmp_path / "ready" / "node.sqlite"
    db.parent.mkdir()
    init_home(home, participant_id="BPNL-OEM", name="OEM", public_url="http://127.0.0.1:18383",
              database_url=f"sqlite:///{db}")
    moved = tmp_path / "later" / "node.sqlite"  # the directory does not exist yet: no database
    from node.config import NodeConfig

    config = NodeConfig.load(home, env={"AUTOSPACE_DATABASE_URL": f"sqlite:///{moved}"})
    app = create_app(config, run_migrations=False)
    client = app.test_client()
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and "DOWN" in ready.get_data(as_text=True)
    down = client.get("/ledger/checkpoint")
    assert down.status_code == 503
    assert down.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in down.get_data(as_text=True)

    moved.parent.mkdir()
    shutil.copy(db, moved)  # the database is back
    up = client.get("/ledger/checkpoint")
    assert up.status_code == 200, up.get_data(as_text=True)
    assert up.get_data(as_text=True).splitlines()[1] == "0"  # a signed note of the empty log
