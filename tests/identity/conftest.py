"""Shared builders for identity tests: an authority, members, and a verifier wired to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.identity import tokens
from connectors.identity.authority import Authority, MemberBook
from connectors.identity.did import did_document, did_web_from_url
from connectors.identity.replay_local import LocalReplayStore
from connectors.identity.resolver import StaticDidResolver
from connectors.identity.signer import EphemeralSigner
from connectors.identity.store import SqlReplayStore
from connectors.identity.trust import (
    AnchorKeys,
    PeerVerifier,
    RegistryCache,
    TrustAnchor,
)


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AuthoritySource:
    """Registry source reading straight from an ``Authority`` (no HTTP), counting fetches."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self.fetches = 0
        self.fail = False

    def fetch(self, anchor: TrustAnchor) -> str:
        from connectors.identity.errors import PeerAuthError, Reason

        self.fetches += 1
        if self.fail:
            raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, "authority down (test)")
        return self.authority.registry_document(validity=600)


@dataclass
class Member:
    url: str
    signer: EphemeralSigner
    credential: str = ""

    @property
    def did(self) -> str:
        return did_web_from_url(self.url)

    def token(self, audience: str, now: float, **kwargs) -> str:  # type: ignore[no-untyped-def]
        return tokens.issue(self.signer, issuer=self.did, audience=audience,
                            credential=kwargs.pop("credential", self.credential), now=now,
                            **kwargs)


@dataclass
class World:
    clock: Clock
    authority: Authority
    authority_signer: EphemeralSigner
    source: AuthoritySource
    documents: dict
    a: Member
    b: Member
    verifier: PeerVerifier
    replay: SqlReplayStore | LocalReplayStore
    registries: RegistryCache
    extra: dict = field(default_factory=dict)

    def add_member(self, url: str, role: str = "supplier", admit: bool = True) -> Member:
        m = Member(url, EphemeralSigner())
        self.documents[m.did] = did_document(m.did, m.signer.public_key_bytes(), m.signer.key_id)
        if admit:
            m.credential, _ = self.authority.admit(member_did=m.did, participant_id=f"P-{url[-4:]}",
                                                   role=role, valid_days=30)
        return m


@pytest.fixture(params=["database", "local"])
def world(request, tmp_path: Path, engine) -> World:  # type: ignore[no-untyped-def]
    """Two members and a verifier for B, over each kind of replay store."""
    clock = Clock()
    auth_signer = EphemeralSigner()
    auth_did = "did:web:authority.example"
    authority = Authority(auth_did, auth_signer, MemberBook(tmp_path / "members.json"),
                          clock=clock)
    documents: dict = {auth_did: authority.did_document(None)}
    resolver = StaticDidResolver(documents)
    keys = AnchorKeys([TrustAnchor(auth_did)], resolver)
    source = AuthoritySource(authority)
    registries = RegistryCache(keys, source, clock=clock, refresh_interval=10)
    replay: SqlReplayStore | LocalReplayStore
    if request.param == "database":
        replay = SqlReplayStore(engine, clock=clock)
    else:
        replay = LocalReplayStore(tmp_path / "replay", clock=clock)
        request.addfinalizer(replay.close)
    a = Member("https://a.example", EphemeralSigner())
    b = Member("https://b.example", EphemeralSigner())
    w = World(clock, authority, auth_signer, source, documents, a, b, None, replay,  # type: ignore[arg-type]
              registries)
    for m, role in ((a, "oem"), (b, "supplier")):
        documents[m.did] = did_document(m.did, m.signer.public_key_bytes(), m.signer.key_id)
        m.credential, _ = authority.admit(member_did=m.did, participant_id=f"P-{m.url[8]}",
                                          role=role, valid_days=30)
    w.verifier = PeerVerifier(own_did=b.did, keys=keys, registries=registries,
                              resolver=resolver, replay=replay, clock=clock, skew=30)
    return w
