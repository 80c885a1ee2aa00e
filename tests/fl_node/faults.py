"""A node behind a loopback HTTP relay that can SIGKILL it at an exact protocol step.

The node's public URL (and so its did:web and registry entry) points at the relay; the relay
forwards every request to the node's real port. When armed with (task, round, message
type), it kills the node process the moment that message arrives — before the node sees
it — and drops the connection, so a test can stop a participant at a precise stage of a
round instead of racing the protocol.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import fresh_database_url
from tests.support.processes import (
    NODE_TEST_ENV,
    DataSpace,
    NodeHandle,
    _import_credential,
    free_port,
)

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Relay:
    """Forwards 127.0.0.1:``port`` to ``target``; ``arm`` kills ``node`` at one message."""

    def __init__(self, port: int, target: str) -> None:
        self.port = port
        self.target = target
        self.node: NodeHandle | None = None
        self.trigger: tuple[str, int, str] | None = None
        self.fired = threading.Event()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if relay._should_kill(self.path, body):
                    relay._kill()
                    self.close_connection = True
                    return  # no answer: the caller sees the connection drop
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                try:
                    r = httpx.request(self.command, relay.target + self.path, headers=headers,
                                      content=body, timeout=60)
                except httpx.HTTPError:
                    self.close_connection = True
                    return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in HOP_HEADERS | {"content-encoding"}:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def arm(self, task: str, round_: int, message_type: str) -> None:
        self.fired.clear()
        self.trigger = (task, round_, message_type)

    def _should_kill(self, path: str, body: bytes) -> bool:
        if self.trigger is None or not path.startswith("/peer/fl/"):
            return False
        try:
            doc = json.loads(body)
            key = (doc["header"]["task_id"], doc["header"]["round"], doc["type"])
        except (ValueError, KeyError, TypeError):
            return False
        return key == self.trigger

    def _kill(self) -> None:
        self.trigger = None
        assert self.node is not None and self.node.process is not None
        # the whole process group: `autospace serve` and its gunicorn worker (an orphaned
        # worker would keep answering on the inherited socket for a while)
        os.killpg(self.node.process.popen.pid, signal.SIGKILL)
        self.node.process.popen.wait(10)
        self.fired.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def add_relayed_node(ds: DataSpace, name: str, *, role: str = "supplier",
                     env: dict[str, str] | None = None) -> tuple[NodeHandle, Relay]:
    """Like ``DataSpace.add_node`` but the node is reached through a :class:`Relay`."""
    from node.home import init_home

    assert ds.authority is not None
    db = ds._stack.enter_context(fresh_database_url(ds.base))
    port, relay_port = free_port(), free_port()
    public = f"http://127.0.0.1:{relay_port}"
    home: Path = ds.base / name
    result = init_home(home, participant_id=f"BPN-{name}", name=name, public_url=public,
                       database_url=db, server_port=port,
                       authority_url=ds.authority.url)
    node = NodeHandle(name, home, public, port, result.did, result.api_key, db,
                      {**NODE_TEST_ENV, **(env or {})})
    relay = Relay(relay_port, f"http://127.0.0.1:{port}")
    relay.node = node
    ds._stack.callback(relay.close)
    cred = ds.authority.admit(result.did, f"BPN-{name}", role, ds.base / f"{name}.jwt")
    _import_credential(node, cred)
    ds.nodes[name] = node
    return node, relay
