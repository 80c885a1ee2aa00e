"""Vocabulary of the SecAgg+ round protocol, shared by coordinator and participants (STYLE.md 9).

Every message carries a :class:`Header` binding it to (task, round, stage, sender, recipient);
state machines reject a message whose binding does not match what they wait for, and a second
message for a binding already processed (replay). ``to_wire`` / ``from_wire`` give a JSON-safe
form (bytes as base64) that the node carries over its peer channel; ``from_wire`` validates the
shape of each field before anything touches protocol state.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import Any

from federated.errors import ProtocolError

PROTOCOL = "autospace-secagg+/1"


class Stage(StrEnum):
    """The offer of a training round, then the four rounds of Bonawitz et al. (which
    SecAgg+ keeps), in protocol order."""

    OFFER = "offer"
    ADVERTISE_KEYS = "advertise-keys"
    SHARE_KEYS = "share-keys"
    MASKED_INPUT = "masked-input"
    CONSISTENCY_CHECK = "consistency-check"
    UNMASK = "unmask"


STAGE_ORDER = (Stage.OFFER, Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT,
               Stage.CONSISTENCY_CHECK, Stage.UNMASK)


@dataclass(frozen=True)
class Header:
    """Binding of a message to its task, round, stage and the two parties."""

    task_id: str
    round: int
    stage: Stage
    sender: str
    recipient: str


@dataclass(frozen=True)
class SecAggConfig:
    """Public parameters of one secure-aggregation round, fixed by the coordinator at setup.

    Attributes:
        cohort: participant ids, sorted; Shamir x-coordinate of a participant = position + 1.
        vector_length: number of ring elements each participant contributes.
        modulus_bits: 32 or 64 (arithmetic modulo 2**bits).
        degree: neighbour-graph degree (``len(cohort) - 1`` = complete graph).
        threshold: shares needed to rebuild a secret (per neighbourhood).
        round_seed: 32 public random bytes from which every party derives the graph.
    """

    cohort: tuple[str, ...]
    vector_length: int
    modulus_bits: int
    degree: int
    threshold: int
    round_seed: bytes

    def index(self, participant: str) -> int:
        """Shamir x-coordinate of ``participant``."""
        return self.cohort.index(participant) + 1


@dataclass(frozen=True)
class RoundOffer:
    """Coordinator -> participant: a training round, what it asks and under which conditions.

    The participant's round guard sees all of it before anything is trained or revealed.
    ``weights`` are the global model (little-endian float64); ``dp_clip_norm == 0`` means no DP;
    ``agreement`` is empty when the task names none.
    """

    header: Header
    purpose: str
    asset: str
    agreement: str
    model: str
    hidden: int
    features: tuple[str, ...]
    label: str
    weights: bytes
    local_epochs: int
    learning_rate: float
    batch_size: int
    proximal_mu: float
    cohort: tuple[str, ...]
    min_participants: int
    modulus_bits: int
    update_clip: float
    scale: float
    dp_clip_norm: float
    dp_noise_multiplier: float
    dp_delta: float
    seed: int


@dataclass(frozen=True)
class RoundAccept:
    """Participant -> coordinator: the round is accepted (its guard allowed it)."""

    header: Header
    epsilon_after: float


@dataclass(frozen=True)
class AdvertiseRequest:
    """Coordinator -> participant: the round's parameters; answer with :class:`AdvertiseKeys`."""

    header: Header
    config: SecAggConfig


@dataclass(frozen=True)
class AdvertiseKeys:
    """Participant -> coordinator: two X25519 public keys signed by the identity key."""

    header: Header
    c_pk: bytes
    s_pk: bytes
    signature: bytes


@dataclass(frozen=True)
class ShareKeysRequest:
    """Coordinator -> participant: the signed adverts of its neighbours (and its own)."""

    header: Header
    adverts: tuple[AdvertiseKeys, ...]


@dataclass(frozen=True)
class EncryptedShares:
    """Shares of one participant's two secrets, encrypted to one neighbour."""

    src: str
    dst: str
    ciphertext: bytes


