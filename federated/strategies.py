"""Server-side aggregation strategies and early stopping.

With secure aggregation the coordinator only learns ``sum_i w_i * delta_i`` and ``sum_i w_i``
(weights applied client-side before masking), so every strategy works on the weighted mean
update ``avg_delta`` — the FedAvg pseudo-gradient. FedAvg/FedProx step by it (FedProx differs
only in the clients' proximal term); FedAdam and FedYogi (Reddi et al., ICLR 2021, "Adaptive
Federated Optimization") treat it as a gradient for an adaptive server optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from federated.errors import TaskFileError

STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi")


@dataclass
class Strategy:
    """FedAvg: ``w <- w + server_lr * avg_delta``.

    Attributes:
        server_learning_rate: step on the averaged update (1.0 = plain FedAvg).
        proximal_mu: FedProx coefficient sent to clients (0 = none).
    """

    server_learning_rate: float = 1.0
    proximal_mu: float = 0.0

    def apply(self, weights: np.ndarray, avg_delta: np.ndarray) -> np.ndarray:
        """New global weights from the current ones and the weighted mean update."""
        return weights + self.server_learning_rate * avg_delta


@dataclass
class FedAdam(Strategy):
    """Adam on the server with the negated mean update as gradient (Reddi et al., Alg. 2)."""

    server_learning_rate: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    m: np.ndarray | None = field(default=None, repr=False)
    v: np.ndarray | None = field(default=None, repr=False)

    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * delta**2

    def apply(self, weights: np.ndarray, avg_delta: np.ndarray) -> np.ndarray:
        """One adaptive server step."""
        if self.m is None or self.v is None:
            self.m = np.zeros_like(weights)
            self.v = np.full_like(weights, self.tau**2)
        self.m = self.beta1 * self.m + (1 - self.beta1) * avg_delta
        self.v = self._second_moment(self.v, avg_delta)
        return weights + self.server_learning_rate * self.m / (np.sqrt(self.v) + self.tau)


@dataclass
class FedYogi(FedAdam):
    """Yogi's additive second-moment update, which grows v more cautiously than Adam."""

    def _second_moment(self, v: np.ndarray, delta: np.ndarray) -> np.ndarray:
        sq = delta**2
        return v - (1 - self.beta2) * sq * np.sign(v - sq)


def build_strategy(name: str, server_learning_rate: float | None = None,
                   proximal_mu: float = 0.0) -> Strategy:
    """Strategy by task-file name."""
    if name in ("fedavg", "fedprox"):
        mu = proximal_mu if name == "fedprox" else 0.0
        return Strategy(1.0 if server_learning_rate is None else server_learning_rate, mu)
    if name in ("fedadam", "fedyogi"):
        cls = FedAdam if name == "fedadam" else FedYogi
        return cls(server_learning_rate=0.1 if server_learning_rate is None
                   else server_learning_rate)
    raise TaskFileError([f"[task].strategy: unknown {name!r}; expected one of "
                         f"{', '.join(STRATEGIES)}"])


@dataclass
class EarlyStopping:
    """Stop once ``metric`` reaches ``target`` (``mode='max'``) or falls to it (``'min'``)."""

    metric: str
    target: float
    mode: str = "max"

    def reached(self, metrics: dict[str, float]) -> bool:
        """Whether the target is met; a missing metric never stops the run."""
        value = metrics.get(self.metric)
        if value is None:
            return False
        return value >= self.target if self.mode == "max" else value <= self.target
