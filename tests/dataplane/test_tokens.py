"""EDR tokens: expiry, kind, tampering, foreign keys, refresh rotation and revocation."""

from __future__ import annotations

import base64
import json

import pytest

from connectors.dataplane.edr import HTTP_ENDPOINT_TYPE
from connectors.dataplane.tokens import ACCESS, REFRESH, TokenCodec, TokenError, bearer
from connectors.dsp.vocabulary import TransferState
from node.keystore import KeyStore
from tests.dataplane.conftest import CONSUMER, PROVIDER, grant_of


def _file_asset(world) -> str:
    path = world.tmp / "data.bin"
    path.write_bytes(b"x" * 10)
    return world.asset({"type": "File", "path": str(path)})


def test_edr_shape_and_claims(world):
    agreement, entity = world.transfer(_file_asset(world))
    edr = world.plane.flow.start(entity, agreement)
    doc = edr.to_json()
    assert doc["endpointType"] == HTTP_ENDPOINT_TYPE
    assert doc["endpoint"] == "http://127.0.0.1:9/dataplane/public"
    names = {p["name"] for p in doc["endpointProperties"]}
    assert names == {"authorization", "authType", "refreshToken", "refreshEndpoint",
                     "expiresIn", "transferProcessId"}
    tok = world.plane.codec.verify(edr.property("authorization"), kind=ACCESS)
    assert tok.grant == grant_of(agreement, entity)
    assert tok.expires_at == int(world.clock.now) + 300


def test_expired_token_is_refused(world):
    agreement, entity = world.transfer(_file_asset(world))
    token = world.token(agreement, entity)
    world.clock.now += 301
    with pytest.raises(TokenError, match="expired"):
        world.plane.codec.verify(token, kind=ACCESS)


def test_refresh_token_is_not_an_access_token(world):
    agreement, entity = world.transfer(_file_asset(world))
    edr = world.plane.flow.start(entity, agreement)
    with pytest.raises(TokenError, match="expected"):
        world.plane.codec.verify(edr.property("refreshToken"), kind=ACCESS)
    with pytest.raises(TokenError, match="expected"):
        world.plane.codec.verify(edr.property("authorization"), kind=REFRESH)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("probe", ["claims", "signature", "header", "truncate", "append"])
def test_tampered_tokens_fail(world, probe):
    agreement, entity = world.transfer(_file_asset(world))
    token = world.token(agreement, entity)
    head, payload, sig = token.split(".")
    if probe == "claims":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["tpid"] = "urn:uuid:another-transfer"
        bad = f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    elif probe == "signature":
        raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
        raw[0] ^= 1
        bad = f"{head}.{payload}.{_b64(bytes(raw))}"
    elif probe == "header":
        bad = f"{_b64(json.dumps({'alg': 'none'}).encode())}.{payload}.{sig}"
    elif probe == "truncate":
        bad = token[:-3]
    else:
        bad = token + "."
    with pytest.raises(TokenError):
        world.plane.codec.verify(bad, kind=ACCESS)


def test_token_of_another_key_or_issuer_fails(world, tmp_path):
    agreement, entity = world.transfer(_file_asset(world))
    other = TokenCodec(KeyStore.create(tmp_path / "other"), clock=world.clock, issuer=PROVIDER)
    forged = other.access_token(grant_of(agreement, entity))
    with pytest.raises(TokenError, match="signature"):
        world.plane.codec.verify(forged, kind=ACCESS)
    stranger = TokenCodec(world.keys, clock=world.clock, issuer="did:web:someone.else")
    with pytest.raises(TokenError, match="not issued"):
        world.plane.codec.verify(stranger.access_token(grant_of(agreement, entity)), kind=ACCESS)


def test_token_for_another_transfer_is_denied(world):
    asset = _file_asset(world)
    a1, t1 = world.transfer(asset)
    _a2, t2 = world.transfer(asset)
    token = world.token(a1, t1)
    with world.app.test_client() as c:
        assert c.get("/dataplane/public", headers={"Authorization": token}).status_code == 200
    # a token naming transfer 2 but agreement 1 (signed by us, e.g. a bug elsewhere)
    crossed = world.plane.codec.access_token(
        grant_of(a1, t1).__class__(a1.id, t2.id, asset, CONSUMER))
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": f"Bearer {crossed}"})
    assert r.status_code == 403
    assert "does not belong" in r.get_json()["detail"]


def test_refresh_rotates_and_old_refresh_token_stops_working(world):
    agreement, entity = world.transfer(_file_asset(world))
    edr = world.plane.flow.start(entity, agreement)
    first = edr.property("refreshToken")
    with world.app.test_client() as c:
        r = c.post("/dataplane/token", data={"grant_type": "refresh_token",
                                             "refresh_token": first})
        assert r.status_code == 200, r.get_data(as_text=True)
        body = r.get_json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 300
        assert c.get("/dataplane/public",
                     headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200
        again = c.post("/dataplane/token", json={"grant_type": "refresh_token",
                                                 "refresh_token": first})
        assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
        assert "already used" in again.get_json()["detail"]
        third = c.post("/dataplane/token", json={"grant_type": "refresh_token",
                                                 "refresh_token": body["refresh_token"]})
        assert third.status_code == 200
        bad = c.post("/dataplane/token", json={"grant_type": "password"})
        assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("state", [TransferState.SUSPENDED, TransferState.COMPLETED,
                                   TransferState.TERMINATED])
def test_state_change_revokes_access_and_refresh(world, state):
    agreement, entity = world.transfer(_file_asset(world))
    edr = world.plane.flow.start(entity, agreement)
    world.set_state(entity.id, state)
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": edr.property("authorization")})
        assert r.status_code == 403
        assert r.mimetype == "application/problem+json"
        assert state.value in r.get_json()["detail"]
        r = c.post("/dataplane/token", data={"grant_type": "refresh_token",
                                             "refresh_token": edr.property("refreshToken")})
        assert r.status_code == 400 and "not STARTED" in r.get_json()["detail"]


def test_missing_or_garbage_token_is_401(world):
    with world.app.test_client() as c:
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "a.b.c"}):
            r = c.get("/dataplane/public", headers=headers)
            assert r.status_code == 401
            assert r.mimetype == "application/problem+json"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_bearer_parsing():
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("abc") == "abc"
    assert bearer(None) == ""
