"""The coordinator's round engine: drives a whole federated run through a Transport.

Each round: offer the round to every participant of the task (each checks it against its
agreement and accepts or refuses with a reason), run SecAgg+ over those who accepted, decode the
aggregate (weighted mean update and securely aggregated metrics), and step the global model with
the task's strategy. A round with too few participants, or too few survivors, is aborted and the
model is left as it was. Everything a round did is returned as a :class:`RoundReport` (the node
persists it and writes it to the ledger).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from federated import contribution
from federated.errors import FederatedError
from federated.graph import choose_parameters, majority_threshold
from federated.models import FlatModel, build_model
from federated.secagg_crypto import RandomBytes
from federated.secagg_run import run_secagg
from federated.secagg_server import SecAggCoordinator
from federated.strategies import EarlyStopping, Strategy, build_strategy
from federated.task import TaskSpec
from federated.transport import Transport
from federated.vocabulary import Header, Refusal, RoundAccept, RoundOffer, SecAggConfig, Stage


def model_hash(weights: np.ndarray) -> str:
    """SHA-256 of the little-endian float64 weights, as logged per round."""
    return hashlib.sha256(np.asarray(weights, dtype="<f8").tobytes()).hexdigest()


@dataclass
class RoundReport:
    """Outcome of one round (what the node stores and logs)."""

    round: int
    status: str  # "completed" | "aborted"
    invited: tuple[str, ...]
    accepted: tuple[str, ...] = ()
    refusals: dict[str, str] = field(default_factory=dict)
    survivors: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    model_hash: str = ""
    epsilon: float | None = None
    abort_reason: str | None = None


@dataclass
class RunResult:
    """The trained weights and every round's report."""

    weights: np.ndarray
    rounds: list[RoundReport]
    stopped_early: bool


