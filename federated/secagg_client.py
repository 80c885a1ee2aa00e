"""Participant side of SecAgg+ as a sans-IO state machine: messages in, messages out.

``handle(message)`` validates the message against the current stage and its (task, round,
stage, sender, recipient) binding, rejects replays, and returns the reply; ``respond`` does the
same but turns every failure into a :class:`Refusal` carrying the reason, so nothing escapes to
the peer channel. A participant never reveals both the self-mask seed share and the mask-key
share of the same peer (that would unmask the peer's input), and never reveals its own mask key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum

import numpy as np

from federated import masking, shamir
from federated.errors import FederatedError, ProtocolError, RefusalError, ReplayError, SecurityError
from federated.graph import neighbours
from federated.secagg_crypto import (
    CHANNEL_INFO,
    KeyPair,
    RandomBytes,
    Signer,
    advert_payload,
    agree,
    consistency_payload,
    decrypt_shares,
    encrypt_shares,
    identity_keys_complete,
    pair_seed,
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

SELF_MASK_LABEL = b"self"
PAIR_MASK_LABEL = b"pair"


class ClientState(Enum):
    """Where a participant is in one round."""

    WAITING_SETUP = "waiting-setup"
    KEYS_ADVERTISED = "keys-advertised"
    SHARES_SENT = "shares-sent"
    INPUT_SENT = "input-sent"
    SURVIVORS_SIGNED = "survivors-signed"
    DONE = "done"
    ABORTED = "aborted"


ALLOWED: dict[ClientState, frozenset[ClientState]] = {
    ClientState.WAITING_SETUP: frozenset({ClientState.KEYS_ADVERTISED, ClientState.ABORTED}),
    ClientState.KEYS_ADVERTISED: frozenset({ClientState.SHARES_SENT, ClientState.ABORTED}),
    ClientState.SHARES_SENT: frozenset({ClientState.INPUT_SENT, ClientState.ABORTED}),
    ClientState.INPUT_SENT: frozenset({ClientState.SURVIVORS_SIGNED, ClientState.ABORTED}),
    ClientState.SURVIVORS_SIGNED: frozenset({ClientState.DONE, ClientState.ABORTED}),
    ClientState.DONE: frozenset(),
    ClientState.ABORTED: frozenset(),
}

# The request a state accepts and the state the reply moves to.
_EXPECTS: dict[ClientState, tuple[type, ClientState]] = {
    ClientState.WAITING_SETUP: (AdvertiseRequest, ClientState.KEYS_ADVERTISED),
    ClientState.KEYS_ADVERTISED: (ShareKeysRequest, ClientState.SHARES_SENT),
    ClientState.SHARES_SENT: (MaskedInputRequest, ClientState.INPUT_SENT),
    ClientState.INPUT_SENT: (ConsistencyRequest, ClientState.SURVIVORS_SIGNED),
    ClientState.SURVIVORS_SIGNED: (UnmaskRequest, ClientState.DONE),
}


def mask_context(context: bytes, label: bytes, a: str = "", b: str = "") -> bytes:
    """Context string of one mask (self-mask of ``a`` or pairwise mask of ``a`` and ``b``)."""
    lo, hi = sorted((a, b))
    return context + label + len(lo).to_bytes(4, "big") + lo.encode() + hi.encode()


class SecAggClient:
    """One participant in one SecAgg+ round.

    Args:
        participant_id: this participant's id (as in the cohort).
        coordinator_id: the only sender whose requests are accepted.
        task_id: the task whose rounds this client serves.
        round_number: the round this client serves.
        signer: signs bytes with this participant's Ed25519 identity key.
        identity_keys: raw Ed25519 public key of every participant that may be in the cohort.
        random_bytes: source of secret randomness (injected for deterministic tests).
    """

    def __init__(
        self,
        participant_id: str,
        coordinator_id: str,
        task_id: str,
        round_number: int,
        signer: Signer,
        identity_keys: Mapping[str, bytes],
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.participant_id = participant_id
        self.coordinator_id = coordinator_id
        self.task_id = task_id
        self.round_number = round_number
        self._signer = signer
        self._identity_keys = dict(identity_keys)
        self._random = random_bytes
        self._machine = StateMachine(ClientState.WAITING_SETUP, ALLOWED)
        self._seen: set[Stage] = set()
        self._context = round_context(task_id, round_number)
        self._input: np.ndarray | None = None
        self.config: SecAggConfig | None = None
        self._neighbours: frozenset[str] = frozenset()
        self._c: KeyPair | None = None
        self._s: KeyPair | None = None
        self._seed = b""
        self._adverts: dict[str, AdvertiseKeys] = {}
        self._received: dict[str, tuple[bytes, bytes]] = {}  # peer -> (seed share, key share)
        self._masked_with: frozenset[str] = frozenset()
        self._signed: tuple[str, ...] = ()

    @property
    def state(self) -> ClientState:
        """Current state."""
        return self._machine.state

    def set_input(self, vector: np.ndarray) -> None:
        """The ring vector to contribute (already quantised and weighted)."""
        self._input = np.asarray(vector)

    def respond(self, message: Message) -> Message:
        """Like :meth:`handle` but every failure becomes a :class:`Refusal` with its reason."""
        try:
            return self.handle(message)
        except FederatedError as exc:
            stage = getattr(getattr(message, "header", None), "stage", Stage.ADVERTISE_KEYS)
            return Refusal(self._header(stage), str(exc))

    def handle(self, message: Message) -> Message:
        """Process one request from the coordinator and return the reply.

        Raises:
            ReplayError: the stage of this message was already processed.
            ProtocolError: wrong stage, binding, sender or shape.
            SecurityError: bad signature, tampered ciphertext.
            RefusalError: the request would reveal too much.
        """
        header = getattr(message, "header", None)
        if not isinstance(header, Header):
            raise ProtocolError("message has no header")
        self._check_binding(header)
        if header.stage in self._seen:
            raise ReplayError(f"stage {header.stage.value} of round {header.round} was already "
                              "processed", found=header.stage.value)
        if self.state not in _EXPECTS:
            raise ProtocolError(f"round is over ({self.state.value})", found=type(message).__name__)
        expected_type, next_state = _EXPECTS[self.state]
        if not isinstance(message, expected_type):
            raise ProtocolError("message does not fit the current stage",
                                expected=expected_type.__name__, found=type(message).__name__)
        self._seen.add(header.stage)
        try:
            if isinstance(message, AdvertiseRequest):
                reply: Message = self._advertise(message)
            elif isinstance(message, ShareKeysRequest):
                reply = self._share_keys(message)
            elif isinstance(message, MaskedInputRequest):
                reply = self._masked_input(message)
            elif isinstance(message, ConsistencyRequest):
                reply = self._sign_survivors(message)
            else:
                assert isinstance(message, UnmaskRequest)
                reply = self._unmask(message)
        except FederatedError:
            self._machine.transition(ClientState.ABORTED)
            raise
        self._machine.transition(next_state)
        return reply

    def _check_binding(self, header: Header) -> None:
        if header.task_id != self.task_id or header.round != self.round_number:
            raise ProtocolError("message is bound to another task or round",
                                expected=f"{self.task_id}#{self.round_number}",
                                found=f"{header.task_id}#{header.round}")
        if header.sender != self.coordinator_id or header.recipient != self.participant_id:
            raise ProtocolError("message is not from our coordinator to us",
                                expected=f"{self.coordinator_id}->{self.participant_id}",
                                found=f"{header.sender}->{header.recipient}")

    def _header(self, stage: Stage) -> Header:
        return Header(self.task_id, self.round_number, stage, self.participant_id,
                      self.coordinator_id)

    def _advertise(self, message: AdvertiseRequest) -> AdvertiseKeys:
        config = message.config
        if self.participant_id not in config.cohort:
            raise ProtocolError("this participant is not in the cohort")
        if list(config.cohort) != sorted(set(config.cohort)):
            raise ProtocolError("cohort must be sorted and free of duplicates")
        masking.dtype_for(config.modulus_bits)
        if len(config.round_seed) != 32:
            raise ProtocolError("round seed must be 32 bytes")
        graph = neighbours(config.cohort, config.degree, config.round_seed)
        self._neighbours = graph[self.participant_id]
        holders = len(self._neighbours) + 1
        if not holders // 2 + 1 <= config.threshold <= holders:
            raise RefusalError(f"threshold {config.threshold} is not a strict majority of the "
                               f"{holders} share holders of this neighbourhood")
        identity_keys_complete(self._identity_keys, tuple(self._neighbours))
        self.config = config
        self._c = KeyPair.generate(self._random)
        self._s = KeyPair.generate(self._random)
        payload = advert_payload(self.task_id, self.round_number, self.participant_id,
                                 self._c.public, self._s.public)
        return AdvertiseKeys(self._header(Stage.ADVERTISE_KEYS), self._c.public, self._s.public,
                             self._signer(payload))

    def _share_keys(self, message: ShareKeysRequest) -> ShareKeys:
        assert self.config is not None and self._c is not None and self._s is not None
        adverts: dict[str, AdvertiseKeys] = {}
        for advert in message.adverts:
            pid = advert.header.sender
            if pid in adverts:
                raise ProtocolError(f"two adverts for {pid}")
            if pid != self.participant_id and pid not in self._neighbours:
                raise ProtocolError(f"{pid} is not a neighbour")
            h = advert.header
            if (h.task_id, h.round, h.stage) != (self.task_id, self.round_number,
                                                 Stage.ADVERTISE_KEYS):
                raise ProtocolError(f"advert of {pid} is bound to another task, round or stage")
            if pid == self.participant_id:
                if (advert.c_pk, advert.s_pk) != (self._c.public, self._s.public):
                    raise SecurityError("the coordinator altered this participant's own advert")
            else:
                verify_advert(self._identity_keys[pid],
                              advert_payload(self.task_id, self.round_number, pid,
                                             advert.c_pk, advert.s_pk),
                              advert.signature, pid)
            adverts[pid] = advert
        if self.participant_id not in adverts:
            raise ProtocolError("own advert missing")
        if len(adverts) < self.config.threshold:
            raise RefusalError(f"only {len(adverts)} share holders, threshold is "
                               f"{self.config.threshold}")
        self._adverts = adverts
        self._seed = self._random(masking.SEED_BYTES)
        holders = sorted(adverts)
        xs = [self.config.index(pid) for pid in holders]

        def randbelow(bound: int) -> int:
            return int.from_bytes(self._random(40), "big") % bound

        seed_shares = shamir.split(self._seed, xs, self.config.threshold, randbelow)
        key_shares = shamir.split(self._s.private, xs, self.config.threshold, randbelow)
        out = []
        for pid, x in zip(holders, xs, strict=True):
            if pid == self.participant_id:
                self._received[pid] = (seed_shares[x], key_shares[x])
                continue
            key = agree(self._c.private, adverts[pid].c_pk, self._context,
                        self.participant_id, pid, CHANNEL_INFO)
            out.append(EncryptedShares(
                self.participant_id, pid,
                encrypt_shares(key, self._context, self.participant_id, pid, seed_shares[x],
                               key_shares[x], self._random)))
        return ShareKeys(self._header(Stage.SHARE_KEYS), tuple(out))

    def _masked_input(self, message: MaskedInputRequest) -> MaskedInput:
        assert self.config is not None and self._c is not None and self._s is not None
        if self._input is None:
            raise RefusalError("no input vector was provided for this round")
        bits = self.config.modulus_bits
        dtype = masking.dtype_for(bits)
        if self._input.shape != (self.config.vector_length,) or self._input.dtype != dtype:
            raise ProtocolError("input vector does not match the round",
                                expected=f"{self.config.vector_length} x {np.dtype(dtype)}",
                                found=f"{self._input.shape} x {self._input.dtype}")
        for item in message.shares:
            if item.dst != self.participant_id or item.src not in self._adverts:
                raise ProtocolError(f"ciphertext {item.src}->{item.dst} is not for us")
            if item.src == self.participant_id or item.src in self._received:
                raise ProtocolError(f"duplicate ciphertext from {item.src}")
            key = agree(self._c.private, self._adverts[item.src].c_pk, self._context,
                        self.participant_id, item.src, CHANNEL_INFO)
            self._received[item.src] = decrypt_shares(key, self._context, item.src,
                                                      self.participant_id, item.ciphertext)
        if len(self._received) < self.config.threshold:
            raise RefusalError(f"only {len(self._received)} neighbours sent shares, threshold "
                               f"is {self.config.threshold}")
        length = self.config.vector_length
        y = self._input.astype(dtype, copy=True)
        y += masking.expand(self._seed, length, bits,
                            mask_context(self._context, SELF_MASK_LABEL, self.participant_id))
        for pid in self._received:
            if pid == self.participant_id:
                continue
            seed = pair_seed(self._s.private, self._adverts[pid].s_pk, self._context,
                             self.participant_id, pid)
            mask = masking.expand(seed, length, bits,
                                  mask_context(self._context, PAIR_MASK_LABEL,
                                               self.participant_id, pid))
            if self.participant_id < pid:
                y += mask
            else:
                y -= mask
        self._masked_with = frozenset(self._received)
        self._input = None  # the plain input is not kept beyond its use
        return MaskedInput(self._header(Stage.MASKED_INPUT), y.astype(y.dtype.newbyteorder("<"))
                           .tobytes())

    def _sign_survivors(self, message: ConsistencyRequest) -> ConsistencySignature:
        assert self.config is not None
        survivors = message.survivors
        if list(survivors) != sorted(set(survivors)) or not set(survivors) <= set(
                self.config.cohort):
            raise ProtocolError("survivor set must be sorted, unique and within the cohort")
        if self.participant_id not in survivors:
            raise RefusalError("this participant sent its input but is not listed as a survivor")
        near = len(self._masked_with & set(survivors))
        if near < self.config.threshold:
            raise RefusalError(f"only {near} survivors in this neighbourhood, threshold is "
                               f"{self.config.threshold}")
        self._signed = survivors
        payload = consistency_payload(self.task_id, self.round_number, survivors)
        return ConsistencySignature(self._header(Stage.CONSISTENCY_CHECK), self._signer(payload))

    def _unmask(self, message: UnmaskRequest) -> UnmaskShares:
        assert self.config is not None
        survivors, dropped = set(message.survivors), set(message.dropped)
        both = survivors & dropped
        if both:
            raise RefusalError("asked for both the self-mask share and the key share of "
                               + ", ".join(sorted(both)))
        if self.participant_id in dropped:
            raise RefusalError("asked to reveal this participant's own mask key")
        if self.participant_id not in survivors:
            raise RefusalError("this participant sent its input but is not listed as a survivor")
        signed = set(self._signed)
        if survivors != self._masked_with & signed or dropped != self._masked_with - signed:
            raise RefusalError("survivors and dropouts differ from the survivor set this "
                               "participant signed")
        if len(survivors) < self.config.threshold:
            raise RefusalError(f"only {len(survivors)} survivors, threshold is "
                               f"{self.config.threshold}")
        # A majority of this neighbourhood must have signed the same survivor set, so no
        # other set can have been shown to them (Bonawitz et al., ConsistencyCheck round).
        payload = consistency_payload(self.task_id, self.round_number, self._signed)
        valid = {self.participant_id}  # our own signature is on this very set
        for pid, sig in message.signatures:
            if len(valid) >= self.config.threshold:
                break  # enough: verifying more would add cost, not assurance
            if (pid in survivors and pid not in valid and pid in self._identity_keys
                    and verify_signature(self._identity_keys[pid], payload, sig)):
                valid.add(pid)
        if len(valid) < self.config.threshold:
            raise RefusalError(f"only {len(valid)} valid consistency signatures, threshold is "
                               f"{self.config.threshold}")
        seed_shares = tuple((pid, self._received[pid][0]) for pid in sorted(survivors))
        key_shares = tuple((pid, self._received[pid][1]) for pid in sorted(dropped))
        return UnmaskShares(self._header(Stage.UNMASK), seed_shares, key_shares)
