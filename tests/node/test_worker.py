"""The background job loop: scheduling, failure backoff, graceful stop, job providers."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from node.worker import JobRegistry, WorkerLoop, build_registry


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_jobs_run_when_due():
    clock, runs = FakeClock(), []
    reg = JobRegistry()
    reg.register("a", 10, lambda: runs.append("a"))
    reg.register("b", 30, lambda: runs.append("b"), run_on_start=False)
    loop = WorkerLoop(reg, clock=clock)
    assert loop.run_due() == 1 and runs == ["a"]
    clock.t += 10
    loop.run_due()
    clock.t += 20
    loop.run_due()
    assert runs == ["a", "a", "a", "b"]  # due jobs run in registration order


def test_failing_job_backs_off_and_recovers():
    clock, calls = FakeClock(), []

    def flaky():
        calls.append(clock.t)
        if len(calls) < 3:
            raise RuntimeError("down")

    reg = JobRegistry()
    reg.register("flaky", 1, flaky)
    loop = WorkerLoop(reg, clock=clock)
    for _ in range(20):
        loop.run_due()
        clock.t += 1
    job = reg.jobs[0]
    assert calls[1] - calls[0] == 2 and calls[2] - calls[1] == 4  # exponential backoff
    assert job.failures == 0 and job.runs >= 1


def test_duplicate_and_bad_registrations():
    reg = JobRegistry()
    reg.register("x", 1, lambda: None)
    with pytest.raises(ValueError):
        reg.register("x", 1, lambda: None)
    with pytest.raises(ValueError):
        reg.register("y", 0, lambda: None)


def test_stop_lets_the_running_job_finish():
    reg, done = JobRegistry(), threading.Event()
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(0.3)
        done.set()

    reg.register("slow", 60, slow)
    loop = WorkerLoop(reg, tick=0.05)
    t = threading.Thread(target=loop.run)
    t.start()
    started.wait(2)
    loop.stop()
    t.join(5)
    assert done.is_set() and not t.is_alive()


def test_providers_fill_the_registry():
    seen = []
    sys.modules[__name__].provider = lambda registry, ctx: (seen.append(ctx),  # type: ignore
                                                            registry.register("p", 5, int))
    reg = build_registry("ctx", providers=[f"{__name__}:provider"])
    assert [j.name for j in reg.jobs] == ["p"] and seen == ["ctx"]


@pytest.mark.slow
def test_worker_process_stops_on_sigterm(tmp_path, db_url):
    from node.home import init_home
    from tests.support.processes import autospace_argv

    init_home(tmp_path / "n", participant_id="W", name="W", public_url="http://127.0.0.1:1",
              database_url=db_url)
    proc = subprocess.Popen(autospace_argv("worker", "--home", str(tmp_path / "n")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "worker started" in line:
            break
    assert any("identity.replay_purge" in x for x in lines), lines
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "worker stopped" in out
