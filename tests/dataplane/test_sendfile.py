"""The sendfile path under a real gunicorn: exact bytes and hash, cut streams, revocation."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.dataplane.recorder import SqlAccessRecorder
from connectors.dsp.vocabulary import TransferState
from tests.dataplane.conftest import PROVIDER

REPO = Path(__file__).resolve().parents[2]
SIZE = 48 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(world, db_url):
    world.clock.now = time.time()  # the server runs on the real clock
    port = _free_port()
    state = world.tmp / "gunicorn-state.json"
    state.write_text(json.dumps({"db": db_url, "home": str(world.keys.home),
                                 "participant": PROVIDER,
                                 "public": f"http://127.0.0.1:{port}"}))
    proc = subprocess.Popen([sys.executable, "-m", "tests.dataplane.gunicorn_app", str(state),
                             str(port)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("gunicorn did not start")
    yield f"http://127.0.0.1:{port}/dataplane/public"
    proc.terminate()
    proc.wait(timeout=30)


def _entry(world, transfer_id, n=1, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = SqlAccessRecorder(world.engine).entries(transfer_id=transfer_id)
        if len(rows) >= n:
            return rows[n - 1]
        time.sleep(0.05)
    pytest.fail("the access was not recorded")


@pytest.fixture
def data(world) -> bytes:
    blob = os.urandom(SIZE)
    (world.tmp / "big.bin").write_bytes(blob)
    return blob


def test_sendfile_full_range_and_cached_hash(world, gunicorn, data):
    agreement, entity = world.transfer(world.asset({"type": "File",
                                                    "path": str(world.tmp / "big.bin")}))
    token = world.token(agreement, entity)
    for n in (1, 2):
        r = httpx.get(gunicorn, headers={"Authorization": token}, timeout=60)
        assert r.status_code == 200 and r.content == data
        entry = _entry(world, entity.id, n)
        assert entry["status"] == "complete" and entry["bytes"] == SIZE
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    r = httpx.get(gunicorn, headers={"Authorization": token, "Range": "bytes=1000-9000999"},
                  timeout=60)
    assert r.status_code == 206 and r.content == data[1000:9001000]
    entry = _entry(world, entity.id, 3)
    assert entry["bytes"] == 9_000_000
    assert entry["sha256"] == hashlib.sha256(data[1000:9001000]).hexdigest()


def test_cut_download_logs_exactly_the_bytes_sent(world, gunicorn, data):
    agreement, entity = world.transfer(world.asset({"type": "File",
                                                    "path": str(world.tmp / "big.bin")}))
    with httpx.stream("GET", gunicorn, headers={"Authorization": world.token(agreement, entity)},
                      timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_raw(1 << 20))
    entry = _entry(world, entity.id)
    assert entry["status"] == "aborted" and 0 < entry["bytes"] < SIZE
    assert entry["sha256"] == hashlib.sha256(data[: entry["bytes"]]).hexdigest()


def test_suspension_cuts_a_sendfile_stream(world, gunicorn, data):
    agreement, entity = world.transfer(world.asset({"type": "File",
                                                    "path": str(world.tmp / "big.bin")}))
    got = 0
    with pytest.raises(httpx.HTTPError), httpx.stream(
            "GET", gunicorn, headers={"Authorization": world.token(agreement, entity)},
            timeout=30) as r:
        for chunk in r.iter_raw(1 << 16):
            got += len(chunk)
            if got == len(chunk):
                world.set_state(entity.id, TransferState.SUSPENDED)
            time.sleep(0.01)  # a slow reader: the stream is still running after the check
    assert got < SIZE
    entry = _entry(world, entity.id)
    assert entry["status"] == "aborted" and "SUSPENDED" in (entry["reason"] or "")
