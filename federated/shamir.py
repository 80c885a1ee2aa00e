"""Shamir secret sharing of 32-byte secrets over the prime field GF(2**256 + 297).

The prime is the smallest above 2**256, so every 32-byte string is a field element without
truncation. Reconstruction is batched: Lagrange coefficients at zero depend only on the set of
share indices, so they are computed once per index set and reused for every secret shared to the
same neighbourhood (the coordinator reconstructs hundreds of secrets per round).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from federated.errors import AbortError, ProtocolError

# Smallest prime above 2**256 (checked by Miller-Rabin in tests/federated/test_shamir.py).
PRIME = 2**256 + 297
SECRET_BYTES = 32
SHARE_BYTES = 33  # field elements are < 2**257


def _field_int(secret: bytes) -> int:
    if len(secret) != SECRET_BYTES:
        raise ProtocolError("secret must be 32 bytes", expected="32", found=str(len(secret)))
    return int.from_bytes(secret, "big")


def split(
    secret: bytes,
    indices: Sequence[int],
    threshold: int,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> dict[int, bytes]:
    """Split ``secret`` into one share per index (x-coordinate); any ``threshold`` recover it.

    Preconditions: indices are distinct, in 1..PRIME-1; 1 <= threshold <= len(indices).
    ``randbelow`` is injected so tests are deterministic; production uses ``secrets``.
    """
    if not 1 <= threshold <= len(indices):
        raise ProtocolError("threshold out of range", expected=f"1..{len(indices)}",
                            found=str(threshold))
    if len(set(indices)) != len(indices) or any(not 0 < x < PRIME for x in indices):
        raise ProtocolError("share indices must be distinct and non-zero")
    coefficients = [_field_int(secret)] + [randbelow(PRIME) for _ in range(threshold - 1)]
    shares: dict[int, bytes] = {}
    for x in indices:
        acc = 0
        for c in reversed(coefficients):  # Horner
            acc = (acc * x + c) % PRIME
        shares[x] = acc.to_bytes(SHARE_BYTES, "big")
    return shares


@lru_cache(maxsize=4096)
def lagrange_at_zero(indices: tuple[int, ...]) -> tuple[int, ...]:
    """Coefficients l_i(0) for the given x-coordinates (cached: neighbourhoods repeat)."""
    xs = indices
    numerators = []
    denominators = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        numerators.append(num)
        denominators.append(den)
    # One inversion for all denominators (Montgomery's trick).
    prefix = [1]
    for d in denominators:
        prefix.append(prefix[-1] * d % PRIME)
    inv = pow(prefix[-1], -1, PRIME)
    inverses = [0] * len(xs)
    for i in range(len(xs) - 1, -1, -1):
        inverses[i] = inv * prefix[i] % PRIME
        inv = inv * denominators[i] % PRIME
    return tuple(n * d % PRIME for n, d in zip(numerators, inverses, strict=True))


def combine(shares: Mapping[int, bytes], threshold: int) -> bytes:
    """Recover a secret from at least ``threshold`` shares (uses the ``threshold`` lowest indices).

    Raises :class:`AbortError` when fewer than ``threshold`` shares are given, because the
    secret is then information-theoretically hidden and the round cannot complete.
    """
    if len(shares) < threshold:
        raise AbortError(f"{len(shares)} shares given, {threshold} needed")
    chosen = tuple(sorted(shares)[:threshold])
    coefficients = lagrange_at_zero(chosen)
    acc = 0
    for x, c in zip(chosen, coefficients, strict=True):
        y = int.from_bytes(shares[x], "big")
        if y >= PRIME:
            raise ProtocolError("share is not a field element")
        acc = (acc + y * c) % PRIME
    if acc >= 2 ** (8 * SECRET_BYTES):
        raise ProtocolError("reconstructed value is not a 32-byte secret (inconsistent shares)")
    return acc.to_bytes(SECRET_BYTES, "big")