class FLCoordinator:
    """Runs the rounds of one task.

    Args:
        task: the validated task file.
        coordinator_id: sender id of this node.
        transport: carries messages to participants (the node's peer channel, or in-process).
        identity_keys: participants' Ed25519 keys, to drop forged adverts early.
        random_bytes: randomness for round seeds.
        on_round: called with each finished :class:`RoundReport` (progress display, storage).
        on_stage: called as ``on_stage(round, stage_name, secagg_coordinator)`` during SecAgg.
    """

    def __init__(
        self,
        task: TaskSpec,
        coordinator_id: str,
        transport: Transport,
        identity_keys: Mapping[str, bytes] | None = None,
        *,
        random_bytes: RandomBytes = os.urandom,
        on_round: Callable[[RoundReport], None] | None = None,
        on_stage: Callable[[int, str, SecAggCoordinator], None] | None = None,
    ) -> None:
        self.task = task
        self.coordinator_id = coordinator_id
        self.transport = transport
        self.identity_keys = identity_keys
        self.random_bytes = random_bytes
        self.on_round = on_round
        self.on_stage = on_stage
        self.model: FlatModel = build_model(task.model, len(task.features), task.hidden,
                                            task.seed)
        self.strategy: Strategy = build_strategy(task.strategy, task.server_learning_rate,
                                                 task.proximal_mu)
        self.stopping = (EarlyStopping(task.early_stopping.metric, task.early_stopping.target,
                                       task.early_stopping.mode)
                         if task.early_stopping else None)

    def run(self, start_round: int = 1) -> RunResult:
        """All rounds of the task, or until early stopping; with early stopping the result is
        the global model whose federated evaluation reached the target."""
        reports = []
        stopped = False
        for r in range(start_round, self.task.rounds + 1):
            evaluated = self.model.get_weights()
            report = self.run_round(r)
            reports.append(report)
            if self.stopping and report.status == "completed" and self.stopping.reached(
                    {"accuracy": report.metrics.get("eval_accuracy", float("nan")),
                     "loss": report.metrics.get("eval_loss", float("nan"))}):
                # The metrics are those of the model the round started from: keep that one.
                self.model.set_weights(evaluated)
                stopped = True
                break
        return RunResult(self.model.get_weights(), reports, stopped)

    def _offer(self, r: int, pid: str, cohort: tuple[str, ...], weights: bytes) -> RoundOffer:
        t = self.task
        spec = next(p for p in t.participants if p.id == pid)
        dp = t.privacy
        return RoundOffer(
            header=Header(t.id, r, Stage.OFFER, self.coordinator_id, pid),
            purpose=t.purpose, asset=spec.asset, agreement=spec.agreement or "", model=t.model,
            hidden=t.hidden, features=t.features, label=t.label, weights=weights,
            local_epochs=t.local_epochs, learning_rate=t.learning_rate,
            batch_size=t.batch_size, proximal_mu=self.strategy.proximal_mu, cohort=cohort,
            min_participants=t.min_participants, modulus_bits=t.modulus_bits,
            update_clip=t.update_clip, scale=t.scale,
            dp_clip_norm=dp.clip_norm if dp else 0.0,
            dp_noise_multiplier=dp.noise_multiplier if dp else 0.0,
            dp_delta=dp.delta if dp else 0.0, seed=t.seed + r)

    def run_round(self, r: int) -> RoundReport:
        """One round; the global model changes only if it completes."""
        t = self.task
        invited = tuple(sorted(p.id for p in t.participants))
        weights = self.model.get_weights()
        report = RoundReport(r, "aborted", invited, model_hash=model_hash(weights))
        try:
            self._round(r, invited, weights, report)
        except FederatedError as exc:
            report.status = "aborted"
            report.abort_reason = str(exc)
        if self.on_round is not None:
            self.on_round(report)
        return report

    def _round(self, r: int, invited: tuple[str, ...], weights: np.ndarray,
               report: RoundReport) -> None:
        t = self.task
        contribution.ring_capacity_check(t.update_clip, t.scale, t.modulus_bits, len(invited))
        raw = np.asarray(weights, dtype="<f8").tobytes()
        replies = self.transport.exchange(
            {pid: self._offer(r, pid, invited, raw) for pid in invited})
        accepted, epsilons = [], []
        for pid in invited:
            reply = replies.get(pid)
            if isinstance(reply, RoundAccept) and reply.header.sender == pid:
                accepted.append(pid)
                epsilons.append(reply.epsilon_after)
            elif isinstance(reply, Refusal):
                report.refusals[pid] = reply.reason
            else:
                report.dropped += (pid,)
        report.accepted = tuple(accepted)
        if t.privacy and epsilons:
            report.epsilon = max(epsilons)
        if len(accepted) < t.min_participants:
            why = "; ".join(f"{pid} refused: {reason}" for pid, reason in report.refusals.items())
            report.abort_reason = (f"only {len(accepted)} of {len(invited)} participants accepted,"
                                   f" {t.min_participants} needed" + (f" ({why})" if why else ""))
            return
        params = choose_parameters(len(accepted), t.max_dropout)
        holders = params.degree + 1
        threshold = min(max(t.threshold, majority_threshold(holders)), holders)
        config = SecAggConfig(tuple(accepted), len(weights) + contribution.STATS,
                              t.modulus_bits, params.degree, threshold, self.random_bytes(32))
        secagg = SecAggCoordinator(self.coordinator_id, t.id, r, config, self.identity_keys)
        stage_cb = None
        if self.on_stage is not None:
            cb = self.on_stage

            def stage_cb(stage: str, c: SecAggCoordinator) -> None:
                cb(r, stage, c)

        outcome = run_secagg(secagg, self.transport, stage_cb)
        report.refusals.update(outcome.refusals)
        report.survivors = outcome.survivors
        report.dropped = tuple(sorted(set(report.dropped) | (set(accepted)
                                                             - set(outcome.survivors))))
        if outcome.result is None:
            report.abort_reason = outcome.abort_reason or "secure aggregation failed"
            return
        agg = contribution.decode(outcome.result, t.scale, t.modulus_bits)
        new = self.strategy.apply(weights, agg.avg_delta)
        self.model.set_weights(new)
        report.status = "completed"
        report.model_hash = model_hash(new)
        report.metrics = {"train_loss": agg.train_loss, "eval_loss": agg.eval_loss,
                          "eval_accuracy": agg.eval_accuracy, "eval_count": agg.eval_count,
                          "participants": float(len(outcome.survivors))}
