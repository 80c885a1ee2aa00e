"""Shamir sharing: field choice, round trips, a naive reference, and corruption probes."""

from __future__ import annotations

import contextlib
import itertools
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federated import shamir
from federated.errors import AbortError, ProtocolError


def miller_rabin(n: int, rounds: int = 48) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(1234)
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def test_prime_is_prime_and_the_smallest_above_2_256() -> None:
    assert shamir.PRIME > 2**256
    assert miller_rabin(shamir.PRIME)
    assert not any(miller_rabin(c) for c in range(2**256 + 1, shamir.PRIME, 2))


def naive_interpolate_at_zero(points: dict[int, int]) -> int:
    """Reference straight from the definition: sum y_i * prod x_j / (x_j - x_i) mod p."""
    p = shamir.PRIME
    total = 0
    for xi, yi in points.items():
        term = yi
        for xj in points:
            if xj != xi:
                term = term * xj * pow(xj - xi, p - 2, p) % p
        total = (total + term) % p
    return total


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(2, 12), st.data())
def test_any_threshold_subset_recovers(secret: bytes, n: int, data: st.DataObject) -> None:
    t = data.draw(st.integers(1, n))
    shares = shamir.split(secret, list(range(1, n + 1)), t)
    subset = data.draw(st.permutations(sorted(shares)))[:t]
    chosen = {x: shares[x] for x in subset}
    assert shamir.combine(chosen, t) == secret
    ref = naive_interpolate_at_zero({x: int.from_bytes(s, "big") for x, s in chosen.items()})
    assert ref.to_bytes(32, "big") == secret


def test_extreme_secrets_and_sparse_indices() -> None:
    for secret in (bytes(32), b"\xff" * 32):
        shares = shamir.split(secret, [3, 17, 250, 499], 3)
        for combo in itertools.combinations(shares, 3):
            assert shamir.combine({x: shares[x] for x in combo}, 3) == secret


def test_too_few_shares_abort() -> None:
    shares = shamir.split(os.urandom(32), [1, 2, 3, 4], 3)
    with pytest.raises(AbortError):
        shamir.combine({1: shares[1], 2: shares[2]}, 3)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ProtocolError):
        shamir.split(b"short", [1, 2], 2)
    with pytest.raises(ProtocolError):
        shamir.split(os.urandom(32), [1, 1], 2)
    with pytest.raises(ProtocolError):
        shamir.split(os.urandom(32), [1, 2], 3)
    with pytest.raises(ProtocolError):
        shamir.split(os.urandom(32), [0, 2], 2)


def test_corrupted_shares_never_give_the_secret() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, [1, 2, 3, 4, 5], 3)
    base = {x: shares[x] for x in (1, 2, 3)}
    probes = []
    for x in base:
        flipped = bytearray(base[x])
        flipped[-1] ^= 1
        probes.append({**base, x: bytes(flipped)})
    probes.append({**base, 1: shares[4]})  # share placed at the wrong index
    probes.append({1: shares[1], 2: shares[2], 3: shares[2]})  # duplicated share
    for probe in probes:
        with contextlib.suppress(ProtocolError):
            assert shamir.combine(probe, 3) != secret
    too_big = {**base, 1: (shamir.PRIME + 1).to_bytes(33, "big")}
    with pytest.raises(ProtocolError):
        shamir.combine(too_big, 3)
