"""The peer client: a fresh signed token per attempt, retries only where safe, backoff."""

from __future__ import annotations

import httpx
import pytest

from connectors.identity import tokens
from connectors.identity.errors import IdentityError
from connectors.identity.peer_client import PeerClient
from connectors.identity.signer import EphemeralSigner

ME, PEER = "did:web:a.example", "did:web:b.example"


def client(handler, *, retries=2, credential="cred", sleeps=None):
    return PeerClient(EphemeralSigner(), ME, lambda: credential, clock=lambda: 1_800_000_000,
                      retries=retries, backoff=0.1, transport=httpx.MockTransport(handler),
                      sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_each_attempt_carries_a_new_token_for_the_audience():
    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"].removeprefix("Bearer "))
        return httpx.Response(503 if len(seen) < 3 else 200)

    sleeps: list[float] = []
    response = client(handler, sleeps=sleeps).get("http://b/peer/ping", audience=PEER)
    assert response.status_code == 200 and len(seen) == 3
    claims = [tokens.read(t)[1] for t in seen]
    assert len({c.jti for c in claims}) == 3
    assert all(c.audience == PEER and c.issuer == ME and c.credential == "cred" for c in claims)
    assert 0.1 <= sleeps[0] <= 0.15 and 0.2 <= sleeps[1] <= 0.3  # exponential with jitter


def test_post_is_not_retried_unless_declared_idempotent():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(503)

    c = client(handler)
    assert c.post("http://b/x", audience=PEER, json={}).status_code == 503 and len(calls) == 1
    c.post("http://b/x", audience=PEER, json={}, idempotent=True)
    assert len(calls) == 4


def test_retry_after_is_honoured_and_bounded():
    answers = iter([httpx.Response(503, headers={"Retry-After": "2"}),
                    httpx.Response(503, headers={"Retry-After": "9999"}), httpx.Response(200)])
    sleeps: list[float] = []
    client(lambda r: next(answers), sleeps=sleeps).get("http://b/", audience=PEER)
    assert sleeps == [2.0, 30.0]


def test_connection_errors_are_retried_then_raised():
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(httpx.ConnectError):
        client(handler, retries=1).get("http://b/", audience=PEER)
    assert len(calls) == 2


def test_no_credential_is_an_operator_error():
    with pytest.raises(IdentityError, match="credential import"):
        client(lambda r: httpx.Response(200), credential=None).get("http://b/", audience=PEER)
