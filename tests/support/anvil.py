"""Start and stop a real anvil EVM node on a free 127.0.0.1 port.

anvil comes from the npm package ``@foundry-rs/anvil-linux-amd64`` that ``make tools``
installs into ``.tools/node_modules``; tests that need it skip with a clear message when
it is absent (``make test`` always installs it, so in CI they run).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL = (
    REPO_ROOT / ".tools" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
)
MISSING = f"anvil not installed at {ANVIL} (run `make tools`)"


def anvil_path() -> Path | None:
    """The anvil binary, or None when it is not installed."""
    return ANVIL if ANVIL.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AnvilNode:
    """A running anvil: its URL and a raw JSON-RPC helper for test-only methods."""

    url: str
    chain_id: int
    process: subprocess.Popen

    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        req = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def fund(self, address: str, wei: int = 10**20) -> None:
        self.rpc("anvil_setBalance", address, hex(wei))

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))


@contextmanager
def running_anvil(chain_id: int = 31337, extra_args: tuple[str, ...] = ()) -> Iterator[AnvilNode]:
    """Run anvil for the duration of the block; it is killed (by its pid) afterwards."""
    binary = anvil_path()
    if binary is None:
        raise FileNotFoundError(MISSING)
    last_error: Exception | None = None
    for _ in range(3):  # the port may be taken between probing and binding
        port = free_port()
        proc = subprocess.Popen(
            [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--chain-id",
                str(chain_id),
                "--silent",
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        node = AnvilNode(f"http://127.0.0.1:{port}", chain_id, proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                node.rpc("eth_chainId")
                break
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
        if proc.poll() is None and time.monotonic() < deadline:
            try:
                yield node
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        proc.kill()
        proc.wait()
    raise RuntimeError(f"anvil did not start: {last_error}")
