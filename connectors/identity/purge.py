"""When replay stores drop expired token ids: at most once per interval, on the way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PurgeSchedule:
    """Run ``purge(now)`` from whichever call finds it due, at most once per ``every``
    seconds; a call that finds another purge running goes on without waiting (the token
    check it belongs to must not queue behind a bulk delete)."""

    def __init__(self, every: float, clock: Callable[[], float],
                 purge: Callable[[float], Any]) -> None:
        self._every = every
        self._clock = clock
        self._purge = purge
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe(self) -> None:
        now = self._clock()
        if now >= self._next and self._lock.acquire(blocking=False):
            try:
                self._next = now + self._every
                self._purge(now)
            finally:
                self._lock.release()
