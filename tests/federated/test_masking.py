"""Mask expansion (checked against a reference built from HMAC and AES-ECB) and quantisation."""

from __future__ import annotations

import hashlib
import hmac
import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from federated import masking
from federated.errors import OverflowRiskError, ProtocolError


def reference_expand(seed: bytes, length: int, bits: int, context: bytes) -> np.ndarray:
    """RFC 5869 HKDF by hand, then AES-256 in counter mode as ECB over counter blocks."""
    prk = hmac.new(bytes(32), seed, hashlib.sha256).digest()
    key = hmac.new(prk, masking.MASK_INFO + context + b"\x01", hashlib.sha256).digest()
    nbytes = length * bits // 8
    blocks = b"".join(i.to_bytes(16, "big") for i in range((nbytes + 15) // 16))
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    stream = ecb.update(blocks)[:nbytes]
    return np.frombuffer(stream, dtype="<u4" if bits == 32 else "<u8")


@pytest.mark.parametrize("bits", [32, 64])
def test_expand_matches_reference(bits: int) -> None:
    seed = bytes(range(32))
    got = masking.expand(seed, 1000, bits, b"ctx")
    assert np.array_equal(got, reference_expand(seed, 1000, bits, b"ctx"))
    assert got.dtype == masking.dtype_for(bits)


def test_expand_depends_on_every_seed_byte_and_the_context() -> None:
    seed = os.urandom(32)
    base = masking.expand(seed, 64, 32, b"a")
    assert np.array_equal(base, masking.expand(seed, 64, 32, b"a"))
    assert not np.array_equal(base, masking.expand(seed, 64, 32, b"b"))
    for i in range(32):
        other = bytearray(seed)
        other[i] ^= 0x80
        assert not np.array_equal(base, masking.expand(bytes(other), 64, 32, b"a"))


def test_expand_rejects_short_seed_and_odd_modulus() -> None:
    with pytest.raises(ProtocolError):
        masking.expand(b"\x00" * 4, 8, 32, b"")
    with pytest.raises(ProtocolError):
        masking.expand(os.urandom(32), 8, 16, b"")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=20), st.integers(2, 50),
       st.sampled_from([32, 64]))
def test_quantised_sum_decodes_to_float_sum(values: list[float], n: int, bits: int) -> None:
    q = masking.Quantiser(clip=5.0, scale=2.0**16 if bits == 32 else 2.0**30, bits=bits)
    masking.check_capacity(q, n)
    vec = np.array(values)
    total = np.zeros(len(values), dtype=masking.dtype_for(bits))
    for _ in range(n):
        total += q.encode(vec)
    assert np.allclose(q.decode(total), n * vec, atol=n / q.scale)


def test_clipping_and_weights() -> None:
    q = masking.Quantiser(clip=1.0, scale=1000.0, bits=32)
    assert np.allclose(q.decode(q.encode(np.array([3.0, -3.0, 0.5]), weight=2.0)),
                       [2.0, -2.0, 1.0])


def test_capacity_check_names_the_bound() -> None:
    q = masking.Quantiser(clip=8.0, scale=2.0**22, bits=32)
    with pytest.raises(OverflowRiskError, match="ring bound"):
        masking.check_capacity(q, 100)
    masking.check_capacity(masking.Quantiser(8.0, 2.0**22, 64), 100, max_weight=1000)
