"""Worked scenario: an OEM predicts defect probability from suppliers' process parameters.

Synthetic data, made here, for two or three suppliers whose processes run in different regions
of the parameter space (covariate shift) and with different data volumes and defect rates. One
ground-truth relation links process parameters to defect probability, but each supplier sees
only part of it: supplier A barely varies its pressure, supplier B its temperature, supplier C
has few records. A model trained on one supplier's data alone therefore misses what the others
see; a federated model learns the whole relation without any record leaving its supplier.

Features are z-scores of the process parameters against the OEM's specification, so one model
applies to all suppliers without sharing normalisation statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from federated.data import Dataset

FEATURES = ("temperature", "pressure", "line_speed", "humidity", "tool_wear", "hardness")
LABEL = "defect"
# Ground truth: log-odds of a defect (our invention, shaped like a plausible moulding process).
TRUE_COEF = np.array([1.6, -1.4, 0.9, 0.5, 1.2, -0.7])
TRUE_BIAS = -0.6


@dataclass(frozen=True)
class SupplierProfile:
    """Where one supplier's process runs: per-feature mean and spread, and its data volume."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rows: int


PROFILES = (
    SupplierProfile("supplier-a", (0.8, 0.0, -0.5, 0.2, 0.3, 0.0),
                    (1.0, 0.05, 0.6, 0.8, 1.0, 0.2), 1200),
    SupplierProfile("supplier-b", (0.0, -0.6, 0.6, -0.3, -0.2, 0.5),
                    (0.05, 1.0, 0.8, 0.6, 0.3, 1.0), 900),
    SupplierProfile("supplier-c", (-0.5, 0.7, 0.0, 0.0, 0.6, -0.6),
                    (0.7, 0.7, 0.3, 1.0, 0.8, 0.8), 250),
)


def defect_probability(x: np.ndarray) -> np.ndarray:
    """Ground-truth probability of a defect for process parameters ``x``."""
    return 1.0 / (1.0 + np.exp(-(x @ TRUE_COEF + TRUE_BIAS)))


def sample(profile: SupplierProfile, rows: int, rng: np.random.Generator) -> Dataset:
    """``rows`` records from one supplier's process, labels drawn from the ground truth."""
    x = rng.normal(profile.mean, profile.std, size=(rows, len(FEATURES)))
    y = (rng.random(rows) < defect_probability(x)).astype(np.float64)
    return Dataset(FEATURES, LABEL, x, y)


def suppliers(count: int = 3, seed: int = 0) -> dict[str, Dataset]:
    """Private training data of ``count`` (2 or 3) suppliers."""
    if count not in (2, 3):
        raise ValueError("the scenario has two or three suppliers")
    rng = np.random.default_rng(seed)
    return {p.name: sample(p, p.rows, rng) for p in PROFILES[:count]}


def test_set(count: int = 3, rows_each: int = 2000, seed: int = 1) -> Dataset:
    """The OEM's evaluation set: parts from every supplier in equal numbers."""
    rng = np.random.default_rng(seed + 10_000)
    parts = [sample(p, rows_each, rng) for p in PROFILES[:count]]
    return Dataset(FEATURES, LABEL, np.vstack([d.x for d in parts]),
                   np.concatenate([d.y for d in parts]))


def pooled(datasets: dict[str, Dataset]) -> Dataset:
    """All suppliers' records in one place (the baseline federated learning avoids)."""
    parts = list(datasets.values())
    return Dataset(FEATURES, LABEL, np.vstack([d.x for d in parts]),
                   np.concatenate([d.y for d in parts]))


TASK_TOML = """\
[task]
id = "predictive-quality"
purpose = "predictive-quality"
model = "logistic"
features = ["temperature", "pressure", "line_speed", "humidity", "tool_wear", "hardness"]
label = "defect"
rounds = {rounds}
local_epochs = 2
learning_rate = 0.1
batch_size = 32
strategy = "{strategy}"
proximal_mu = 0.01
seed = 7

[cohort]
min_participants = 2
max_dropout = 0.3

[secure_aggregation]
modulus_bits = 64
update_clip = 10.0
scale = 1048576
"""


def task_toml(names: list[str], rounds: int = 15, strategy: str = "fedavg") -> str:
    """The scenario's task file for the given supplier ids."""
    text = TASK_TOML.format(rounds=rounds, strategy=strategy)
    for name in names:
        text += f'\n[[participants]]\nid = "{name}"\nasset = "{name}-quality-records"\n'
    return text
