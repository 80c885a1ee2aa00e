"""The fast canonical-JSON path agrees with the rfc8785 package on generated records."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import RecordError
from ledger.records import canonical_bytes, canonical_record, leaf_data

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_fast_path_equals_rfc8785(record):
    try:
        expected = rfc8785.dumps(record).decode()
    except (rfc8785.CanonicalizationError, ValueError):
        # e.g. integers beyond 2**53 or lone surrogates: the ledger must refuse them too
        with pytest.raises(RecordError):
            canonical_record(record)
        return
    assert canonical_record(record) == expected


def test_leaf_data_is_canonical_envelope():
    salt = bytes(range(16))
    rec = {"b": 1, "a": ["x", "\u00e9", "\n"], "z": {"y": None}}
    text = canonical_record(rec)
    expected = rfc8785.dumps({"record": rec, "salt": salt.hex(), "type": "data-use"})
    assert leaf_data("data-use", text, salt) == expected


@settings(max_examples=400, deadline=None)
@given(_json)
def test_canonical_bytes_equal_rfc8785_for_any_value(value):
    """Policies and message bodies are hashed through the fast path: same bytes or the
    same refusal as the rfc8785 package."""
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError) as exc:
        with pytest.raises(type(exc)):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def test_canonical_bytes_of_a_lone_surrogate_is_refused_like_rfc8785():
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_bytes({"a": "\ud800"})
