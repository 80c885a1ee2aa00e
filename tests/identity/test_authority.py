"""The authority's member book and the signed registry document."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import registry
from connectors.identity.authority import Authority, MemberBook
from connectors.identity.errors import IdentityError, PeerAuthError, Reason
from connectors.identity.signer import EphemeralSigner

NOW = 1_800_000_000


@pytest.fixture
def authority(tmp_path):
    signer = EphemeralSigner()
    return Authority("did:web:auth.example", signer, MemberBook(tmp_path / "m.json"),
                     clock=lambda: NOW), signer


def key(signer):
    return Ed25519PublicKey.from_public_bytes(signer.public_key_bytes())


def test_admit_lists_member_with_url_from_did(authority):
    auth, signer = authority
    _, member = auth.admit(member_did="did:web:127.0.0.1%3A9001", participant_id="P1",
                           role="oem", region="DE")
    assert member.url == "http://127.0.0.1:9001" and member.region == "DE"
    reg = registry.verify(auth.registry_document(), issuer=auth.did, key=key(signer), now=NOW)
    assert reg.standing("did:web:127.0.0.1%3A9001", member.credential_id) is None
    assert reg.standing("did:web:stranger.example", "urn:x") is Reason.NOT_A_MEMBER


def test_revoke_unknown_member_is_an_error(authority):
    with pytest.raises(IdentityError, match="not a member"):
        authority[0].revoke("did:web:nobody.example")


def test_admit_needs_a_url_for_non_web_dids(authority):
    with pytest.raises(IdentityError, match="--url"):
        authority[0].admit(member_did="did:key:z6MkX", participant_id="P", role="oem")
    with pytest.raises(IdentityError, match="role"):
        authority[0].admit(member_did="did:web:a.example", participant_id="P", role="king")


def test_registry_tampering_and_wrong_issuer_are_refused(authority):
    auth, signer = authority
    auth.admit(member_did="did:web:a.example", participant_id="P", role="oem")
    doc = auth.registry_document()
    head, body, sig = doc.split(".")
    from connectors.identity.jwk import b64url_decode, b64url_encode

    payload = json.loads(b64url_decode(body))
    payload["revoked"] = []
    payload["members"].append({**payload["members"][0], "did": "did:web:evil.example"})
    forged = f"{head}.{b64url_encode(json.dumps(payload).encode())}.{sig}"
    for bad, issuer, k in ((forged, auth.did, key(signer)),
                           (doc, "did:web:other.example", key(signer)),
                           (doc, auth.did, key(EphemeralSigner()))):
        with pytest.raises(PeerAuthError) as e:
            registry.verify(bad, issuer=issuer, key=k, now=NOW)
        assert e.value.reason is Reason.REGISTRY_UNAVAILABLE
    with pytest.raises(PeerAuthError, match="expired"):
        registry.verify(doc, issuer=auth.did, key=key(signer), now=NOW + 10**6)


def test_member_book_is_replaced_atomically(authority, tmp_path):
    auth, _ = authority
    auth.admit(member_did="did:web:a.example", participant_id="P", role="oem")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp files left behind
    (tmp_path / "m.json").write_text("{broken")
    with pytest.raises(IdentityError, match="unreadable"):
        auth.members()
