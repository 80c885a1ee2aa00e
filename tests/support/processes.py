"""Real ``autospace`` processes for end-to-end tests: an authority and nodes on 127.0.0.1.

Everything runs as separate OS processes on free loopback ports, with logs captured
to files the test can read (JSON lines). Typical use, sharing processes per module::

    @pytest.fixture(scope="module")
    def space(tmp_path_factory):
        with DataSpace(tmp_path_factory.mktemp("space")) as ds:
            ds.add_nodes({"oem-a": "oem", "supplier-b": "supplier"})  # or add_node() each
            ds.start()
            yield ds

    def test_x(space):
        a, b = space.nodes["oem-a"], space.nodes["supplier-b"]
        response = a.peer_client().get(b.url + "/peer/ping", audience=b.did)

Each node gets its own database from :func:`tests.support.databases.fresh_database_url`
(a SQLite file, or its own PostgreSQL schema when ``AUTOSPACE_TEST_DB`` names one).
Nodes are configured for tests through ``AUTOSPACE_*`` variables: no embedded worker,
one gunicorn worker, registry refresh every second (:data:`NODE_TEST_ENV`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import fresh_database_url

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Environment given to test nodes (override per node with ``env=``).
NODE_TEST_ENV = {
    "AUTOSPACE_WORKER_EMBEDDED": "false",
    "AUTOSPACE_SERVER_WORKERS": "1",
    "AUTOSPACE_SERVER_THREADS": "4",
    "AUTOSPACE_TRUST_REGISTRY_REFRESH_SECONDS": "1",
    "AUTOSPACE_PEER_RETRIES": "0",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def autospace_argv(*args: str) -> list[str]:
    """Command line running the ``autospace`` CLI of this checkout with this interpreter."""
    return [sys.executable, "-m", "node.cli", *args]


def _base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSPACE_")
           or k == "AUTOSPACE_TEST_DB"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``autospace`` command to completion; raise with its output if it fails."""
    proc = subprocess.run(autospace_argv(*args), env=_base_env(env), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)
    if check and proc.returncode != 0:
        raise RuntimeError(f"autospace {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class ServiceProcess:
    """A running server process and its captured log."""

    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        out = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def wait_for_record(self, predicate: Callable[[dict[str, Any]], bool],
                        timeout: float = 10.0) -> dict[str, Any]:
        """The first log record matching ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.records():
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no matching log record within {timeout}s; "
                                     f"log tail:\n{self.logs()[-3000:]}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, then SIGKILL; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def launch_process(name: str, args: list[str], *, url: str, log_path: Path,
                   env: dict[str, str] | None = None) -> ServiceProcess:
    """Start ``autospace *args`` with output captured to ``log_path``; do not wait."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(autospace_argv(*args), stdout=log, stderr=subprocess.STDOUT,
                                 env=_base_env(env), cwd=REPO_ROOT, start_new_session=True)
    return ServiceProcess(name, url, popen, log_path)


