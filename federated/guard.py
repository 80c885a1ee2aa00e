"""The participant-side round guard: may this data owner contribute to this round?

The node calls the guard (through :class:`~federated.engine.Participant`) before a participant
trains or reveals anything, with a :class:`RoundContext` describing the round. The node's guard
checks the round against the data owner's agreement (cohort size, secure aggregation, epsilon
budget, purpose, validity); :class:`AgreementLimits` is the library's version of those checks,
which the node can use directly with limits read from the agreement's policy. Decisions fail
closed and list every reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RoundContext:
    """What a participant knows about a round when it is offered.

    Attributes:
        participant_id / coordinator_id / task_id / round: who asks, for what.
        asset: the participant's asset named in the task for this participant.
        agreement: agreement id from the task (None if the coordinator named none).
        purpose: purpose stated in the task.
        cohort_size: number of participants invited to the round.
        min_participants: the task's minimum; the round aborts below it.
        secure_aggregation: whether updates are aggregated with SecAgg+ (always True here).
        dp: whether client-side DP noise is added; epsilon fields are inf when it is not.
        epsilon_spent / epsilon_after: this participant's epsilon (at ``delta``) before and
            after contributing to this round.
        delta: the task's delta.
    """

    participant_id: str
    coordinator_id: str
    task_id: str
    round: int
    asset: str
    agreement: str | None
    purpose: str
    cohort_size: int
    min_participants: int
    secure_aggregation: bool
    dp: bool
    epsilon_spent: float
    epsilon_after: float
    delta: float


@dataclass(frozen=True)
class GuardDecision:
    """Allowed, or refused with reasons the coordinator reports."""

    allowed: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def allow(cls) -> GuardDecision:
        """An unconditional yes."""
        return cls(True)

    @classmethod
    def deny(cls, *reasons: str) -> GuardDecision:
        """A refusal; a refusal without a reason still says something."""
        return cls(False, reasons or ("refused by the data owner",))


RoundGuard = Callable[[RoundContext], GuardDecision]


@dataclass(frozen=True)
class AgreementLimits:
    """Limits a data owner's agreement puts on federated use of its asset.

    Attributes:
        min_cohort: smallest cohort the owner accepts (its update hides among the others).
        require_secure_aggregation: the update must be masked.
        max_epsilon: total epsilon budget at ``delta``; None = no DP required.
        purposes: allowed purposes (empty = none allowed: fail closed).
        not_before / not_after: validity of the agreement (aware datetimes), None = open.
        agreement: the agreement id the round must cite (None = any).
    """

    min_cohort: int = 2
    require_secure_aggregation: bool = True
    max_epsilon: float | None = None
    purposes: frozenset[str] = frozenset()
    not_before: datetime | None = None
    not_after: datetime | None = None
    agreement: str | None = None

    def check(self, ctx: RoundContext, now: datetime) -> GuardDecision:
        """Every violated limit, or allow."""
        reasons = []
        if ctx.cohort_size < self.min_cohort or ctx.min_participants < self.min_cohort:
            reasons.append(f"cohort of {ctx.cohort_size} (minimum {ctx.min_participants}) is "
                           f"below the agreed minimum of {self.min_cohort}")
        if self.require_secure_aggregation and not ctx.secure_aggregation:
            reasons.append("the agreement requires secure aggregation")
        if self.max_epsilon is not None:
            if not ctx.dp or math.isinf(ctx.epsilon_after):
                reasons.append("the agreement requires differential privacy (epsilon budget "
                               f"{self.max_epsilon:g})")
            elif ctx.epsilon_after > self.max_epsilon:
                reasons.append(f"epsilon budget exhausted: {ctx.epsilon_spent:.3g} spent, this "
                               f"round would reach {ctx.epsilon_after:.3g} > {self.max_epsilon:g}")
        if ctx.purpose not in self.purposes:
            reasons.append(f"purpose {ctx.purpose!r} is not permitted by the agreement")
        if self.not_before is not None and now < self.not_before:
            reasons.append(f"the agreement is valid only from {self.not_before.isoformat()}")
        if self.not_after is not None and now > self.not_after:
            reasons.append(f"the agreement expired at {self.not_after.isoformat()}")
        if self.agreement is not None and ctx.agreement != self.agreement:
            reasons.append(f"the round cites agreement {ctx.agreement!r}, expected "
                           f"{self.agreement!r}")
        return GuardDecision.deny(*reasons) if reasons else GuardDecision.allow()
