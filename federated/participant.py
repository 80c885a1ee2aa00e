"""The data owner's side of a federated round: guard, local training, SecAgg+ client.

:class:`Participant` is what the node puts behind its peer-channel endpoint: ``handle`` takes a
message (a :class:`RoundOffer` or a SecAgg+ request) and returns the reply, never raising — any
failure becomes a :class:`Refusal` with the reason. On an offer it asks the round guard first
(the node's guard checks the data owner's agreement); only if allowed does it train on its
private data, and the update leaves the participant only masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from federated import contribution
from federated.data import Dataset
from federated.errors import FederatedError, ProtocolError
from federated.guard import GuardDecision, RoundContext, RoundGuard
from federated.models import build_model
from federated.privacy import PrivacyAccountant, privatise
from federated.secagg_client import ClientState, SecAggClient
from federated.secagg_crypto import RandomBytes, Signer
from federated.vocabulary import Header, Message, Refusal, RoundAccept, RoundOffer, Stage

HOLDOUT = 0.2  # share of local records kept for federated evaluation


class Participant:
    """One data owner serving the rounds of any number of tasks.

    Args:
        participant_id: this node's participant id.
        dataset: the private data (all columns); tasks select features and label.
        signer: signs with the node's Ed25519 identity key.
        identity_keys: Ed25519 public keys of possible peers (to verify their adverts).
        guard: decides whether to contribute to a round (fails closed if it raises).
        accountants: privacy accountants per task id (the node restores them from its store).
        random_bytes / rng: secret randomness and the noise generator (injected for tests).
    """

    def __init__(
        self,
        participant_id: str,
        dataset: Dataset,
        signer: Signer,
        identity_keys: Mapping[str, bytes],
        guard: RoundGuard,
        *,
        accountants: dict[str, PrivacyAccountant] | None = None,
        random_bytes: RandomBytes = os.urandom,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.dataset = dataset
        self.signer = signer
        self.identity_keys = identity_keys
        self.guard = guard
        self.accountants = accountants if accountants is not None else {}
        self.random_bytes = random_bytes
        self.rng = rng or np.random.default_rng(int.from_bytes(random_bytes(8), "big"))
        self.sessions: dict[tuple[str, str, int], SecAggClient] = {}
        self.offered: set[tuple[str, str, int]] = set()
        self.decisions: list[tuple[RoundContext, GuardDecision]] = []

    def handle(self, message: Message) -> Message:
        """Reply to one message from a coordinator (never raises)."""
        header = getattr(message, "header", None)
        if not isinstance(header, Header):
            return Refusal(Header("", 0, Stage.OFFER, self.participant_id, ""),
                           "message has no header")
        key = (header.sender, header.task_id, header.round)
        try:
            if header.recipient != self.participant_id:
                raise ProtocolError("message is addressed to another participant")
            if isinstance(message, RoundOffer):
                return self._offer(message, key)
            session = self.sessions.get(key)
            if session is None:
                raise ProtocolError(f"no open round {header.task_id}#{header.round} with "
                                    f"{header.sender}")
            reply = session.respond(message)
            if session.state in (ClientState.DONE, ClientState.ABORTED):
                del self.sessions[key]
            return reply
        except FederatedError as exc:
            return Refusal(self._reply_header(header), str(exc))

    def _reply_header(self, h: Header) -> Header:
        return Header(h.task_id, h.round, h.stage, self.participant_id, h.sender)

    def _offer(self, offer: RoundOffer, key: tuple[str, str, int]) -> Message:
        h = offer.header
        if key in self.offered:
            raise ProtocolError(f"round {h.task_id}#{h.round} was already offered (replay)")
        self.offered.add(key)
        if self.participant_id not in offer.cohort:
            raise ProtocolError("this participant is not in the offered cohort")
        data = self.dataset.select(offer.features, offer.label)
        dp = offer.dp_clip_norm > 0
        accountant = self.accountants.setdefault(
            h.task_id, PrivacyAccountant(offer.dp_noise_multiplier if dp else 0.0))
        if dp and accountant.noise_multiplier != offer.dp_noise_multiplier:
            raise ProtocolError("the task changed its noise multiplier between rounds")
        spent = accountant.epsilon(offer.dp_delta) if dp else 0.0
        after = accountant.epsilon(offer.dp_delta, accountant.steps + 1) if dp else float("inf")
        ctx = RoundContext(
            participant_id=self.participant_id, coordinator_id=h.sender, task_id=h.task_id,
            round=h.round, asset=offer.asset, agreement=offer.agreement or None,
            purpose=offer.purpose, cohort_size=len(offer.cohort),
            min_participants=offer.min_participants, secure_aggregation=True, dp=dp,
            epsilon_spent=spent, epsilon_after=after, delta=offer.dp_delta)
        try:
            decision = self.guard(ctx)
        except Exception as exc:  # a broken guard must refuse, never allow
            decision = GuardDecision.deny(f"round guard failed: {exc}")
        if not isinstance(decision, GuardDecision):
            decision = GuardDecision.deny("round guard gave no decision")
        self.decisions.append((ctx, decision))
        if not decision.allowed:
            return Refusal(self._reply_header(h), "; ".join(decision.reasons))
        contribution.ring_capacity_check(offer.update_clip, offer.scale, offer.modulus_bits,
                                         len(offer.cohort))
        vector = self._train(offer, data)
        session = SecAggClient(self.participant_id, h.sender, h.task_id, h.round, self.signer,
                               self.identity_keys, self.random_bytes)
        session.set_input(vector)
        self.sessions[key] = session
        if dp:
            accountant.record()
        return RoundAccept(self._reply_header(h), after)

    def _train(self, offer: RoundOffer, data: Dataset) -> np.ndarray:
        train, evaluation = data.split(HOLDOUT, offer.seed)
        model = build_model(offer.model, len(offer.features), offer.hidden, offer.seed)
        start = np.frombuffer(offer.weights, dtype="<f8").astype(np.float64)
        model.set_weights(start)
        before = model.evaluate(evaluation.x, evaluation.y)
        loss = model.fit(train.x, train.y, epochs=offer.local_epochs,
                         learning_rate=offer.learning_rate, batch_size=offer.batch_size,
                         rng=self.rng, proximal_mu=offer.proximal_mu, anchor=start)
        delta = model.get_weights() - start
        weight = float(len(train))
        if offer.dp_clip_norm > 0:
            delta = privatise(delta, offer.dp_clip_norm, offer.dp_noise_multiplier, self.rng)
            weight = 1.0
        c = contribution.Contribution(delta, weight, loss, before.count, before.loss,
                                      before.accuracy)
        return contribution.encode(c, offer.update_clip, offer.scale, offer.modulus_bits)