@dataclass(frozen=True)
class ShareKeys:
    """Participant -> coordinator: one :class:`EncryptedShares` per neighbour."""

    header: Header
    shares: tuple[EncryptedShares, ...]


@dataclass(frozen=True)
class MaskedInputRequest:
    """Coordinator -> participant: the ciphertexts its neighbours addressed to it."""

    header: Header
    shares: tuple[EncryptedShares, ...]


@dataclass(frozen=True)
class MaskedInput:
    """Participant -> coordinator: the masked vector, little-endian ring elements."""

    header: Header
    vector: bytes


@dataclass(frozen=True)
class ConsistencyRequest:
    """Coordinator -> participant: the set of participants whose masked input is in the sum.

    Each participant signs this one set (Bonawitz et al., ConsistencyCheck round), so a
    coordinator cannot later claim to one participant that a peer dropped and to another that
    it survived: that would need a majority of signatures on two different sets.
    """

    header: Header
    survivors: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencySignature:
    """Participant -> coordinator: Ed25519 signature over the survivor set it was shown."""

    header: Header
    signature: bytes


@dataclass(frozen=True)
class UnmaskRequest:
    """Coordinator -> participant: which neighbours survived and which dropped, with the
    neighbours' consistency signatures over the survivor set."""

    header: Header
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    signatures: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class UnmaskShares:
    """Participant -> coordinator: self-mask seed shares of survivors, key shares of dropouts."""

    header: Header
    seed_shares: tuple[tuple[str, bytes], ...]
    key_shares: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Refusal:
    """Either side -> the other: the request is refused, with a reason to report."""

    header: Header
    reason: str


Message = (
    RoundOffer | RoundAccept | AdvertiseRequest | AdvertiseKeys | ShareKeysRequest | ShareKeys
    | MaskedInputRequest | MaskedInput | ConsistencyRequest | ConsistencySignature | UnmaskRequest
    | UnmaskShares | Refusal
)

MESSAGE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        RoundOffer, RoundAccept, AdvertiseRequest, AdvertiseKeys, ShareKeysRequest, ShareKeys,
        MaskedInputRequest, MaskedInput, ConsistencyRequest, ConsistencySignature,
        UnmaskRequest, UnmaskShares, Refusal,
    )
}

# The stage each message type belongs to (Refusal may occur in any stage).
MESSAGE_STAGE: dict[type, Stage] = {
    RoundOffer: Stage.OFFER,
    RoundAccept: Stage.OFFER,
    AdvertiseRequest: Stage.ADVERTISE_KEYS,
    AdvertiseKeys: Stage.ADVERTISE_KEYS,
    ShareKeysRequest: Stage.SHARE_KEYS,
    ShareKeys: Stage.SHARE_KEYS,
    MaskedInputRequest: Stage.MASKED_INPUT,
    MaskedInput: Stage.MASKED_INPUT,
    ConsistencyRequest: Stage.CONSISTENCY_CHECK,
    ConsistencySignature: Stage.CONSISTENCY_CHECK,
    UnmaskRequest: Stage.UNMASK,
    UnmaskShares: Stage.UNMASK,
}


def payload_bytes(message: Message) -> int:
    """Bytes of keys, signatures, ciphertexts, shares and vectors in a message (for benchmarks)."""
    total = 0
    for f in fields(message):
        total += _payload(getattr(message, f.name))
    return total


def _payload(value: Any) -> int:
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, tuple):
        return sum(_payload(v) for v in value)
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, Header | SecAggConfig):
        return sum(_payload(getattr(value, f.name)) for f in fields(value))
    return 0


def to_wire(message: Message) -> dict[str, Any]:
    """JSON-safe dict of ``message`` (bytes as base64, tuples as lists, type tag ``type``)."""
    body = _encode(message)
    body["type"] = type(message).__name__
    body["protocol"] = PROTOCOL
    return body


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    return value


