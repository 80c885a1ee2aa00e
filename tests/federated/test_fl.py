"""Federated runs in one process: task files, guards, dropouts, DP, early stopping, scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federated import contribution, scenario
from federated.coordinator import FLCoordinator, model_hash
from federated.data import Dataset, read_csv, write_csv
from federated.errors import TaskFileError
from federated.guard import AgreementLimits, GuardDecision, RoundContext
from federated.models import build_model
from federated.participant import Participant
from federated.privacy import PrivacyAccountant
from federated.task import load_task, loads_task
from federated.transport import LocalTransport
from federated.vocabulary import Refusal, RoundAccept, RoundOffer, from_wire, to_wire


def allow(ctx: RoundContext) -> GuardDecision:
    return GuardDecision.allow()


def cohort(datasets: dict[str, Dataset], guards=None, seed: int = 0):
    keys = {n: Ed25519PrivateKey.generate() for n in datasets}
    pubs = {n: k.public_key().public_bytes_raw() for n, k in keys.items()}
    guards = guards or {}
    parts = {n: Participant(n, d, keys[n].sign, pubs, guards.get(n, allow),
                            rng=np.random.default_rng(seed + i))
             for i, (n, d) in enumerate(sorted(datasets.items()))}
    return parts, pubs


def split_scenario(k: int) -> dict[str, Dataset]:
    """k participants from the scenario (the third supplier's data split if k > 3)."""
    data = scenario.suppliers(3, seed=5)
    if k <= 3:
        return dict(list(data.items())[:k])
    out = dict(data)
    c = out.pop("supplier-c")
    for i in range(k - 2):
        idx = np.arange(i, len(c), k - 2)
        out[f"supplier-c{i}"] = Dataset(c.features, c.label, c.x[idx], c.y[idx])
    return out


def test_federated_run_beats_local_training_and_approaches_pooled() -> None:
    data = scenario.suppliers(3, seed=0)
    parts, pubs = cohort(data)
    task = loads_task(scenario.task_toml(sorted(data), rounds=10))
    reports = []
    result = FLCoordinator(task, "oem", LocalTransport({n: p.handle for n, p in parts.items()},
                                                        wire=True),
                           pubs, on_round=reports.append).run()
    assert [r.status for r in result.rounds] == ["completed"] * 10 and reports == result.rounds
    test = scenario.test_set(3)
    fed = build_model("logistic", 6)
    fed.set_weights(result.weights)
    fed_acc = fed.evaluate(test.x, test.y).accuracy
    for d in data.values():
        local = build_model("logistic", 6)
        local.fit(d.x, d.y, epochs=20, learning_rate=0.1)
        assert fed_acc > local.evaluate(test.x, test.y).accuracy
    pool = scenario.pooled(data)
    central = build_model("logistic", 6)
    central.fit(pool.x, pool.y, epochs=20, learning_rate=0.1)
    assert fed_acc > central.evaluate(test.x, test.y).accuracy - 0.02
    last = result.rounds[-1]
    assert last.metrics["eval_count"] == pytest.approx(sum(round(len(d) * 0.2) for d in
                                                           data.values()))
    assert last.model_hash and last.survivors == tuple(sorted(data))


class SnoopingTransport(LocalTransport):
    """Test-only: records each participant's plain contribution right after the offer."""

    def __init__(self, parts: dict[str, Participant], **kw) -> None:
        super().__init__({n: p.handle for n, p in parts.items()}, **kw)
        self.parts = parts
        self.plain: dict[str, np.ndarray] = {}

    def exchange(self, requests):
        replies = super().exchange(requests)
        for pid, req in requests.items():
            if isinstance(req, RoundOffer) and isinstance(replies.get(pid), RoundAccept):
                key = (req.header.sender, req.header.task_id, req.header.round)
                self.plain[pid] = self.parts[pid].sessions[key]._input.copy()
        return replies


def test_weighted_average_with_dropout_matches_plain_aggregation() -> None:
    data = split_scenario(5)
    parts, pubs = cohort(data)
    task = loads_task(scenario.task_toml(sorted(data), rounds=1))
    gone = sorted(data)[1]
    transport = SnoopingTransport(parts, drop=lambda stage, pid: stage == "masked-input"
                                  and pid == gone)
    coord = FLCoordinator(task, "oem", transport, pubs)
    before = coord.model.get_weights()
    report = coord.run_round(1)
    assert report.status == "completed" and gone in report.dropped and gone not in report.survivors
    total = sum((v for pid, v in transport.plain.items() if pid != gone),
                np.zeros_like(transport.plain[gone]))
    agg = contribution.decode(total, task.scale, task.modulus_bits)
    assert np.allclose(coord.model.get_weights() - before, agg.avg_delta, atol=1e-9)
    assert report.metrics["participants"] == 4


def test_guard_refusal_is_reported_and_round_continues_or_aborts() -> None:
    data = split_scenario(3)
    limits = AgreementLimits(min_cohort=2, purposes=frozenset({"warranty-analytics"}))
    name = sorted(data)[0]

    def strict(ctx: RoundContext) -> GuardDecision:
        return limits.check(ctx, datetime.now(UTC))

    parts, pubs = cohort(data, {name: strict})
    task = loads_task(scenario.task_toml(sorted(data), rounds=1))
    report = FLCoordinator(task, "oem", LocalTransport({n: p.handle for n, p in parts.items()}),
                           pubs).run_round(1)
    assert report.status == "completed"
    assert "purpose 'predictive-quality' is not permitted" in report.refusals[name]
    assert name not in report.accepted and len(report.survivors) == 2

    text = scenario.task_toml(sorted(data), rounds=1).replace("min_participants = 2",
                                                              "min_participants = 3")
    parts, pubs = cohort(data, {name: strict})
    report = FLCoordinator(loads_task(text), "oem",
                           LocalTransport({n: p.handle for n, p in parts.items()}),
                           pubs).run_round(1)
    assert report.status == "aborted"
    assert "2 of 3 participants accepted" in report.abort_reason
    assert name in report.abort_reason and "not permitted" in report.abort_reason


def test_agreement_limits_fail_closed_with_every_reason() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ctx = RoundContext("p", "oem", "t", 1, "asset", "agr-1", "training", 2, 2, False, False,
                       0.0, float("inf"), 1e-5)
    limits = AgreementLimits(min_cohort=3, max_epsilon=5.0, purposes=frozenset(),
                             not_after=now - timedelta(days=1), agreement="agr-2")
    decision = limits.check(ctx, now)
    assert not decision.allowed
    text = " | ".join(decision.reasons)
    for phrase in ("agreed minimum of 3", "requires secure aggregation",
                   "requires differential privacy", "not permitted", "expired", "agr-2"):
        assert phrase in text
    ok = AgreementLimits(min_cohort=2, purposes=frozenset({"training"}))
    good = RoundContext("p", "oem", "t", 1, "asset", None, "training", 3, 2, True, False,
                        0.0, float("inf"), 1e-5)
    assert ok.check(good, now).allowed
    assert not GuardDecision.deny().allowed and GuardDecision.deny().reasons


def test_epsilon_budget_is_enforced_round_by_round() -> None:
    data = split_scenario(3)
    budget = PrivacyAccountant(1.0, 1.0, 3).epsilon(1e-5) + 1e-9  # room for three rounds
    limits = AgreementLimits(min_cohort=2, max_epsilon=budget,
                             purposes=frozenset({"predictive-quality"}))
    guards = {n: (lambda ctx: limits.check(ctx, datetime.now(UTC))) for n in data}
    parts, pubs = cohort(data, guards)
    text = scenario.task_toml(sorted(data), rounds=5).replace(
        "[cohort]", "[privacy]\nclip_norm = 1.0\nnoise_multiplier = 1.0\ndelta = 1e-5\n\n[cohort]")
    task = loads_task(text)
    assert task.privacy is not None
    result = FLCoordinator(task, "oem", LocalTransport({n: p.handle for n, p in parts.items()}),
                           pubs).run()
    assert [r.status for r in result.rounds] == ["completed"] * 3 + ["aborted"] * 2
    assert all("epsilon budget exhausted" in reason
               for reason in result.rounds[-1].refusals.values())
    eps = [r.epsilon for r in result.rounds[:3]]
    assert eps == sorted(eps) and eps[-1] <= budget
    for p in parts.values():
        assert p.accountants[task.id].steps == 3


def test_early_stopping_ends_the_run() -> None:
    data = split_scenario(3)
    parts, pubs = cohort(data)
    text = scenario.task_toml(sorted(data), rounds=10).replace(
        "[cohort]", '[early_stopping]\nmetric = "accuracy"\ntarget = 0.7\n\n[cohort]')
    result = FLCoordinator(loads_task(text), "oem",
                           LocalTransport({n: p.handle for n, p in parts.items()}), pubs).run()
    assert result.stopped_early and len(result.rounds) < 10
    assert result.rounds[-1].metrics["eval_accuracy"] >= 0.7


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam", "fedyogi"])
def test_other_strategies_improve_the_model(strategy: str) -> None:
    data = split_scenario(3)
    parts, pubs = cohort(data)
    result = FLCoordinator(loads_task(scenario.task_toml(sorted(data), 5, strategy)), "oem",
                           LocalTransport({n: p.handle for n, p in parts.items()}), pubs).run()
    losses = [r.metrics["eval_loss"] for r in result.rounds]
    assert losses[-1] < losses[0]


def test_participant_refuses_replayed_offers_and_unknown_sessions() -> None:
    data = split_scenario(2)
    parts, pubs = cohort(data)
    task = loads_task(scenario.task_toml(sorted(data), rounds=1))
    coord = FLCoordinator(task, "oem", LocalTransport({}), pubs)
    name = sorted(data)[0]
    offer = coord._offer(1, name, tuple(sorted(data)), coord.model.get_weights().tobytes())
    assert from_wire(to_wire(offer)) == offer
    assert isinstance(parts[name].handle(offer), RoundAccept)
    replay = parts[name].handle(offer)
    assert isinstance(replay, Refusal) and "replay" in replay.reason
    wrong = parts[sorted(data)[1]].handle(offer)
    assert isinstance(wrong, Refusal) and "another participant" in wrong.reason
    bad_cols = offer.__class__(**{**offer.__dict__, "features": ("nope",)})
    other = Participant("x", data[name], lambda b: b, pubs, allow)
    reply = other.handle(bad_cols.__class__(**{**bad_cols.__dict__,
                                              "header": bad_cols.header.__class__(
                                                  "t", 1, bad_cols.header.stage, "oem", "x"),
                                              "cohort": ("x", "y")}))
    assert isinstance(reply, Refusal) and "no column 'nope'" in reply.reason
    broken = Participant(name, data[name], lambda b: b, pubs,
                         lambda ctx: 1 / 0)  # a crashing guard must refuse
    reply = broken.handle(offer)
    assert isinstance(reply, Refusal) and "round guard failed" in reply.reason


TASK_OK = """
[task]
id = "t"
purpose = "p"
model = "mlp"
hidden = 4
features = ["a", "b"]
label = "y"
rounds = 2
local_epochs = 1
learning_rate = 0.1

[[participants]]
id = "s1"
asset = "a1"

[[participants]]
id = "s2"
asset = "a2"
agreement = "agr-2"
"""


def test_task_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(TASK_OK)
    task = load_task(path)
    assert task.model == "mlp" and task.features == ("a", "b") and task.min_participants == 2
    assert task.participants[1].agreement == "agr-2" and task.privacy is None


@pytest.mark.parametrize("change,message", [
    (("model = \"mlp\"", "model = \"forest\""), "[task].model: must be one of"),
    (("rounds = 2", "rounds = 0"), "[task].rounds: must be positive"),
    (("rounds = 2", "rounds = \"two\""), "[task].rounds: expected int, found str"),
    (("label = \"y\"", "label = \"a\""), "label must not also be a feature"),
    (("features = [\"a\", \"b\"]", "features = []"), "[task].features"),
    (("learning_rate = 0.1", "learning_rate = 0.1\nstrategy = \"fedprox\""),
     "fedprox needs a positive proximal_mu"),
    (("id = \"s2\"", "id = \"s1\""), "participant ids must be distinct"),
    (("[task]", "[cohort]\nmin_participants = 5\n[task]"), "only 2 participants listed"),
    (("[task]", "[secure_aggregation]\nenabled = false\n[task]"), "cannot be turned off"),
    (("[task]", "[privacy]\nclip_norm = 1.0\nnoise_multiplier = 1.0\ndelta = 2.0\n[task]"),
     "[privacy].delta: must be in (0, 1)"),
    (("[task]", "[cohort]\nmin_participants = 1\n[task]"), "at least 2"),
])
def test_task_file_errors_are_clear(change: tuple[str, str], message: str) -> None:
    with pytest.raises(TaskFileError) as err:
        loads_task(TASK_OK.replace(*change, 1))
    assert any(message in p for p in err.value.problems), err.value.problems


def test_task_file_reports_all_problems_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError) as err:
        loads_task("[task]\nid = 1\n")
    assert len(err.value.problems) >= 6
    with pytest.raises(TaskFileError, match="not valid TOML"):
        loads_task("[task")
    with pytest.raises(TaskFileError, match="cannot read"):
        load_task(tmp_path / "missing.toml")


