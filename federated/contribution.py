"""What one participant contributes to a round, as one ring vector for secure aggregation.

Layout (all real values fixed-point encoded with the task's ``scale``, modulo ``2**bits``)::

    [ w * clip(delta) (d values) | w | w * train_loss | e | e * eval_loss | e * eval_accuracy ]

``w`` is the training weight (number of training examples, capped at ``MAX_WEIGHT``; 1 when
DP is on, so one participant's influence stays bounded by the clip norm), ``e`` the number of
evaluation examples (capped likewise). The coordinator learns only the sums, from which it
forms the weighted mean update and the securely aggregated training and evaluation metrics.
Losses are capped at ``LOSS_CAP`` so the capacity bound below holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from federated.masking import Quantiser, check_capacity, dtype_for

MAX_WEIGHT = 1_000_000  # examples counted per participant, at most
LOSS_CAP = 100.0
STATS = 5


@dataclass(frozen=True)
class Contribution:
    """A participant's round output before encoding."""

    delta: np.ndarray
    weight: float
    train_loss: float
    eval_count: int
    eval_loss: float
    eval_accuracy: float


@dataclass(frozen=True)
class Aggregate:
    """Decoded sums, turned into means."""

    avg_delta: np.ndarray
    total_weight: float
    train_loss: float
    eval_count: float
    eval_loss: float
    eval_accuracy: float


def ring_capacity_check(update_clip: float, scale: float, bits: int, cohort: int) -> None:
    """Both the update part and the statistics part must fit the ring for ``cohort``."""
    check_capacity(Quantiser(update_clip, scale, bits), cohort, MAX_WEIGHT)
    check_capacity(Quantiser(LOSS_CAP, scale, bits), cohort, MAX_WEIGHT)


def encode(c: Contribution, update_clip: float, scale: float, bits: int) -> np.ndarray:
    """The ring vector of one contribution."""
    w = min(max(c.weight, 0.0), MAX_WEIGHT)
    e = float(min(max(c.eval_count, 0), MAX_WEIGHT))
    update = Quantiser(update_clip, scale, bits).encode(c.delta, weight=w)
    stats = np.array([w, w * min(c.train_loss, LOSS_CAP), e, e * min(c.eval_loss, LOSS_CAP),
                      e * min(max(c.eval_accuracy, 0.0), 1.0)])
    ring_stats = np.rint(stats * scale).astype(np.int64).astype(dtype_for(bits))
    return np.concatenate([update, ring_stats])


def decode(total: np.ndarray, scale: float, bits: int) -> Aggregate:
    """Means from the aggregated ring vector (a zero total weight gives a zero update)."""
    values = Quantiser(1.0, scale, bits).decode(total)
    sums, stats = values[:-STATS], values[-STATS:]
    w, wl, e, el, ea = (float(v) for v in stats)
    avg = sums / w if w > 0 else np.zeros_like(sums)
    return Aggregate(avg, w, wl / w if w > 0 else 0.0, e, el / e if e > 0 else 0.0,
                     ea / e if e > 0 else 0.0)