def from_wire(body: Any) -> Message:
    """Parse and validate a wire dict; raises :class:`ProtocolError` naming the bad field."""
    if not isinstance(body, dict):
        raise ProtocolError("message must be an object", found=type(body).__name__)
    if body.get("protocol") != PROTOCOL:
        raise ProtocolError("unknown protocol", expected=PROTOCOL, found=str(body.get("protocol")))
    cls = MESSAGE_TYPES.get(body.get("type", ""))
    if cls is None:
        raise ProtocolError("unknown message type", found=str(body.get("type")))
    return _decode_dataclass(cls, body, cls.__name__)


_SCHEMA: dict[type, dict[str, Any]] = {
    Header: {"task_id": str, "round": int, "stage": Stage, "sender": str, "recipient": str},
    SecAggConfig: {"cohort": (str,), "vector_length": int, "modulus_bits": int, "degree": int,
                   "threshold": int, "round_seed": bytes},
    RoundOffer: {"header": Header, "purpose": str, "asset": str, "agreement": str, "model": str,
                 "hidden": int, "features": (str,), "label": str, "weights": bytes,
                 "local_epochs": int, "learning_rate": float, "batch_size": int,
                 "proximal_mu": float, "cohort": (str,), "min_participants": int,
                 "modulus_bits": int, "update_clip": float, "scale": float,
                 "dp_clip_norm": float, "dp_noise_multiplier": float, "dp_delta": float,
                 "seed": int},
    RoundAccept: {"header": Header, "epsilon_after": float},
    AdvertiseRequest: {"header": Header, "config": SecAggConfig},
    AdvertiseKeys: {"header": Header, "c_pk": bytes, "s_pk": bytes, "signature": bytes},
    ShareKeysRequest: {"header": Header, "adverts": (AdvertiseKeys,)},
    EncryptedShares: {"src": str, "dst": str, "ciphertext": bytes},
    ShareKeys: {"header": Header, "shares": (EncryptedShares,)},
    MaskedInputRequest: {"header": Header, "shares": (EncryptedShares,)},
    MaskedInput: {"header": Header, "vector": bytes},
    ConsistencyRequest: {"header": Header, "survivors": (str,)},
    ConsistencySignature: {"header": Header, "signature": bytes},
    UnmaskRequest: {"header": Header, "survivors": (str,), "dropped": (str,),
                    "signatures": ((str, bytes),)},
    UnmaskShares: {"header": Header, "seed_shares": ((str, bytes),), "key_shares": ((str, bytes),)},
    Refusal: {"header": Header, "reason": str},
}


def _decode_dataclass(cls: type, body: Any, path: str) -> Any:
    if not isinstance(body, dict):
        raise ProtocolError(f"{path} must be an object")
    kwargs = {}
    for name, kind in _SCHEMA[cls].items():
        if name not in body:
            raise ProtocolError(f"{path}.{name} is missing")
        kwargs[name] = _decode(kind, body[name], f"{path}.{name}")
    return cls(**kwargs)


def _decode(kind: Any, value: Any, path: str) -> Any:
    if kind is str:
        if not isinstance(value, str):
            raise ProtocolError(f"{path} must be a string")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"{path} must be a non-negative integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{path} must be a number")
        return float(value)
    if kind is bytes:
        if not isinstance(value, str):
            raise ProtocolError(f"{path} must be base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"{path} is not valid base64") from exc
    if kind is Stage:
        try:
            return Stage(value)
        except ValueError as exc:
            raise ProtocolError(f"{path} is not a stage", found=str(value)) from exc
    if isinstance(kind, tuple) and len(kind) == 1:
        if not isinstance(value, list):
            raise ProtocolError(f"{path} must be a list")
        return tuple(_decode(kind[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(kind, tuple):
        if not isinstance(value, list) or len(value) != len(kind):
            raise ProtocolError(f"{path} must be a list of {len(kind)} items")
        pairs = zip(kind, value, strict=True)
        return tuple(_decode(k, v, f"{path}[{i}]") for i, (k, v) in enumerate(pairs))
    return _decode_dataclass(kind, value, path)
