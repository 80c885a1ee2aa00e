"""did:web derivation and resolution URLs (did:web method spec examples), did:key, DID documents."""

import pytest

from connectors.identity.did import (
    did_document,
    did_key_from_public_key,
    did_web_base_url,
    did_web_document_url,
    did_web_from_url,
    public_key_from_did_key,
    verification_key,
)
from connectors.identity.errors import DidError
from connectors.identity.signer import EphemeralSigner

# (public URL, DID, DID document URL) — the method spec's examples plus our loopback case.
VECTORS = [
    ("https://w3c-ccg.github.io", "did:web:w3c-ccg.github.io",
     "https://w3c-ccg.github.io/.well-known/did.json"),
    ("https://w3c-ccg.github.io/user/alice", "did:web:w3c-ccg.github.io:user:alice",
     "https://w3c-ccg.github.io/user/alice/did.json"),
    ("https://example.com:3000", "did:web:example.com%3A3000",
     "https://example.com:3000/.well-known/did.json"),
    ("http://127.0.0.1:8181", "did:web:127.0.0.1%3A8181",
     "http://127.0.0.1:8181/.well-known/did.json"),
    ("http://localhost:9000/nodes/a/", "did:web:localhost%3A9000:nodes:a",
     "http://localhost:9000/nodes/a/did.json"),
]


@pytest.mark.parametrize(("url", "did", "doc_url"), VECTORS)
def test_did_web_vectors(url, did, doc_url):
    assert did_web_from_url(url) == did
    assert did_web_document_url(did) == doc_url


def test_https_is_required_unless_the_host_is_allowed():
    did = "did:web:127.0.0.1%3A8181"
    assert did_web_base_url(did, allow_http_hosts=()) == "https://127.0.0.1:8181"
    assert did_web_base_url("did:web:evil.example", allow_http_hosts=("127.0.0.1",)).startswith(
        "https://")


@pytest.mark.parametrize("url", ["ftp://x.example", "https://", "https://a.example/?q=1",
                                 "https://u:p@a.example", "https://[::1]:80"])
def test_bad_public_urls(url):
    with pytest.raises(DidError):
        did_web_from_url(url)


@pytest.mark.parametrize("did", ["did:key:z6Mk", "did:web:", "did:web:a.example/x",
                                 "did:web:a.example#frag"])
def test_bad_did_web(did):
    with pytest.raises(DidError):
        did_web_document_url(did)


def test_did_key_round_trip_and_multicodec_prefix():
    signer = EphemeralSigner()
    did = did_key_from_public_key(signer.public_key_bytes())
    assert did.startswith("did:key:z6Mk")  # every Ed25519 did:key starts so (0xed01 prefix)
    assert public_key_from_did_key(did) == signer.public_key_bytes()
    with pytest.raises(DidError):
        public_key_from_did_key(did[:-3] + "0OI")  # not base58


def test_verification_key_lookup():
    s = EphemeralSigner()
    did = "did:web:a.example"
    doc = did_document(did, s.public_key_bytes(), s.key_id)
    assert verification_key(doc, did, f"{did}#{s.key_id}") == s.public_key_bytes()
    assert verification_key(doc, did, s.key_id) == s.public_key_bytes()
    assert verification_key(doc, did, None) == s.public_key_bytes()
    with pytest.raises(DidError):
        verification_key(doc, did, f"{did}#other")
    with pytest.raises(DidError):
        verification_key(doc, "did:web:b.example", None)  # document of another DID
    doc["verificationMethod"][0]["controller"] = "did:web:evil.example"
    with pytest.raises(DidError):
        verification_key(doc, did, None)


def test_private_jwk_is_refused():
    s = EphemeralSigner()
    did = "did:web:a.example"
    doc = did_document(did, s.public_key_bytes(), s.key_id)
    doc["verificationMethod"][0]["publicKeyJwk"]["d"] = "AAAA"
    with pytest.raises(DidError):
        verification_key(doc, did, None)
