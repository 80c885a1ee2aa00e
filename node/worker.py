"""Background work: a registry of periodic jobs and the loop that runs them.

Packages contribute jobs by appending ``"module:function"`` to :data:`JOB_PROVIDERS`;
each provider is called with ``(registry, context)`` and registers its jobs. The loop
runs each job when due, logs and backs off on failure, and stops between jobs on
SIGTERM/SIGINT (graceful shutdown: a running job finishes first).
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("autospace.worker")

#: Job providers, ``"module:function(registry, context)"``; packages append theirs.
JOB_PROVIDERS: list[str] = [
    "node.jobs:register_identity_jobs",
    "connectors.dataplane.jobs:register",
    "connectors.wiring:register_jobs",
]
MAX_BACKOFF = 300.0


@dataclass
class Job:
    """A periodic job: ``func()`` every ``interval`` seconds."""

    name: str
    interval: float
    func: Callable[[], Any]
    next_run: float = 0.0
    failures: int = 0
    runs: int = field(default=0)


class JobRegistry:
    """Named periodic jobs; names are unique."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(self, name: str, interval: float, func: Callable[[], Any], *,
                 run_on_start: bool = True) -> None:
        if name in self._jobs:
            raise ValueError(f"job {name!r} is already registered")
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._jobs[name] = Job(name, interval, func, next_run=0.0 if run_on_start else -1.0)

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())


class WorkerLoop:
    """Runs due jobs until :meth:`stop` is called.

    Args:
        registry: jobs to run.
        clock: monotonic seconds.
        tick: longest sleep between checks (a stop request is seen within it).
    """

    def __init__(self, registry: JobRegistry, *, clock: Callable[[], float] = time.monotonic,
                 tick: float = 1.0) -> None:
        self.registry = registry
        self._clock = clock
        self._tick = tick
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_due(self) -> int:
        """Run every job that is due now; return how many ran."""
        now = self._clock()
        ran = 0
        for job in self.registry.jobs:
            if self._stop.is_set():
                break
            if job.next_run < 0:
                job.next_run = now + job.interval
            if now < job.next_run:
                continue
            ran += 1
            try:
                job.func()
            except Exception:
                job.failures += 1
                delay = min(job.interval * (2 ** min(job.failures, 10)), MAX_BACKOFF)
                log.exception("job %s failed (%d in a row); next try in %.1fs", job.name,
                              job.failures, delay)
                job.next_run = self._clock() + delay
            else:
                job.failures = 0
                job.runs += 1
                job.next_run = self._clock() + job.interval
        return ran

    def run(self) -> None:
        """Loop until stopped."""
        log.info("worker started", extra={"fields": {"jobs": [j.name for j in
                                                               self.registry.jobs]}})
        while not self._stop.is_set():
            self.run_due()
            upcoming = [j.next_run for j in self.registry.jobs if j.next_run >= 0]
            wait = min([max(0.0, t - self._clock()) for t in upcoming] + [self._tick])
            self._stop.wait(wait)
        log.info("worker stopped")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)


def build_registry(context: Any, providers: list[str] | None = None) -> JobRegistry:
    """A registry filled by every job provider."""
    registry = JobRegistry()
    for spec in JOB_PROVIDERS if providers is None else providers:
        module_name, _, attr = spec.partition(":")
        getattr(importlib.import_module(module_name), attr)(registry, context)
    return registry
