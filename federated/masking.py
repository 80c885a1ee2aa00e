"""Mask expansion and fixed-point quantisation for secure aggregation.

Masks are expanded from a full 256-bit seed: HKDF-SHA256 (bound to a context naming the task,
round and purpose of the mask) derives an AES-256 key, and AES-CTR over zero bytes gives the
keystream, read as little-endian unsigned integers. No general-purpose RNG and no truncated
seed is ever involved (Flower's SecAgg+ seeds numpy's RandomState from 32 bits of its seed).

Arithmetic is exact modulo 2**bits (numpy unsigned integers wrap). Real vectors are clipped to
``[-clip, clip]``, multiplied by ``scale`` and rounded (two's complement in the ring); the sum of
``n`` such vectors, each first multiplied by a weight of at most ``max_weight``, decodes
correctly as long as ``n * max_weight * clip * scale < 2**(bits-1)`` — checked by
:func:`check_capacity` before a round starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from federated.errors import OverflowRiskError, ProtocolError

SEED_BYTES = 32
MASK_INFO = b"autospace/secagg/v1/mask"  # domain separation for mask keys (our own label)
SUPPORTED_BITS = (32, 64)
_ZERO_IV = bytes(16)  # safe: every key is derived fresh for one (seed, context) pair


def dtype_for(bits: int) -> type[np.unsignedinteger]:
    """The numpy dtype whose wrap-around is arithmetic modulo ``2**bits``."""
    if bits == 32:
        return np.uint32
    if bits == 64:
        return np.uint64
    raise ProtocolError("unsupported modulus", expected="32 or 64 bits", found=str(bits))


def expand(seed: bytes, length: int, bits: int, context: bytes) -> np.ndarray:
    """Expand a 32-byte ``seed`` into ``length`` uniform integers modulo ``2**bits``.

    ``context`` binds the mask to its use (task, round, pair or self-mask), so one seed never
    yields the same stream twice under different purposes.
    """
    if len(seed) != SEED_BYTES:
        raise ProtocolError("mask seed must be 32 bytes", expected="32", found=str(len(seed)))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MASK_INFO + context).derive(
        seed
    )
    dtype = np.dtype(dtype_for(bits)).newbyteorder("<")
    encryptor = Cipher(algorithms.AES(key), modes.CTR(_ZERO_IV)).encryptor()
    stream = encryptor.update(bytes(length * dtype.itemsize))
    return np.frombuffer(stream, dtype=dtype)


@dataclass(frozen=True)
class Quantiser:
    """Fixed-point encoding of real vectors in the ring of integers modulo ``2**bits``.

    Attributes:
        clip: values are clipped to ``[-clip, clip]`` before encoding.
        scale: fixed-point scale (resolution ``1/scale``).
        bits: modulus exponent, 32 or 64.
    """

    clip: float
    scale: float
    bits: int = 64

    def encode(self, values: np.ndarray, weight: float = 1.0) -> np.ndarray:
        """Clip, multiply by ``weight`` (client-side weighting) and round into the ring."""
        clipped = np.clip(np.asarray(values, dtype=np.float64), -self.clip, self.clip) * weight
        ints = np.rint(clipped * self.scale).astype(np.int64)
        return ints.astype(dtype_for(self.bits))

    def decode(self, ring: np.ndarray) -> np.ndarray:
        """Interpret ring elements as signed (two's complement) and undo the scale."""
        signed = ring.astype(dtype_for(self.bits)).view(np.int64 if self.bits == 64 else np.int32)
        return signed.astype(np.float64) / self.scale


def check_capacity(quantiser: Quantiser, cohort_size: int, max_weight: float = 1.0) -> None:
    """Fail before the round if the sum of ``cohort_size`` weighted vectors could wrap around.

    Raises:
        OverflowRiskError: naming the bound and the value that exceeds it.
    """
    worst = cohort_size * max_weight * quantiser.clip * quantiser.scale
    bound = 2 ** (quantiser.bits - 1) - 1
    if quantiser.bits == 64:
        bound = min(bound, 2**62)  # float64 rounding margin for the int64 conversion
    if worst >= bound:
        raise OverflowRiskError(
            f"cohort {cohort_size} x weight {max_weight} x clip {quantiser.clip} x scale "
            f"{quantiser.scale} = {worst:.3g} reaches the ring bound {bound:.3g}; "
            "lower the scale or clip, or use 64-bit arithmetic"
        )
