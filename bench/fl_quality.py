"""Predictive-quality scenario: federated vs local-only vs pooled training.

Run from the repository root::

    .venv/bin/python bench/fl_quality.py [--suppliers 3] [--rounds 15] [--seeds 3]

Each supplier's private data stays with its participant; the federated model is trained with
the library's round engine (SecAgg+ over an in-process transport, the same code the node runs
over its peer channel). Local-only models see one supplier's data; the pooled model sees all
data in one place (what federated learning avoids). All models are logistic regressions with the
same number of passes over the data, evaluated on the OEM's test set of parts from every
supplier.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from federated import scenario  # noqa: E402
from federated.coordinator import FLCoordinator  # noqa: E402
from federated.guard import GuardDecision  # noqa: E402
from federated.models import build_model  # noqa: E402
from federated.participant import Participant  # noqa: E402
from federated.privacy import PrivacyAccountant  # noqa: E402
from federated.task import loads_task  # noqa: E402
from federated.transport import LocalTransport  # noqa: E402

DP_SIGMA = 0.5  # client-level noise multiplier of the DP variant


def federated(data, rounds: int, strategy: str, seed: int, dp: str = "") -> np.ndarray:
    """Train with the round engine; returns the final global weights."""
    keys = {n: Ed25519PrivateKey.generate() for n in data}
    pubs = {n: k.public_key().public_bytes_raw() for n, k in keys.items()}
    parts = {n: Participant(n, d, keys[n].sign, pubs, lambda ctx: GuardDecision.allow(),
                            rng=np.random.default_rng(seed * 100 + i))
             for i, (n, d) in enumerate(sorted(data.items()))}
    text = scenario.task_toml(sorted(data), rounds, strategy)
    if dp:
        text = text.replace("[cohort]", dp + "\n[cohort]")
    result = FLCoordinator(loads_task(text), "oem",
                           LocalTransport({n: p.handle for n, p in parts.items()}), pubs).run()
    bad = [r for r in result.rounds if r.status != "completed"]
    if bad:
        raise SystemExit(f"round {bad[0].round} aborted: {bad[0].abort_reason}")
    return result.weights


def central(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> np.ndarray:
    m = build_model("logistic", x.shape[1])
    m.fit(x, y, epochs=epochs, learning_rate=0.1, rng=np.random.default_rng(seed))
    return m.get_weights()


def score(weights: np.ndarray, test) -> tuple[float, float]:
    m = build_model("logistic", test.x.shape[1])
    m.set_weights(weights)
    e = m.evaluate(test.x, test.y)
    return e.accuracy, e.loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suppliers", type=int, default=3, choices=[2, 3])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    epochs = args.rounds * 2  # local_epochs = 2 in the scenario's task file
    results: dict[str, list[tuple[float, float]]] = {}
    started = time.perf_counter()
    for seed in range(args.seeds):
        data = scenario.suppliers(args.suppliers, seed=seed)
        test = scenario.test_set(args.suppliers, seed=seed)
        for name, d in sorted(data.items()):
            results.setdefault(f"local-only {name} ({len(d)} records)", []).append(
                score(central(d.x, d.y, epochs, seed), test))
        pool = scenario.pooled(data)
        results.setdefault("pooled (all data in one place)", []).append(
            score(central(pool.x, pool.y, epochs, seed), test))
        for strategy in ("fedavg", "fedprox", "fedadam"):
            results.setdefault(f"federated {strategy} + SecAgg+", []).append(
                score(federated(data, args.rounds, strategy, seed), test))
        dp = f"[privacy]\nclip_norm = 1.0\nnoise_multiplier = {DP_SIGMA}\ndelta = 1e-5\n"
        eps = PrivacyAccountant(DP_SIGMA, 1.0, args.rounds).epsilon(1e-5)
        results.setdefault(f"federated fedavg + SecAgg+ + DP (eps {eps:.0f})", []).append(
            score(federated(data, args.rounds, "fedavg", seed, dp), test))
    print(f"Predictive-quality scenario: {args.suppliers} suppliers, logistic regression, "
          f"{args.rounds} rounds x 2 local epochs, test set = parts from every supplier; "
          f"mean over {args.seeds} seeds")
    print(f"{'model':<48} {'accuracy':>9} {'log loss':>9}")
    for name, values in results.items():
        acc = statistics.mean(v[0] for v in values)
        loss = statistics.mean(v[1] for v in values)
        print(f"{name:<48} {acc:>9.3f} {loss:>9.3f}")
    fed = statistics.mean(v[0] for v in results["federated fedavg + SecAgg+"])
    locals_ = [statistics.mean(v[0] for v in vals) for k, vals in results.items()
               if k.startswith("local-only")]
    pooled = statistics.mean(v[0] for v in results["pooled (all data in one place)"])
    print(f"\nfederated (fedavg) beats every local-only model: {fed > max(locals_)} "
          f"(best local {max(locals_):.3f}); gap to pooled: {pooled - fed:+.3f}; "
          f"{time.perf_counter() - started:.1f} s")
    return 0 if fed > max(locals_) else 1


if __name__ == "__main__":
    sys.exit(main())
