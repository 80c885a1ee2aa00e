"""Base64url as JWS uses it: unpadded, and nothing outside its alphabet gets through."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.identity.jwk import b64url_decode, b64url_encode


@given(st.binary(max_size=2048))
def test_decodes_what_the_standard_library_encodes(data: bytes) -> None:
    text = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert b64url_decode(text) == data
    assert b64url_encode(data) == text


@pytest.mark.parametrize("text", [
    "YW+/",      # the standard alphabet, not the URL-safe one
    "YQ==",      # padding (compact JWS never pads)
    "YQ=",
    "YW J",      # whitespace, which the standard library's decoder drops silently
    "YW\nJ",
    "YW\tJ",
    "YW*J",      # other characters the standard library drops
    "YWJjé",     # not ASCII
    "Y",         # no whole byte
    "YWJjZ",
])
def test_anything_but_unpadded_base64url_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not base64url"):
        b64url_decode(text)


def test_only_text_is_decoded() -> None:
    with pytest.raises(ValueError):
        b64url_decode(b"YWJj")  # type: ignore[arg-type]