def wait_ready(service: ServiceProcess, *, ready_path: str = "/health/live",
               timeout: float = 30.0) -> ServiceProcess:
    """Wait until ``service.url + ready_path`` answers 200; stop it and raise otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if service.popen.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.popen.returncode}:\n"
                               f"{service.logs()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(service.url + ready_path, timeout=1.0).status_code == 200:
                return service
        if time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(f"{service.name} not ready within {timeout}s:\n"
                               f"{service.logs()[-4000:]}")
        time.sleep(0.1)


def start_process(name: str, args: list[str], *, url: str, log_path: Path,
                  env: dict[str, str] | None = None, ready_path: str = "/health/live",
                  timeout: float = 30.0) -> ServiceProcess:
    """Start ``autospace *args`` and wait until ``url + ready_path`` answers 200."""
    service = launch_process(name, args, url=url, log_path=log_path, env=env)
    return wait_ready(service, ready_path=ready_path, timeout=timeout)


@dataclass
class AuthorityHandle:
    """A dataspace authority home (and its server once started)."""

    home: Path
    url: str
    port: int
    did: str
    public_key: str
    process: ServiceProcess | None = None

    def admit(self, did: str, participant_id: str, role: str, out: Path, *,
              region: str = "CN", valid_days: float = 30, via_cli: bool = False) -> Path:
        """Admit a member and write its credential to ``out``."""
        if via_cli:
            run_cli("authority", "admit", "--home", str(self.home), "--did", did,
                    "--participant-id", participant_id, "--role", role, "--region", region,
                    "--valid-days", str(valid_days), "--out", str(out))
            return out
        from node.authority_home import load_authority

        token, _ = load_authority(self.home)[0].admit(
            member_did=did, participant_id=participant_id, role=role, region=region,
            valid_days=valid_days)
        out.write_text(token + "\n")
        return out

    def revoke(self, did: str) -> None:
        """``autospace authority revoke`` (run as a command, as an operator would)."""
        run_cli("authority", "revoke", "--home", str(self.home), "--did", did)

    def start(self, log_dir: Path) -> ServiceProcess:
        self.process = start_process(
            "authority", ["authority", "serve", "--home", str(self.home), "--port",
                          str(self.port)], url=self.url, log_path=log_dir / "authority.log")
        return self.process


def create_authority(base: Path, *, name: str = "authority") -> AuthorityHandle:
    """``autospace authority init`` on a free port (not started)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = base / name
    out = run_cli("authority", "init", "--home", str(home), "--name", name, "--url", url).stdout
    did = re.search(r"did:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    key = re.search(r"public key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return AuthorityHandle(home, url, port, did, key)


@dataclass
class NodeHandle:
    """A node home (and its server once started)."""

    name: str
    home: Path
    url: str
    port: int
    did: str
    api_key: str
    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    process: ServiceProcess | None = None

    def launch(self, log_dir: Path, *, dev: bool = False) -> ServiceProcess:
        """Start ``autospace serve`` without waiting (see :func:`wait_ready`)."""
        args = ["serve", "--home", str(self.home)] + (["--dev"] if dev else [])
        self.process = launch_process(self.name, args, url=self.url,
                                      log_path=log_dir / f"{self.name}.log", env=self.env)
        return self.process

    def start(self, log_dir: Path, *, dev: bool = False, timeout: float = 30.0) -> ServiceProcess:
        """Start ``autospace serve`` and wait until it answers."""
        return wait_ready(self.launch(log_dir, dev=dev), timeout=timeout)

    def keys(self) -> Any:
        """The node's key store, loaded in the test process (to sign crafted tokens)."""
        from node.keystore import KeyStore

        return KeyStore(self.home)

    def credential(self) -> str:
        return (self.home / "credential.jwt").read_text().strip()

    def peer_client(self, **kwargs: Any) -> Any:
        """A ``PeerClient`` signing as this node (its key, DID and credential)."""
        from connectors.identity.peer_client import PeerClient

        return PeerClient(self.keys(), self.did, self.credential, retries=0, **kwargs)

    def management(self) -> httpx.Client:
        """HTTP client for this node's management API (API key set)."""
        return httpx.Client(base_url=self.url, headers={"X-Api-Key": self.api_key}, timeout=10)


def create_node(base: Path, name: str, *, database_url: str,
                authority: AuthorityHandle | None = None, role: str = "supplier",
                participant_id: str | None = None, env: dict[str, str] | None = None,
                admit: bool = True, via_cli: bool = False) -> NodeHandle:
    """Init a node home (+ admit it + import its credential), on a free port.

    By default the set-up runs in this process through the functions the CLI calls
    (``init_home``, ``Authority.admit``, ``import_credential``), which saves an
    interpreter start per step; ``via_cli=True`` runs the ``autospace`` commands instead.
    Servers are always separate processes.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = base / name
    participant_id = participant_id or f"BPN-{name}"
    node_env = {**NODE_TEST_ENV, **(env or {})}
    if via_cli:
        args = ["init", "--home", str(home), "--participant-id", participant_id, "--name", name,
                "--url", url, "--port", str(port), "--database-url", database_url]
        if authority is not None:
            args += ["--authority-url", authority.url]
        out = run_cli(*args, env=node_env).stdout
        did = re.search(r"did:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
        api_key = re.search(r"api key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    else:
        from node.home import init_home

        result = init_home(home, participant_id=participant_id, name=name, public_url=url,
                           database_url=database_url, server_port=port,
                           authority_url=authority.url if authority is not None else "")
        did, api_key = result.did, result.api_key
    node = NodeHandle(name, home, url, port, did, api_key, database_url, node_env)
    if authority is not None and admit:
        cred = authority.admit(did, participant_id, role, base / f"{name}.credential.jwt",
                               via_cli=via_cli)
        if via_cli:
            run_cli("credential", "import", "--home", str(home), str(cred), env=node_env)
        else:
            _import_credential(node, cred)
    return node


def _import_credential(node: NodeHandle, cred: Path) -> None:
    import httpx as _httpx

    from connectors.identity.resolver import HttpDidResolver
    from connectors.identity.trust import AnchorKeys
    from node.config import NodeConfig
    from node.context import trust_anchors
    from node.credential import import_credential

    config = NodeConfig.load(node.home, env={})
    with _httpx.Client(timeout=10) as http:
        keys = AnchorKeys(trust_anchors(config), HttpDidResolver(http, clock=time.time))
        import_credential(node.home, cred.read_text(), node_did=config.did, keys=keys,
                          now=time.time())


class DataSpace:
    """A running authority and nodes under ``base``; all stopped (databases dropped) on exit."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.logs = base / "logs"
        self._stack = ExitStack()
        self.authority: AuthorityHandle | None = None
        self.nodes: dict[str, NodeHandle] = {}

    def __enter__(self) -> DataSpace:
        """Create and start the authority (importing a credential checks it over HTTP)."""
        self.authority = create_authority(self.base)
        try:
            self.authority.start(self.logs)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._stack.close()

    def add_node(self, name: str, *, role: str = "supplier", admit: bool = True,
                 env: dict[str, str] | None = None, via_cli: bool = False) -> NodeHandle:
        """Create a node with its own database, admitted to the data space by default."""
        db = self._stack.enter_context(fresh_database_url(self.base))
        node = create_node(self.base, name, database_url=db, authority=self.authority,
                           role=role, env=env, admit=admit, via_cli=via_cli)
        self.nodes[name] = node
        return node

    def add_nodes(self, roles: dict[str, str], *, env: dict[str, str] | None = None,
                  envs: dict[str, dict[str, str]] | None = None,
                  via_cli: bool = False) -> list[NodeHandle]:
        """Create several admitted nodes (name -> role); returns them in order.

        ``env`` applies to every node, ``envs[name]`` to one node (on top of ``env``).
        With ``via_cli`` the commands run concurrently (Alembic is not thread-safe, so
        the in-process set-up runs one node after the other).
        """
        from concurrent.futures import ThreadPoolExecutor

        dbs = {name: self._stack.enter_context(fresh_database_url(self.base)) for name in roles}

        def make(name: str, role: str) -> NodeHandle:
            return create_node(self.base, name, database_url=dbs[name], authority=self.authority,
                               role=role, env={**(env or {}), **(envs or {}).get(name, {})},
                               via_cli=via_cli)

        if via_cli:
            with ThreadPoolExecutor(max_workers=len(roles) or 1) as pool:
                futures = {name: pool.submit(make, name, role) for name, role in roles.items()}
                nodes = [futures[name].result() for name in roles]
        else:
            nodes = [make(name, role) for name, role in roles.items()]
        for node in nodes:
            self.nodes[node.name] = node
        return nodes

    def start(self, *names: str, dev: bool = False) -> None:
        """Start the authority (if not running) and the named nodes (default: all) in parallel."""
        assert self.authority is not None
        if self.authority.process is None:
            self.authority.start(self.logs)
        launched = [self.nodes[name].launch(self.logs, dev=dev)
                    for name in names or tuple(self.nodes) if self.nodes[name].process is None]
        for service in launched:  # started together, awaited in turn
            wait_ready(service)

    def stop(self) -> None:
        """SIGTERM every process at once, then wait for each (graceful shutdown)."""
        services = [n.process for n in self.nodes.values() if n.process is not None]
        if self.authority is not None and self.authority.process is not None:
            services.append(self.authority.process)
        for service in services:
            if service.alive():
                service.popen.send_signal(signal.SIGTERM)
        for service in services:
            service.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[DataSpace]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
