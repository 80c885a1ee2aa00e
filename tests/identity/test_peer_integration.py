"""An authority and three nodes as real processes on 127.0.0.1 (gunicorn, own databases).

Node A calls node B's authenticated endpoint; every kind of bad call is refused with
the right status and reason, and B writes one security log line for it (matched by
the request id the test sends).
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from connectors.identity import credentials, tokens
from connectors.identity.did import did_key_from_public_key
from connectors.identity.signer import EphemeralSigner
from node.keystore import KeyStore
from tests.support.processes import DataSpace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    with DataSpace(tmp_path_factory.mktemp("space")) as ds:
        # B runs two gunicorn workers: replays must be caught across processes and
        # /metrics must aggregate over workers.
        ds.add_nodes({"a": "oem", "b": "supplier", "c": "supplier"},
                     envs={"b": {"AUTOSPACE_SERVER_WORKERS": "2"}})
        ds.start()
        yield ds


def call_b(space, token: str | None, *, path: str = "/peer/ping"):
    """GET B's endpoint with ``token``; return the response and the request id used."""
    b = space.nodes["b"]
    request_id = uuid.uuid4().hex
    headers = {"X-Request-Id": request_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(b.url + path, headers=headers, timeout=10), request_id


def assert_refused(space, token, status: int, reason: str) -> None:
    response, request_id = call_b(space, token)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["reason"] == reason and body["status"] == status
    assert "Traceback" not in response.text
    record = space.nodes["b"].process.wait_for_record(
        lambda r: r.get("request_id") == request_id and r.get("event") == "peer_auth_rejected")
    assert record["reason"] == reason and record["logger"] == "autospace.security"


def a_token(space, *, audience=None, now=None, lifetime=60, credential=None):
    a = space.nodes["a"]
    return tokens.issue(a.keys(), issuer=a.did, audience=audience or space.nodes["b"].did,
                        credential=credential or a.credential(), now=now or time.time(),
                        lifetime=lifetime)


def test_a_calls_b(space):
    a, b = space.nodes["a"], space.nodes["b"]
    with a.peer_client() as client:
        response = client.get(b.url + "/peer/ping", audience=b.did)
    assert response.status_code == 200, response.text
    assert response.json() == {"pong": True, "caller": a.did, "participantId": "BPN-a",
                               "role": "oem"}


def test_did_document_and_jwks_are_served(space):
    b = space.nodes["b"]
    doc = httpx.get(b.url + "/.well-known/did.json").json()
    jwks = httpx.get(b.url + "/.well-known/jwks.json").json()
    assert doc["id"] == b.did
    key = KeyStore(b.home)
    assert doc["verificationMethod"][0]["publicKeyJwk"]["x"] == jwks["keys"][0]["x"] \
        == key.public_jwk()["x"]
    assert all("d" not in k for k in jwks["keys"])


def test_no_token(space):
    assert_refused(space, None, 401, "missing_token")


def test_bad_signature(space):
    head, body, sig = a_token(space).split(".")
    tampered = f"{head}.{body}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    assert_refused(space, tampered, 401, "bad_signature")


def test_token_for_another_audience(space):
    assert_refused(space, a_token(space, audience=space.nodes["c"].did), 401, "wrong_audience")


def test_expired_token(space):
    assert_refused(space, a_token(space, now=time.time() - 400), 401, "expired")


def test_replayed_jti(space):
    token = a_token(space)
    first, _ = call_b(space, token)
    assert first.status_code == 200
    assert_refused(space, token, 401, "replayed")
    for _ in range(6):  # new connections, so the two workers both see the replay
        response, _ = call_b(space, token)
        assert response.status_code == 401 and response.json()["reason"] == "replayed"


def test_credential_from_an_untrusted_authority(space):
    a = space.nodes["a"]
    rogue = EphemeralSigner()  # an authority B does not trust, issuing a well-formed credential
    now = int(time.time())
    cred = credentials.issue(rogue, issuer=did_key_from_public_key(rogue.public_key_bytes()),
                             subject=a.did, participant_id="BPN-a", name="a", role="oem",
                             region="CN", valid_from=now, valid_until=now + 86400)
    assert_refused(space, a_token(space, credential=cred), 403, "untrusted_issuer")


def test_expired_credential(space):
    a, authority = space.nodes["a"], space.authority
    now = int(time.time())
    cred = credentials.issue(KeyStore(authority.home), issuer=authority.did, subject=a.did,
                             participant_id="BPN-a", name="a", role="oem", region="CN",
                             valid_from=now - 3 * 86400, valid_until=now - 86400)
    assert_refused(space, a_token(space, credential=cred), 403, "credential_expired")


def test_revoked_member(space):
    b, c = space.nodes["b"], space.nodes["c"]
    with c.peer_client() as client:
        assert client.get(b.url + "/peer/ping", audience=b.did).status_code == 200
        space.authority.revoke(c.did)
        # nodes here re-read the registry every second (NODE_TEST_ENV): after that
        # interval every worker of B must refuse C
        time.sleep(1.5)
        for _ in range(4):  # new connections, so both workers answer
            response, _ = call_b(space, client.token_for(b.did))
            assert response.status_code == 403 and response.json()["reason"] == "revoked"
        assert_refused(space, client.token_for(b.did), 403, "revoked")


def test_management_api_needs_the_key(space):
    b = space.nodes["b"]
    assert httpx.get(b.url + "/management/v3/node").status_code == 401
    with b.management() as m:
        info = m.get("/management/v3/node").json()
    assert info["did"] == b.did and info["credential"]["role"] == "supplier"
    spec = httpx.get(b.url + "/management/openapi.json").json()
    assert "/management/v3/node" in spec["paths"]
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-Api-Key"


def test_metrics_count_refusals_across_workers(space):
    def missing_token_count() -> float:
        text = httpx.get(space.nodes["b"].url + "/metrics").text
        for line in text.splitlines():
            if line.startswith('autospace_peer_auth_failures_total{reason="missing_token"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = missing_token_count()
    for _ in range(10):  # new connections: spread over both workers
        call_b(space, None)
    assert missing_token_count() == before + 10
    text = httpx.get(space.nodes["b"].url + "/metrics").text
    assert "autospace_http_request_duration_seconds_bucket" in text


def test_readiness(space):
    body = httpx.get(space.nodes["a"].url + "/health/ready").json()
    assert body["status"] == "UP" and body["checks"]["database"] == "UP"
    assert body["checks"]["credential"] == "present"
