"""Task files: the TOML a coordinator writes to describe a federated training run.

Example (every key shown; ``[privacy]``, ``[early_stopping]`` and optional keys may be left out)::

    [task]
    id = "quality-2026"
    purpose = "predictive-quality"
    model = "logistic"            # linear | logistic | mlp
    hidden = 16                   # mlp only
    features = ["temperature", "pressure"]
    label = "defect"
    rounds = 20
    local_epochs = 2
    learning_rate = 0.1
    batch_size = 32
    strategy = "fedavg"           # fedavg | fedprox | fedadam | fedyogi
    proximal_mu = 0.0             # fedprox
    server_learning_rate = 1.0
    seed = 7

    [cohort]
    min_participants = 2          # rounds with fewer accepting participants are aborted
    threshold = 0                 # 0 = derive from the neighbour graph (strict majority)
    max_dropout = 0.3             # dropout rate the neighbour graph is sized for

    [secure_aggregation]
    modulus_bits = 64
    update_clip = 10.0            # each coordinate of an update is clipped to +-update_clip
    scale = 1073741824            # fixed-point scale (2**30)

    [privacy]                     # optional: client-side DP
    clip_norm = 1.0
    noise_multiplier = 1.1
    delta = 1e-5

    [early_stopping]              # optional
    metric = "accuracy"
    target = 0.9
    mode = "max"

    [[participants]]
    id = "did:web:supplier-a.example"
    asset = "quality-records-a"
    agreement = "urn:uuid:..."     # optional until negotiated
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from federated.errors import TaskFileError
from federated.models import MODEL_KINDS
from federated.strategies import STRATEGIES


@dataclass(frozen=True)
class PrivacySpec:
    """Client-side DP settings."""

    clip_norm: float
    noise_multiplier: float
    delta: float


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Target metric that ends the run early."""

    metric: str
    target: float
    mode: str = "max"


