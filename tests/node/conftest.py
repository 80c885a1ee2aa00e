"""A node home on the backend under test, and an in-process app for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from node.config import NodeConfig
from node.home import InitResult, init_home


@dataclass
class Home:
    path: Path
    result: InitResult
    db_url: str

    def config(self, **env: str) -> NodeConfig:
        return NodeConfig.load(self.path, env={f"AUTOSPACE_{k.upper()}": v for k, v in env.items()})


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Home:
    path = tmp_path / "node"
    result = init_home(path, participant_id="BPNL1", name="One",
                       public_url="http://127.0.0.1:18181", database_url=db_url)
    return Home(path, result, db_url)