def test_mock_sample_has_schema_not_records(tmp_path: Path) -> None:
    real = scenario.suppliers(2)["supplier-a"]
    mock = real.mock(50, np.random.default_rng(0))
    assert mock.features == real.features and len(mock) == 50
    assert set(np.unique(mock.y)) <= {0.0, 1.0}
    real_rows = {tuple(np.round(r, 6)) for r in real.x}
    assert not any(tuple(np.round(r, 6)) in real_rows for r in mock.x)
    assert np.allclose(mock.x.mean(axis=0), real.x.mean(axis=0), atol=0.5)
    path = tmp_path / "mock.csv"
    write_csv(mock, path)
    back = read_csv(path, "defect")
    assert back.features == mock.features and np.allclose(back.x, mock.x, rtol=1e-5)
    with pytest.raises(TaskFileError, match="no column"):
        back.select(("temperature", "colour"), "defect")


def test_round_below_threshold_aborts_and_keeps_the_model() -> None:
    data = split_scenario(5)
    parts, pubs = cohort(data)
    task = loads_task(scenario.task_toml(sorted(data), rounds=1))
    gone = set(sorted(data)[:3])  # 2 of 5 left; threshold is a strict majority (3)
    coord = FLCoordinator(task, "oem", LocalTransport(
        {n: p.handle for n, p in parts.items()},
        drop=lambda stage, pid: stage == "unmask" and pid in gone), pubs)
    before = coord.model.get_weights()
    report = coord.run_round(1)
    assert report.status == "aborted" and "threshold" in report.abort_reason
    assert report.survivors == () and set(report.dropped) == set(data)
    assert np.array_equal(coord.model.get_weights(), before)
    assert report.model_hash == model_hash(before)
