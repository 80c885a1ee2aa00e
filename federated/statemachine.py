"""Table-driven state machines (STYLE.md 5): an ``Enum`` of states, one ``ALLOWED`` mapping from
each state to the states it may move to, and one ``transition()`` that applies it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Generic, TypeVar

from federated.errors import TransitionError

S = TypeVar("S", bound=Enum)


class StateMachine(Generic[S]):
    """Holds a current state and moves it only along edges of ``allowed``."""

    def __init__(self, initial: S, allowed: Mapping[S, frozenset[S]]) -> None:
        self._allowed = allowed
        self.state: S = initial

    def can(self, target: S) -> bool:
        """Whether ``target`` is reachable in one step from the current state."""
        return target in self._allowed.get(self.state, frozenset())

    def transition(self, target: S) -> None:
        """Move to ``target`` or raise :class:`TransitionError` saying which edge is missing."""
        if not self.can(target):
            raise TransitionError(
                f"transition {self.state.name} -> {target.name} is not allowed",
                expected=", ".join(sorted(s.name for s in self._allowed.get(self.state, ()))),
                found=target.name,
            )
        self.state = target
