"""Peer tokens and membership credentials: round trips, time windows, and corruptions."""

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import credentials, jws, tokens
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.signer import EphemeralSigner

NOW = 1_800_000_000


def _key(signer):
    return Ed25519PublicKey.from_public_bytes(signer.public_key_bytes())


def _token(signer, **kw):
    return tokens.issue(signer, issuer="did:web:a.example", audience="did:web:b.example",
                        credential="cred.jwt.x", now=NOW, **kw)


def test_peer_token_claims_and_independent_verification():
    s = EphemeralSigner()
    token = _token(s, lifetime=300)
    parsed, claims = tokens.read(token)
    assert claims.issuer == "did:web:a.example" and claims.audience == "did:web:b.example"
    assert claims.expires_at - claims.issued_at == 300
    assert claims.kid == f"did:web:a.example#{s.key_id}"
    assert jws.verify_signature(parsed, _key(s))
    # an independent JOSE implementation (PyJWT) accepts our EdDSA tokens
    decoded = jwt.decode(token, _key(s), algorithms=["EdDSA"], audience="did:web:b.example",
                         options={"verify_exp": False, "verify_iat": False})
    assert decoded["sub"] == decoded["iss"] == "did:web:a.example"


def test_jti_is_unique():
    s = EphemeralSigner()
    assert len({tokens.read(_token(s))[1].jti for _ in range(200)}) == 200


@pytest.mark.parametrize("lifetime", [0, -1, 301, 3600])
def test_lifetime_is_bounded(lifetime):
    with pytest.raises(ValueError):
        _token(EphemeralSigner(), lifetime=lifetime)


def test_time_window_with_skew():
    _, c = tokens.read(_token(EphemeralSigner(), lifetime=60))
    tokens.check_time(c, now=NOW + 59, skew=0, max_lifetime=300)
    tokens.check_time(c, now=NOW + 60 + 29, skew=30, max_lifetime=300)
    with pytest.raises(PeerAuthError) as e:
        tokens.check_time(c, now=NOW + 60 + 30, skew=30, max_lifetime=300)
    assert e.value.reason is Reason.EXPIRED
    with pytest.raises(PeerAuthError) as e:
        tokens.check_time(c, now=NOW - 31, skew=30, max_lifetime=300)
    assert e.value.reason is Reason.NOT_YET_VALID
    with pytest.raises(PeerAuthError) as e:
        tokens.check_time(c, now=NOW, skew=30, max_lifetime=30)
    assert e.value.reason is Reason.LIFETIME_TOO_LONG


def _b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def corruptions(token: str):
    """Every way we know to damage a token; none may verify."""
    h, p, s = token.split(".")
    yield "flip a signature bit", f"{h}.{p}.{s[:-2]}{'A' if s[-2] != 'A' else 'B'}{s[-1]}"
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    for key, value in (("aud", "did:web:c.example"), ("exp", payload["exp"] + 1),
                       ("iss", "did:web:evil.example"), ("jti", "x")):
        yield f"change {key}", f"{h}.{_b64({**payload, key: value})}.{s}"
    yield "alg none", f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{p}."
    yield "alg HS256", f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{p}.{s}"
    yield "truncate signature", f"{h}.{p}.{s[:20]}"
    yield "drop part", f"{h}.{p}"
    yield "bytes before", "x" + token
    yield "bytes after", token + "x"
    yield "extra part", token + ".e30"


def test_every_corruption_fails():
    s = EphemeralSigner()
    token = _token(s)
    for label, bad in corruptions(token):
        try:
            parsed, _ = tokens.read(bad)
        except PeerAuthError:
            continue
        assert not jws.verify_signature(parsed, _key(s)), label


def test_other_key_does_not_verify():
    parsed, _ = tokens.read(_token(EphemeralSigner()))
    assert not jws.verify_signature(parsed, _key(EphemeralSigner()))


@pytest.mark.parametrize("claims", [{"iss": "did:web:a", "sub": "did:web:b"}, {"iat": "1"},
                                    {"jti": "x" * 129}, {"credential": ""}, {"aud": 3}])
