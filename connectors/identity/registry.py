"""The member registry: the authority's signed list of admitted members and revocations.

Served by the authority as a compact JWS (``typ`` ``member-registry+jwt``); nodes
fetch it at a configured interval to discover peers and to learn revocations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import jws
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.signer import Signer

REGISTRY_TYP = "member-registry+jwt"
REGISTRY_SERVICE_TYPE = "MemberRegistry"


@dataclass(frozen=True, slots=True)
class Member:
    """One admitted participant as listed in the registry."""

    did: str
    participant_id: str
    name: str
    role: str
    region: str
    url: str
    credential_id: str
    valid_until: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Revocation:
    """A withdrawn membership: the DID and the credential that no longer count."""

    did: str
    credential_id: str
    revoked_at: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Registry:
    """A verified registry document."""

    issuer: str
    issued_at: int
    expires_at: int
    members: dict[str, Member]
    revoked_credentials: frozenset[str]
    revoked_dids: frozenset[str]

    def standing(self, did: str, credential_id: str) -> Reason | None:
        """``None`` when ``did`` with ``credential_id`` is a member in good standing."""
        if credential_id in self.revoked_credentials:
            return Reason.REVOKED
        member = self.members.get(did)
        if member is None:
            return Reason.REVOKED if did in self.revoked_dids else Reason.NOT_A_MEMBER
        return None


def issue(
    signer: Signer,
    *,
    issuer: str,
    members: Iterable[Member],
    revocations: Iterable[Revocation],
    now: int,
    validity: int,
) -> str:
    """Sign a registry document valid for ``validity`` seconds from ``now``."""
    payload = {
        "iss": issuer,
        "iat": now,
        "exp": now + validity,
        "members": [m.to_json() for m in members],
        "revoked": [r.to_json() for r in revocations],
    }
    return jws.encode({"typ": REGISTRY_TYP, "kid": f"{issuer}#{signer.key_id}"}, payload, signer)


def verify(token: str, *, issuer: str, key: Ed25519PublicKey, now: float) -> Registry:
    """Verify a registry document signed by ``issuer``; ``PeerAuthError`` (503) otherwise."""
    try:
        parsed = jws.parse(token)
    except ValueError as exc:
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"registry: {exc}") from None
    p = parsed.payload
    if parsed.header.get("typ") != REGISTRY_TYP or p.get("iss") != issuer:
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"registry is not issued by {issuer}")
    if not jws.verify_signature(parsed, key):
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, "registry signature does not verify")
    try:
        exp = int(p["exp"])
        iat = int(p["iat"])
        members = {m["did"]: Member(**m) for m in p.get("members", [])}
        revoked = [Revocation(**r) for r in p.get("revoked", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"registry malformed: {exc}") from None
    if now >= exp:
        raise PeerAuthError(Reason.REGISTRY_UNAVAILABLE, f"registry expired at {exp}")
    return Registry(
        issuer=issuer,
        issued_at=iat,
        expires_at=exp,
        members=members,
        revoked_credentials=frozenset(r.credential_id for r in revoked),
        revoked_dids=frozenset(r.did for r in revoked),
    )
