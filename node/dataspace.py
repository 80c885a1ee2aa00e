"""A local data space on one machine: an authority, an OEM node and two supplier nodes.

``autospace dataspace up DIR`` is the quickest way to try autospace: it creates the homes
on first use (each node admitted by the authority, whose key is pinned in every node's
configuration so that nothing depends on start-up order), starts every server as a
detached process on 127.0.0.1, publishes sample automotive assets through each node's
management API (as an operator would) and writes ``DIR/dataspace.json`` for scripts.
``autospace dataspace down DIR`` stops them. Process ids live in ``DIR/processes.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.identity.resolver import HttpDidResolver
from connectors.identity.trust import AnchorKeys
from node.authority_home import init_authority, load_authority
from node.config import NodeConfig
from node.context import trust_anchors
from node.credential import import_credential
from node.home import init_home

LAYOUT_FILE = "dataspace.json"
PROCESSES_FILE = "processes.json"
DEFAULT_BASE_PORT = 18180
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
PROTOCOL_PATH = "/protocol"


class DataspaceError(Exception):
    """The local data space cannot be set up, started or stopped as asked (one line)."""


@dataclass(frozen=True)
class MemberSpec:
    """A participant of the sample data space."""

    key: str
    name: str
    role: str
    participant_id: str
    region: str
    port_offset: int


#: The sample data space: one OEM and two suppliers (port = base port + offset).
MEMBERS: tuple[MemberSpec, ...] = (
    MemberSpec("oem", "OEM Assembly Plant", "oem", "BPNL000000000OEM", "CN", 1),
    MemberSpec("supplier-brakes", "Brake Systems Supplier", "supplier", "BPNL00000000SUP1",
               "CN", 2),
    MemberSpec("supplier-cells", "Battery Cell Supplier", "supplier", "BPNL00000000SUP2",
               "CN", 3),
)


@dataclass
class Participant:
    """One entry of ``dataspace.json``."""

    name: str
    role: str
    participant_id: str
    did: str
    home: str
    protocol_url: str
    management_url: str
    api_key: str
    url: str
    log: str


@dataclass
class Layout:
    """What ``dataspace.json`` holds: the authority and every participant."""

    directory: str
    authority: dict[str, str]
    participants: dict[str, Participant] = field(default_factory=dict)
    samples_published: bool = False

    def save(self, directory: Path) -> None:
        data = {
            "directory": self.directory,
            "authority": self.authority,
            "participants": {k: asdict(v) for k, v in self.participants.items()},
            "samples_published": self.samples_published,
        }
        path = directory / LAYOUT_FILE
        tmp = path.with_suffix(".tmp")
        # holds management API keys: readable by the operator only
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> Layout:
        path = directory / LAYOUT_FILE
        try:
            data = json.loads(path.read_text())
            return cls(
                directory=data["directory"],
                authority=data["authority"],
                participants={k: Participant(**v) for k, v in data["participants"].items()},
                samples_published=bool(data.get("samples_published", False)),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataspaceError(f"{path} is unreadable ({exc}); remove the folder and run "
                                 "`autospace dataspace up` again") from None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def init_dataspace(directory: Path, *, base_port: int = DEFAULT_BASE_PORT,
                   database_url: Callable[[str], str] | None = None) -> Layout:
    """Create the authority and member homes under ``directory`` and admit every member.

    ``database_url(member_key)`` may give each node a database (default: SQLite in its home).
    """
    directory = directory.resolve()
    if (directory / LAYOUT_FILE).exists():
        raise DataspaceError(f"{directory} already holds a data space")
    directory.mkdir(parents=True, exist_ok=True)
    authority_url = f"http://127.0.0.1:{base_port}"
    settings, authority_key = init_authority(directory / "authority",
                                             name="Automotive Data Space Authority",
                                             url=authority_url)
    authority, _, _ = load_authority(directory / "authority")
    layout = Layout(
        directory=str(directory),
        authority={"did": settings.did, "url": authority_url, "public_key": authority_key,
                   "home": str(directory / "authority"),
                   "log": str(directory / "logs" / "authority.log")},
    )
    for spec in MEMBERS:
        port = base_port + spec.port_offset
        url = f"http://127.0.0.1:{port}"
        home = directory / spec.key
        result = init_home(
            home, participant_id=spec.participant_id, name=spec.name, public_url=url,
            region=spec.region, database_url=database_url(spec.key) if database_url else "",
            authority_url=authority_url, authority_did=settings.did,
            authority_public_key=authority_key, server_port=port,
        )
        token, _ = authority.admit(member_did=result.did, participant_id=spec.participant_id,
                                   role=spec.role, region=spec.region, valid_days=365,
                                   name=spec.name, url=url)
        config = NodeConfig.load(home, env={})
        with httpx.Client(timeout=5) as http:  # the anchor is pinned: nothing is fetched
            keys = AnchorKeys(trust_anchors(config), HttpDidResolver(http, clock=time.time))
            import_credential(home, token, node_did=result.did, keys=keys, now=time.time())
        layout.participants[spec.key] = Participant(
            name=spec.name, role=spec.role, participant_id=spec.participant_id, did=result.did,
            home=str(home), protocol_url=f"{url}{PROTOCOL_PATH}",
            management_url=f"{url}/management", api_key=result.api_key, url=url,
            log=str(directory / "logs" / f"{spec.key}.log"),
        )
    layout.save(directory)
    return layout


def _spawn(args: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSPACE_")}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ready(name: str, url: str, pid: int, log: str, path: str = "/health/ready") -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise DataspaceError(f"{name} exited during start-up; see {log}")
        try:
            if httpx.get(f"{url}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise DataspaceError(f"{name} did not become ready within {READY_TIMEOUT_SECONDS:.0f}s; "
                         f"see {log}")


def running_processes(directory: Path) -> dict[str, int]:
    """Names and pids of the data space's processes that are still alive."""
    path = directory / PROCESSES_FILE
    if not path.exists():
        return {}
    try:
        pids = {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        return {}
    return {name: pid for name, pid in pids.items() if _alive(pid)}


def up(directory: Path, *, base_port: int = DEFAULT_BASE_PORT,
       publish: Callable[[Layout], None] | None = None) -> Layout:
    """Start the data space under ``directory`` (creating it on first use)."""
    directory = directory.resolve()
    if running_processes(directory):
        raise DataspaceError(f"the data space in {directory} is already running; "
                             "`autospace dataspace down` first")
    if (directory / LAYOUT_FILE).exists():
        layout = Layout.load(directory)
    else:
        busy = [p for p in [base_port] + [base_port + m.port_offset for m in MEMBERS]
                if not _port_free(p)]
        if busy:
            raise DataspaceError(f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use; "
                                 "choose another --base-port")
        layout = init_dataspace(directory, base_port=base_port)
    pids: dict[str, int] = {}
    try:
        auth_port = layout.authority["url"].rsplit(":", 1)[1]
        pids["authority"] = _spawn(["authority", "serve", "--home", layout.authority["home"],
                                    "--port", auth_port], Path(layout.authority["log"]))
        for key, member in layout.participants.items():
            pids[key] = _spawn(["serve", "--home", member.home], Path(member.log))
        _write_pids(directory, pids)
        _wait_ready("authority", layout.authority["url"], pids["authority"],
                    layout.authority["log"], path="/health/live")
        for key, member in layout.participants.items():
            _wait_ready(key, member.url, pids[key], member.log)
        if publish is not None and not layout.samples_published:
            publish(layout)
            layout.samples_published = True
            layout.save(directory)
    except BaseException:
        down(directory)
        raise
    return layout


def _write_pids(directory: Path, pids: dict[str, int]) -> None:
    (directory / PROCESSES_FILE).write_text(json.dumps(pids, indent=2) + "\n")


def down(directory: Path) -> list[str]:
    """Stop every process of the data space (SIGTERM, then SIGKILL); return their names."""
    directory = directory.resolve()
    alive = running_processes(directory)
    for pid in alive.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(_alive(p) for p in alive.values()):
        time.sleep(0.1)
    for pid in alive.values():
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
    (directory / PROCESSES_FILE).unlink(missing_ok=True)
    return sorted(alive)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group (gunicorn's workers too); fall back to the process."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def describe(layout: Layout) -> list[dict[str, Any]]:
    """Rows for the CLI's table."""
    rows = [{"name": "authority", "role": "authority", "participant_id": "-",
             "url": layout.authority["url"], "did": layout.authority["did"]}]
    for key, m in layout.participants.items():
        rows.append({"name": key, "role": m.role, "participant_id": m.participant_id,
                     "url": m.url, "did": m.did})
    return rows
