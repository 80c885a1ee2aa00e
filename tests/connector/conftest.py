"""An in-process node app (all components) on the backend under test, with its API key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from connectors.wiring import runtime
from node.app import create_app
from node.config import NodeConfig
from node.home import init_home

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/"}
ODRL_CTX = "http://www.w3.org/ns/odrl.jsonld"


@dataclass
class NodeApp:
    app: Flask
    api_key: str

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.app.test_client().post(path, json=body,
                                           headers={"X-Api-Key": self.api_key}, **kw)

    def put(self, path: str, body: Any) -> Any:
        return self.app.test_client().put(path, json=body, headers={"X-Api-Key": self.api_key})

    def get(self, path: str) -> Any:
        return self.app.test_client().get(path, headers={"X-Api-Key": self.api_key})

    def delete(self, path: str) -> Any:
        return self.app.test_client().delete(path, headers={"X-Api-Key": self.api_key})


@pytest.fixture
def node_app(tmp_path: Path, db_url: str) -> Iterator[NodeApp]:
    home = tmp_path / "node"
    result = init_home(home, participant_id="BPN-provider", name="provider",
                       public_url="http://127.0.0.1:18181", database_url=db_url)
    app = create_app(NodeConfig.load(home, env={}))
    yield NodeApp(app, result.api_key)
    runtime(app).dispatcher.stop()
    app.extensions["autospace.node"].close()
