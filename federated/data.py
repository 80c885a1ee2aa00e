"""Tabular data sets for federated training, and their synthetic mock samples.

A data owner keeps its records private; beside them it may publish a small **mock** sample:
rows drawn from independent per-column Gaussians (features) and the label rate, fitted on the
private data. A mock shares the schema and rough scale of the data, so a coordinator can build
and test its pipeline against it, but no row is a real record and joint structure (which is
what a model would learn) is not carried over.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from federated.errors import TaskFileError


@dataclass(frozen=True)
class Dataset:
    """Feature matrix ``x`` (rows x features), label vector ``y``, and the column names."""

    features: tuple[str, ...]
    label: str
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def select(self, features: tuple[str, ...], label: str) -> Dataset:
        """The columns a task asks for, in its order; a missing column is a clear error."""
        missing = [f for f in (*features, label) if f not in (*self.features, self.label)]
        if missing:
            raise TaskFileError([f"data set has no column {name!r}" for name in missing])
        if label != self.label:
            raise TaskFileError([f"data set label is {self.label!r}, task asks for {label!r}"])
        idx = [self.features.index(f) for f in features]
        return Dataset(features, label, self.x[:, idx], self.y)

    def split(self, holdout: float, seed: int) -> tuple[Dataset, Dataset]:
        """Deterministic train / evaluation split."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = round(len(self) * (1 - holdout))
        a, b = order[:cut], order[cut:]
        return (Dataset(self.features, self.label, self.x[a], self.y[a]),
                Dataset(self.features, self.label, self.x[b], self.y[b]))

    def mock(self, rows: int, rng: np.random.Generator) -> Dataset:
        """A synthetic sample with this schema (see module docstring for what it reveals)."""
        mean = self.x.mean(axis=0)
        std = self.x.std(axis=0) + 1e-9
        x = rng.normal(mean, std, size=(rows, len(self.features)))
        labels = np.unique(self.y)
        if len(labels) <= 2 and set(labels.tolist()) <= {0.0, 1.0}:
            y = (rng.random(rows) < float(self.y.mean())).astype(np.float64)
        else:
            y = rng.normal(self.y.mean(), self.y.std() + 1e-9, size=rows)
        return Dataset(self.features, self.label, x, y)


def write_csv(dataset: Dataset, path: str | Path) -> None:
    """Write features then label as a CSV file with a header row."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*dataset.features, dataset.label])
        for row, label in zip(dataset.x, dataset.y, strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), f"{label:.6g}"])


def read_csv(path: str | Path, label: str) -> Dataset:
    """Read a CSV file (header row; numeric cells); ``label`` names the target column."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise TaskFileError([f"{path}: cannot read ({exc.strerror})"]) from exc
    if not rows or label not in rows[0]:
        raise TaskFileError([f"{path}: no header or no column {label!r}"])
    header = rows[0]
    try:
        table = np.array([[float(c) for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise TaskFileError([f"{path}: non-numeric cell ({exc})"]) from exc
    table = table.reshape(-1, len(header))
    li = header.index(label)
    features = tuple(h for i, h in enumerate(header) if i != li)
    return Dataset(features, label, np.delete(table, li, axis=1), table[:, li])
