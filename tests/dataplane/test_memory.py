"""Constant memory: a 1 GiB sparse file streamed over real HTTP keeps RSS flat."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx

from connectors.dataplane.recorder import SqlAccessRecorder

SIZE = 1 << 30
MAX_GROWTH = 64 << 20  # a buffered copy would add 1 GiB


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_one_gib_streams_in_constant_memory(world, serve):
    path = world.tmp / "sparse.bin"
    with open(path, "wb") as fh:
        fh.truncate(SIZE)
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}))
    token = world.token(agreement, entity)
    srv = serve(world.app)
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    digest = hashlib.sha256()
    got = 0
    with httpx.stream("GET", srv.url + "/dataplane/public", headers={"Authorization": token},
                      timeout=120) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw(1 << 20):
            got += len(chunk)
            digest.update(chunk)
    stop.set()
    sampler.join()
    assert got == SIZE
    assert peak[0] - base < MAX_GROWTH, f"RSS grew by {(peak[0] - base) >> 20} MiB"
    log: list = []
    for _ in range(100):  # the server records after its last byte went out: wait for it
        log = SqlAccessRecorder(world.engine).entries(transfer_id=entity.id)
        if log:
            break
        time.sleep(0.05)
    assert log[-1]["bytes"] == SIZE and log[-1]["sha256"] == digest.hexdigest()