@dataclass(frozen=True)
class ParticipantSpec:
    """One data owner and the asset it trains on."""

    id: str
    asset: str
    agreement: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A validated task file."""

    id: str
    purpose: str
    model: str
    features: tuple[str, ...]
    label: str
    rounds: int
    local_epochs: int
    learning_rate: float
    participants: tuple[ParticipantSpec, ...]
    hidden: int = 16
    batch_size: int = 32
    strategy: str = "fedavg"
    proximal_mu: float = 0.0
    server_learning_rate: float | None = None
    seed: int = 0
    min_participants: int = 2
    threshold: int = 0
    max_dropout: float = 0.3
    modulus_bits: int = 64
    update_clip: float = 10.0
    scale: float = 2.0**30
    privacy: PrivacySpec | None = None
    early_stopping: EarlyStoppingSpec | None = field(default=None)


class _Reader:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.problems: list[str] = []

    def table(self, name: str, required: bool = True) -> dict[str, Any] | None:
        value = self.doc.get(name)
        if value is None:
            if required:
                self.problems.append(f"[{name}]: missing table")
            return None
        if not isinstance(value, dict):
            self.problems.append(f"[{name}]: must be a table")
            return None
        return value

    def get(self, table: dict[str, Any] | None, path: str, key: str, kind: type | tuple,
            default: Any = ..., check: Any = None, why: str = "") -> Any:
        if table is None:
            return None if default is ... else default
        if key not in table:
            if default is ...:
                self.problems.append(f"{path}.{key}: missing")
                return None
            return default
        value = table[key]
        if isinstance(value, bool) and kind is not bool:
            self.problems.append(f"{path}.{key}: expected a number or text, found a boolean")
            return None
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problems.append(f"{path}.{key}: expected {name}, found {type(value).__name__}")
            return None
        if check is not None and not check(value):
            self.problems.append(f"{path}.{key}: {why} (found {value!r})")
            return None
        return value


def parse_task(doc: dict[str, Any]) -> TaskSpec:
    """Validate a parsed task document; raises :class:`TaskFileError` listing every problem."""
    r = _Reader(doc)
    t = r.table("task")
    cohort = r.table("cohort", required=False) or {}
    sa = r.table("secure_aggregation", required=False) or {}
    if "enabled" in sa and sa["enabled"] is not True:
        r.problems.append("[secure_aggregation].enabled: secure aggregation cannot be turned off")
    positive = (lambda v: v > 0, "must be positive")
    features = r.get(t, "[task]", "features", list, check=lambda v: v and all(
        isinstance(f, str) and f for f in v) and len(set(v)) == len(v),
        why="must be a non-empty list of distinct column names")
    values = dict(
        id=r.get(t, "[task]", "id", str, check=bool, why="must not be empty"),
        purpose=r.get(t, "[task]", "purpose", str, check=bool, why="must not be empty"),
        model=r.get(t, "[task]", "model", str, check=lambda v: v in MODEL_KINDS,
                    why="must be one of " + ", ".join(MODEL_KINDS)),
        features=tuple(features or ()),
        label=r.get(t, "[task]", "label", str, check=bool, why="must not be empty"),
        rounds=r.get(t, "[task]", "rounds", int, check=positive[0], why=positive[1]),
        local_epochs=r.get(t, "[task]", "local_epochs", int, check=positive[0], why=positive[1]),
        learning_rate=r.get(t, "[task]", "learning_rate", float, check=positive[0],
                            why=positive[1]),
        hidden=r.get(t, "[task]", "hidden", int, 16, positive[0], positive[1]),
        batch_size=r.get(t, "[task]", "batch_size", int, 32, positive[0], positive[1]),
        strategy=r.get(t, "[task]", "strategy", str, "fedavg", lambda v: v in STRATEGIES,
                       "must be one of " + ", ".join(STRATEGIES)),
        proximal_mu=r.get(t, "[task]", "proximal_mu", float, 0.0, lambda v: v >= 0,
                          "must be >= 0"),
        server_learning_rate=r.get(t, "[task]", "server_learning_rate", float, None,
                                   positive[0], positive[1]),
        seed=r.get(t, "[task]", "seed", int, 0),
        min_participants=r.get(cohort, "[cohort]", "min_participants", int, 2,
                               lambda v: v >= 2, "must be at least 2 (aggregation of one "
                               "participant would reveal its update)"),
        threshold=r.get(cohort, "[cohort]", "threshold", int, 0, lambda v: v >= 0,
                        "must be >= 0"),
        max_dropout=r.get(cohort, "[cohort]", "max_dropout", float, 0.3,
                          lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
        modulus_bits=r.get(sa, "[secure_aggregation]", "modulus_bits", int, 64,
                           lambda v: v in (32, 64), "must be 32 or 64"),
        update_clip=r.get(sa, "[secure_aggregation]", "update_clip", float, 10.0, *positive),
        scale=r.get(sa, "[secure_aggregation]", "scale", float, 2.0**30, *positive),
    )
    if values["label"] and values["label"] in values["features"]:
        r.problems.append("[task].label: the label must not also be a feature")
    if values["strategy"] == "fedprox" and not values["proximal_mu"]:
        r.problems.append("[task].proximal_mu: fedprox needs a positive proximal_mu")
    privacy = None
    p = r.table("privacy", required=False)
    if p is not None:
        privacy = PrivacySpec(
            clip_norm=r.get(p, "[privacy]", "clip_norm", float, check=positive[0],
                            why=positive[1]),
            noise_multiplier=r.get(p, "[privacy]", "noise_multiplier", float,
                                   check=positive[0], why=positive[1]),
            delta=r.get(p, "[privacy]", "delta", float, check=lambda v: 0 < v < 1,
                        why="must be in (0, 1)"),
        )
    stopping = None
    e = r.table("early_stopping", required=False)
    if e is not None:
        stopping = EarlyStoppingSpec(
            metric=r.get(e, "[early_stopping]", "metric", str,
                         check=lambda v: v in ("accuracy", "loss"),
                         why="must be accuracy or loss"),
            target=r.get(e, "[early_stopping]", "target", float),
            mode=r.get(e, "[early_stopping]", "mode", str, "max",
                       lambda v: v in ("max", "min"), "must be max or min"),
        )
    participants = []
    raw = doc.get("participants")
    if not isinstance(raw, list) or not raw:
        r.problems.append("[[participants]]: at least one participant is required")
        raw = []
    for i, item in enumerate(raw):
        path = f"[[participants]][{i}]"
        if not isinstance(item, dict):
            r.problems.append(f"{path}: must be a table")
            continue
        participants.append(ParticipantSpec(
            id=r.get(item, path, "id", str, check=bool, why="must not be empty"),
            asset=r.get(item, path, "asset", str, check=bool, why="must not be empty"),
            agreement=r.get(item, path, "agreement", str, None),
        ))
    ids = [p.id for p in participants]
    if len(set(ids)) != len(ids):
        r.problems.append("[[participants]]: participant ids must be distinct")
    if values["min_participants"] and len(participants) < values["min_participants"]:
        r.problems.append(f"[cohort].min_participants: {values['min_participants']} needed but "
                          f"only {len(participants)} participants listed")
    if r.problems:
        raise TaskFileError(r.problems)
    return TaskSpec(participants=tuple(participants), privacy=privacy, early_stopping=stopping,
                    **values)


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task file."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise TaskFileError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError([f"{path}: not valid TOML ({exc})"]) from exc
    return parse_task(doc)


def loads_task(text: str) -> TaskSpec:
    """Validate a task file given as text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError([f"not valid TOML ({exc})"]) from exc
    return parse_task(doc)
