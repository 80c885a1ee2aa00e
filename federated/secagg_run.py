"""Drive one SecAgg+ round over a :class:`~federated.transport.Transport` (coordinator side)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from federated.errors import FederatedError
from federated.secagg_server import SecAggCoordinator, ServerState
from federated.transport import Transport


@dataclass
class SecAggOutcome:
    """What a round produced: the sum (or why it aborted) and who took part at each stage."""

    result: np.ndarray | None
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    refusals: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    abort_reason: str | None = None


def run_secagg(
    coordinator: SecAggCoordinator,
    transport: Transport,
    on_stage: Callable[[str, SecAggCoordinator], None] | None = None,
) -> SecAggOutcome:
    """Run all four stages; invalid replies are rejected (recorded) and count as dropouts."""
    rejected: dict[str, str] = {}
    requests = coordinator.start()
    while requests:
        replies = transport.exchange(requests)
        for pid, reply in replies.items():
            try:
                coordinator.receive(reply)
            except FederatedError as exc:
                rejected[pid] = str(exc)
        if on_stage is not None:
            on_stage(coordinator.state.value, coordinator)
        requests = coordinator.advance()
    cohort = set(coordinator.config.cohort)
    survivors = coordinator.survivors if coordinator.state is ServerState.DONE else ()
    return SecAggOutcome(
        result=coordinator.result,
        survivors=survivors,
        dropped=tuple(sorted(cohort - set(survivors))),
        refusals=dict(coordinator.refusals),
        rejected=rejected,
        abort_reason=coordinator.abort_reason,
    )
