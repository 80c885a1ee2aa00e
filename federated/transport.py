"""The transport interface the round engine drives, and an in-process implementation.

The library never does I/O itself: the coordinator hands a batch of requests (one per
participant) to a :class:`Transport` and gets back the replies that arrived. The node implements
it over its authenticated peer channel (``to_wire`` / ``from_wire`` on each message); tests and
benchmarks use :class:`LocalTransport`, which calls participants in the same process and can
drop participants at chosen stages to simulate failures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from federated.errors import FederatedError

Handler = Callable[[Any], Any]


class Transport(Protocol):
    """Carries one stage's requests to participants and brings back their replies."""

    def exchange(self, requests: Mapping[str, Any]) -> dict[str, Any]:
        """Deliver ``requests[pid]`` to each participant; return ``{pid: reply}`` for replies
        received in time. A participant missing from the result has dropped out."""
        ...


class LocalTransport:
    """In-process transport: each participant is a handler ``message -> reply``.

    Args:
        handlers: participant id -> handler (e.g. ``Participant.handle``).
        drop: called as ``drop(stage_name, pid)`` before delivery; True simulates a participant
            that went offline at that stage (it receives nothing from then on).
        wire: if True, every message goes through ``to_wire``/``from_wire`` (tests the codec).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        drop: Callable[[str, str], bool] | None = None,
        wire: bool = False,
    ) -> None:
        self.handlers = dict(handlers)
        self.drop = drop or (lambda stage, pid: False)
        self.wire = wire
        self.offline: set[str] = set()

    def exchange(self, requests: Mapping[str, Any]) -> dict[str, Any]:
        """Call each online participant's handler; exceptions count as a dropped participant."""
        from federated.vocabulary import from_wire, to_wire

        replies: dict[str, Any] = {}
        for pid, request in requests.items():
            stage = request.header.stage.value
            if pid in self.offline or pid not in self.handlers or self.drop(stage, pid):
                self.offline.add(pid)
                continue
            try:
                if self.wire:
                    request = from_wire(to_wire(request))
                reply = self.handlers[pid](request)
                if self.wire:
                    reply = from_wire(to_wire(reply))
            except FederatedError:
                self.offline.add(pid)
                continue
            replies[pid] = reply
        return replies