def test_malformed_claims(claims):
    s = EphemeralSigner()
    base = {"iss": "did:web:a", "sub": "did:web:a", "aud": "did:web:b", "iat": NOW,
            "exp": NOW + 60, "jti": "j", "credential": "c"}
    token = jws.encode({"typ": "JWT"}, {**base, **claims}, s)
    with pytest.raises(PeerAuthError) as e:
        tokens.read(token)
    assert e.value.reason in (Reason.MALFORMED_TOKEN, Reason.MISSING_CREDENTIAL)


# --- membership credentials ------------------------------------------------------------

AUTH = "did:web:authority.example"


def _cred(signer, **kw):
    args = dict(issuer=AUTH, subject="did:web:a.example", participant_id="BPNL1", name="A",
                role="oem", region="CN", valid_from=NOW, valid_until=NOW + 86400)
    args.update(kw)
    return credentials.issue(signer, **args)


def _verify(token, signer, now=NOW + 10, trusted=(AUTH,)):
    return credentials.verify(token, issuer_key=lambda did, kid: _key(signer),
                              trusted_issuers=frozenset(trusted), now=now, skew=30)


def test_credential_round_trip_is_a_vc():
    s = EphemeralSigner()
    token = _cred(s)
    cred = _verify(token, s)
    assert (cred.participant_id, cred.role, cred.region) == ("BPNL1", credentials.Role.OEM, "CN")
    body = jws.parse(token).payload["vc"]
    assert body["type"] == ["VerifiableCredential", "MembershipCredential"]
    assert body["@context"][0] == "https://www.w3.org/2018/credentials/v1"
    assert body["credentialSubject"]["id"] == "did:web:a.example"


def test_credential_refusals():
    s = EphemeralSigner()
    cases = [
        (Reason.UNTRUSTED_ISSUER, lambda: _verify(_cred(s, issuer="did:web:rogue.example"), s)),
        (Reason.CREDENTIAL_BAD_SIGNATURE, lambda: _verify(_cred(EphemeralSigner()), s)),
        (Reason.CREDENTIAL_EXPIRED, lambda: _verify(_cred(s), s, now=NOW + 86400 + 30)),
        (Reason.CREDENTIAL_NOT_YET_VALID, lambda: _verify(_cred(s), s, now=NOW - 31)),
        (Reason.MALFORMED_CREDENTIAL, lambda: _verify("not.a.jwt", s)),
        (Reason.MALFORMED_CREDENTIAL, lambda: _verify(
            jws.encode({}, {"iss": AUTH, "vc": {"type": ["VerifiableCredential"],
                                                "credentialSubject": {}}}, s), s)),
    ]
    for reason, call in cases:
        with pytest.raises(PeerAuthError) as e:
            call()
        assert e.value.reason is reason
        assert e.value.status == 403


def test_credential_rejects_invalid_role_and_window():
    s = EphemeralSigner()
    with pytest.raises(ValueError):
        _cred(s, role="king")
    with pytest.raises(ValueError):
        _cred(s, valid_until=NOW)


@pytest.mark.parametrize("payload", [
    b'{"iss":"did:web:a","iat":NaN}',                      # not JSON, though Python accepts it
    b'{"iss":"did:web:a","iat":1e999}',                    # infinity
    b'{"iss":"did:web:a","iat":123456789012345678901234}',  # beyond 64 bits: read as a float
    b'{"iss":"did:web:a","name":"\xff"}',                  # not UTF-8
    b'["not", "an", "object"]',
])
def test_payloads_that_are_not_plain_json_objects_are_malformed(payload):
    s = EphemeralSigner()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "EdDSA"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(payload).rstrip(b"=")
    signing_input = head + b"." + body
    sig = base64.urlsafe_b64encode(s.sign(signing_input)).rstrip(b"=")
    with pytest.raises(PeerAuthError) as e:
        tokens.read((signing_input + b"." + sig).decode())
    assert e.value.reason is Reason.MALFORMED_TOKEN
