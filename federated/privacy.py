"""Client-side differential privacy and an RDP accountant.

Mechanism: each participant clips its model update to L2 norm ``clip_norm`` and adds Gaussian
noise of standard deviation ``noise_multiplier * clip_norm`` before masking, so the update is
(client-level) differentially private even towards a coordinator that could see it.

Accounting: Rényi DP of the sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019, "Rényi
Differential Privacy of the Sampled Gaussian Mechanism", integer orders, Eq. for A_alpha), which
for sampling rate ``q = 1`` is the Gaussian mechanism's ``alpha / (2 sigma^2)``. RDP composes
additively over rounds; epsilon for a given delta uses the conversion
``eps = rdp(alpha) + log(1/delta) / (alpha - 1)`` minimised over orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ORDERS = tuple(range(2, 257))


def clip_l2(update: np.ndarray, clip_norm: float) -> np.ndarray:
    """Scale ``update`` down to L2 norm ``clip_norm`` if it is longer (never up)."""
    norm = float(np.linalg.norm(update))
    return update if norm <= clip_norm else update * (clip_norm / norm)


def privatise(update: np.ndarray, clip_norm: float, noise_multiplier: float,
              rng: np.random.Generator) -> np.ndarray:
    """Clip, then add N(0, (noise_multiplier * clip_norm)^2) to every coordinate."""
    clipped = clip_l2(update, clip_norm)
    return clipped + rng.normal(0.0, noise_multiplier * clip_norm, size=clipped.shape)


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))


def rdp_sampled_gaussian(q: float, noise_multiplier: float, order: int) -> float:
    """RDP at integer ``order`` of one step of the sampled Gaussian mechanism."""
    if noise_multiplier <= 0:
        return math.inf
    if q == 0:
        return 0.0
    sigma2 = noise_multiplier**2
    if q == 1.0:
        return order / (2 * sigma2)
    log_a = -math.inf
    for k in range(order + 1):
        term = (math.log(math.comb(order, k)) + k * math.log(q) + (order - k) * math.log1p(-q)
                + (k * k - k) / (2 * sigma2))
        log_a = _log_add(log_a, term)
    return log_a / (order - 1)


@dataclass
class PrivacyAccountant:
    """Tracks the steps a participant contributed under one noise setting.

    Attributes:
        noise_multiplier: sigma / clip_norm.
        sample_rate: probability that a given record/client is in a step (1 = always).
        steps: rounds contributed so far.
    """

    noise_multiplier: float
    sample_rate: float = 1.0
    steps: int = 0

    def epsilon(self, delta: float, steps: int | None = None) -> float:
        """Smallest epsilon over the orders for ``steps`` (default: the recorded steps)."""
        steps = self.steps if steps is None else steps
        if steps == 0:
            return 0.0
        best = math.inf
        for order in ORDERS:
            rdp = steps * rdp_sampled_gaussian(self.sample_rate, self.noise_multiplier, order)
            best = min(best, rdp + math.log(1 / delta) / (order - 1))
        return best

    def record(self) -> None:
        """Count one more contributed round."""
        self.steps += 1
