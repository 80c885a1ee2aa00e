"""Coordinator side of SecAgg+ as a sans-IO state machine.

``start()`` yields the setup requests; ``receive(message)`` validates and records each reply;
``advance()`` closes the current stage with the replies received so far (participants that did
not answer have dropped out) and yields the next requests. After the unmask stage ``result`` is
the exact sum, modulo ``2**bits``, of the inputs of the participants whose masked input arrived;
the coordinator never sees any single input. Below the threshold the round moves to ``ABORTED``
with a reason and reveals nothing further.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import numpy as np

from federated import masking, shamir
from federated.errors import AbortError, FederatedError, ProtocolError, ReplayError, SecurityError
from federated.graph import neighbours
from federated.secagg_client import PAIR_MASK_LABEL, SELF_MASK_LABEL, mask_context
from federated.secagg_crypto import (
    advert_payload,
    consistency_payload,
    pair_seed,
    public_from_private,
    round_context,
    verify_advert,
    verify_signature,
)
from federated.statemachine import StateMachine
from federated.vocabulary import (
    AdvertiseKeys,
    AdvertiseRequest,
    ConsistencyRequest,
    ConsistencySignature,
    EncryptedShares,
    Header,
    MaskedInput,
    MaskedInputRequest,
    Message,
    Refusal,
    SecAggConfig,
    ShareKeys,
    ShareKeysRequest,
    Stage,
    UnmaskRequest,
    UnmaskShares,
)


class ServerState(Enum):
    """Where the coordinator is in one round."""

    INIT = "init"
    COLLECTING_KEYS = "collecting-keys"
    COLLECTING_SHARES = "collecting-shares"
    COLLECTING_INPUTS = "collecting-inputs"
    COLLECTING_SIGNATURES = "collecting-signatures"
    COLLECTING_UNMASK = "collecting-unmask"
    DONE = "done"
    ABORTED = "aborted"


ALLOWED: dict[ServerState, frozenset[ServerState]] = {
    ServerState.INIT: frozenset({ServerState.COLLECTING_KEYS, ServerState.ABORTED}),
    ServerState.COLLECTING_KEYS: frozenset({ServerState.COLLECTING_SHARES, ServerState.ABORTED}),
    ServerState.COLLECTING_SHARES: frozenset({ServerState.COLLECTING_INPUTS,
                                              ServerState.ABORTED}),
    ServerState.COLLECTING_INPUTS: frozenset({ServerState.COLLECTING_SIGNATURES,
                                              ServerState.ABORTED}),
    ServerState.COLLECTING_SIGNATURES: frozenset({ServerState.COLLECTING_UNMASK,
                                                  ServerState.ABORTED}),
    ServerState.COLLECTING_UNMASK: frozenset({ServerState.DONE, ServerState.ABORTED}),
    ServerState.DONE: frozenset(),
    ServerState.ABORTED: frozenset(),
}

_COLLECTS: dict[ServerState, tuple[Stage, type]] = {
    ServerState.COLLECTING_KEYS: (Stage.ADVERTISE_KEYS, AdvertiseKeys),
    ServerState.COLLECTING_SHARES: (Stage.SHARE_KEYS, ShareKeys),
    ServerState.COLLECTING_INPUTS: (Stage.MASKED_INPUT, MaskedInput),
    ServerState.COLLECTING_SIGNATURES: (Stage.CONSISTENCY_CHECK, ConsistencySignature),
    ServerState.COLLECTING_UNMASK: (Stage.UNMASK, UnmaskShares),
}


class SecAggCoordinator:
    """The coordinator of one SecAgg+ round.

    Args:
        coordinator_id: sender id of the coordinator's requests.
        task_id: task the round belongs to.
        round_number: round within the task.
        config: public round parameters (cohort, graph, threshold, vector length, modulus).
        identity_keys: participants' Ed25519 keys; if given, forged adverts are dropped early
            (participants verify them in any case).
    """

    def __init__(
        self,
        coordinator_id: str,
        task_id: str,
        round_number: int,
        config: SecAggConfig,
        identity_keys: Mapping[str, bytes] | None = None,
    ) -> None:
        if list(config.cohort) != sorted(set(config.cohort)):
            raise ProtocolError("cohort must be sorted and free of duplicates")
        masking.dtype_for(config.modulus_bits)
        self.coordinator_id = coordinator_id
        self.task_id = task_id
        self.round_number = round_number
        self.config = config
        self._identity_keys = identity_keys
        self._context = round_context(task_id, round_number)
        self._graph = neighbours(config.cohort, config.degree, config.round_seed)
        self._machine = StateMachine(ServerState.INIT, ALLOWED)
        self._inbox: dict[str, Message] = {}
        self.refusals: dict[str, str] = {}
        self.adverts: dict[str, AdvertiseKeys] = {}
        self.shared: dict[str, ShareKeys] = {}
        self.masked: dict[str, np.ndarray] = {}
        self.signatures: dict[str, bytes] = {}
        self.unmasked_by: dict[str, UnmaskShares] = {}
        self.result: np.ndarray | None = None
        self.abort_reason: str | None = None

    @property
    def state(self) -> ServerState:
        """Current state."""
        return self._machine.state

    @property
    def survivors(self) -> tuple[str, ...]:
        """Participants whose masked input is in the sum (after the masked-input stage)."""
        return tuple(sorted(self.masked))

    def _header(self, stage: Stage, recipient: str) -> Header:
        return Header(self.task_id, self.round_number, stage, self.coordinator_id, recipient)

    def start(self) -> dict[str, AdvertiseRequest]:
        """Open the round: one setup request per cohort member."""
        self._machine.transition(ServerState.COLLECTING_KEYS)
        return {pid: AdvertiseRequest(self._header(Stage.ADVERTISE_KEYS, pid), self.config)
                for pid in self.config.cohort}

    def receive(self, message: Message) -> None:
        """Validate and record one participant's reply to the open stage.

        Raises:
            ReplayError: this participant already answered this stage.
            ProtocolError: wrong binding, stage, sender, or shape.
            SecurityError: a forged advert (when identity keys are known).
        """
        header = getattr(message, "header", None)
        if not isinstance(header, Header):
            raise ProtocolError("message has no header")
        if self.state not in _COLLECTS:
            raise ProtocolError(f"no stage is open ({self.state.value})")
        stage, expected = _COLLECTS[self.state]
        if (header.task_id, header.round) != (self.task_id, self.round_number):
            raise ProtocolError("message is bound to another task or round",
                                expected=f"{self.task_id}#{self.round_number}",
                                found=f"{header.task_id}#{header.round}")
        if header.recipient != self.coordinator_id or header.sender not in self.config.cohort:
            raise ProtocolError("message is not from a cohort member to this coordinator",
                                found=f"{header.sender}->{header.recipient}")
        if header.stage != stage:
            raise ProtocolError("message belongs to another stage", expected=stage.value,
                                found=header.stage.value)
        if header.sender in self._inbox:
            raise ReplayError(f"{header.sender} already answered {stage.value}")
        if not self._eligible(header.sender):
            raise ProtocolError(f"{header.sender} dropped out earlier in this round")
        if isinstance(message, Refusal):
            self.refusals[header.sender] = message.reason
            self._inbox[header.sender] = message
            return
        if not isinstance(message, expected):
            raise ProtocolError("message does not fit the stage", expected=expected.__name__,
                                found=type(message).__name__)
        self._validate(message)
        self._inbox[header.sender] = message

    def _eligible(self, pid: str) -> bool:
        previous = {
            ServerState.COLLECTING_KEYS: set(self.config.cohort),
            ServerState.COLLECTING_SHARES: self.adverts,
            ServerState.COLLECTING_INPUTS: self.shared,
            ServerState.COLLECTING_SIGNATURES: self.masked,
            ServerState.COLLECTING_UNMASK: self.signatures,
        }[self.state]
        return pid in previous

    def _validate(self, message: Message) -> None:
        sender = message.header.sender
        if isinstance(message, AdvertiseKeys) and self._identity_keys is not None:
            key = self._identity_keys.get(sender)
            if key is None:
                raise SecurityError(f"no identity key known for {sender}")
            verify_advert(key, advert_payload(self.task_id, self.round_number, sender,
                                              message.c_pk, message.s_pk),
                          message.signature, sender)
        elif isinstance(message, ShareKeys):
            allowed = self._graph[sender] & set(self.adverts)
            dsts = [s.dst for s in message.shares]
            if any(s.src != sender for s in message.shares) or len(set(dsts)) != len(dsts):
                raise ProtocolError(f"share ciphertexts of {sender} are mislabelled")
            if set(dsts) - allowed:
                raise ProtocolError(f"{sender} addressed shares to non-neighbours")
        elif isinstance(message, ConsistencySignature) and self._identity_keys is not None:
            payload = consistency_payload(self.task_id, self.round_number, self.survivors)
            key = self._identity_keys.get(sender)
            if key is None or not verify_signature(key, payload, message.signature):
                raise SecurityError(f"consistency signature of {sender} is not valid")
        elif isinstance(message, MaskedInput):
            size = self.config.vector_length * self.config.modulus_bits // 8
            if len(message.vector) != size:
                raise ProtocolError("masked vector has the wrong size", expected=str(size),
                                    found=str(len(message.vector)))

    def advance(self) -> dict[str, Message]:
        """Close the open stage with the replies received and return the next requests.

        Returns an empty mapping when the round is over (``DONE`` with ``result`` set, or
        ``ABORTED`` with ``abort_reason`` set).
        """
        replies = {pid: m for pid, m in self._inbox.items() if not isinstance(m, Refusal)}
        self._inbox = {}
        state = self.state
        try:
            if state is ServerState.COLLECTING_KEYS:
                self.adverts = replies  # type: ignore[assignment]
                self._require(len(self.adverts), "advertised keys")
                return self._share_keys_requests()
            if state is ServerState.COLLECTING_SHARES:
                self.shared = replies  # type: ignore[assignment]
                self._require(len(self.shared), "shared keys")
                return self._masked_input_requests()
            if state is ServerState.COLLECTING_INPUTS:
                dtype = masking.dtype_for(self.config.modulus_bits)
                self.masked = {pid: np.frombuffer(m.vector, dtype=np.dtype(dtype)  # type: ignore[union-attr]
                                                  .newbyteorder("<"))
                               for pid, m in replies.items()}
                self._require(len(self.masked), "sent masked input")
                return self._consistency_requests()
            if state is ServerState.COLLECTING_SIGNATURES:
                self.signatures = {pid: m.signature  # type: ignore[union-attr]
                                   for pid, m in replies.items()}
                self._require(len(self.signatures), "signed the survivor set")
                return self._unmask_requests()
            if state is ServerState.COLLECTING_UNMASK:
                self.unmasked_by = replies  # type: ignore[assignment]
                self._require(len(self.unmasked_by), "sent unmasking shares")
                self.result = self._unmask()
                self._machine.transition(ServerState.DONE)
                return {}
        except FederatedError as exc:
            self.abort_reason = str(exc)
            self._machine.transition(ServerState.ABORTED)
            return {}
        raise ProtocolError(f"nothing to advance in state {state.value}")

    def _require(self, count: int, what: str) -> None:
        if count < self.config.threshold:
            raise AbortError(f"only {count} participants {what}; the threshold is "
                             f"{self.config.threshold}")

    def _share_keys_requests(self) -> dict[str, Message]:
        self._machine.transition(ServerState.COLLECTING_SHARES)
        out: dict[str, Message] = {}
        for pid in sorted(self.adverts):
            near = sorted((self._graph[pid] & set(self.adverts)) | {pid})
            out[pid] = ShareKeysRequest(self._header(Stage.SHARE_KEYS, pid),
                                        tuple(self.adverts[j] for j in near))
        return out

    def _masked_input_requests(self) -> dict[str, Message]:
        self._machine.transition(ServerState.COLLECTING_INPUTS)
        inbox: dict[str, list[EncryptedShares]] = {pid: [] for pid in self.shared}
        for msg in self.shared.values():
            for item in msg.shares:
                if item.dst in inbox:
                    inbox[item.dst].append(item)
        return {pid: MaskedInputRequest(self._header(Stage.MASKED_INPUT, pid), tuple(items))
                for pid, items in inbox.items()}

    def _consistency_requests(self) -> dict[str, Message]:
        self._machine.transition(ServerState.COLLECTING_SIGNATURES)
        survivors = tuple(sorted(self.masked))
        return {pid: ConsistencyRequest(self._header(Stage.CONSISTENCY_CHECK, pid), survivors)
                for pid in survivors}

    def _unmask_requests(self) -> dict[str, Message]:
        self._machine.transition(ServerState.COLLECTING_UNMASK)
        masked = set(self.masked)
        dropped = set(self.shared) - masked
        out: dict[str, Message] = {}
        for pid in sorted(self.signatures):
            near = self._graph[pid] | {pid}
            signatures = tuple((j, self.signatures[j]) for j in sorted(near & set(self.signatures))
                               if j != pid)
            out[pid] = UnmaskRequest(self._header(Stage.UNMASK, pid),
                                     tuple(sorted(near & masked)), tuple(sorted(near & dropped)),
                                     signatures)
        return out

    def _collect(self, field: str) -> dict[str, dict[int, bytes]]:
        """Shares by owner: owner -> {x-coordinate of the holder: share}."""
        collected: dict[str, dict[int, bytes]] = {}
        for holder, msg in self.unmasked_by.items():
            x = self.config.index(holder)
            for owner, share in getattr(msg, field):
                collected.setdefault(owner, {})[x] = share
        return collected

    def _unmask(self) -> np.ndarray:
        cfg = self.config
        dtype = masking.dtype_for(cfg.modulus_bits)
        total = np.zeros(cfg.vector_length, dtype=dtype)
        for vec in self.masked.values():
            total += vec
        seed_shares = self._collect("seed_shares")
        key_shares = self._collect("key_shares")
        for pid in sorted(self.masked):
            seed = shamir.combine(seed_shares.get(pid, {}), cfg.threshold)
            total -= masking.expand(seed, cfg.vector_length, cfg.modulus_bits,
                                    mask_context(self._context, SELF_MASK_LABEL, pid))
        for gone in sorted(set(self.shared) - set(self.masked)):
            s_sk = shamir.combine(key_shares.get(gone, {}), cfg.threshold)
            if public_from_private(s_sk) != self.adverts[gone].s_pk:
                raise AbortError(f"reconstructed mask key of {gone} does not match its advert")
            for pid in sorted(self._graph[gone] & set(self.masked)):
                seed = pair_seed(s_sk, self.adverts[pid].s_pk, self._context, gone, pid)
                mask = masking.expand(seed, cfg.vector_length, cfg.modulus_bits,
                                      mask_context(self._context, PAIR_MASK_LABEL, gone, pid))
                if pid < gone:
                    total -= mask
                else:
                    total += mask
        return total
