"""Membership credentials: a W3C Verifiable Credential (VC Data Model 1.1) as a signed JWT.

The JWT encoding follows VC-JWT: ``iss`` is the authority DID, ``sub`` the member
DID, ``nbf``/``exp`` the validity, ``jti`` the credential id, and ``vc`` the
credential body whose ``credentialSubject`` names participant id, name, role and
region. Issue and verify are pure functions of their inputs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connectors.identity import jws
from connectors.identity.errors import PeerAuthError, Reason
from connectors.identity.signer import Signer

VC_CONTEXT = "https://www.w3.org/2018/credentials/v1"
MEMBERSHIP_CONTEXT = "https://w3id.org/autospace/membership/v1"
CREDENTIAL_TYPE = "MembershipCredential"
JWT_TYP = "vc+jwt"


class Role(StrEnum):
    """A member's role in the automotive data space."""

    OEM = "oem"
    SUPPLIER = "supplier"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class MembershipCredential:
    """The verified content of a membership credential."""

    id: str
    issuer: str
    subject: str
    participant_id: str
    name: str
    role: Role
    region: str
    valid_from: int
    valid_until: int


def issue(
    signer: Signer,
    *,
    issuer: str,
    subject: str,
    participant_id: str,
    name: str,
    role: Role | str,
    region: str,
    valid_from: int,
    valid_until: int,
    credential_id: str | None = None,
) -> str:
    """Sign a membership credential; ``valid_*`` are Unix seconds."""
    role = Role(role)
    if valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    if not participant_id or not subject.startswith("did:"):
        raise ValueError("a credential needs a participant id and a subject DID")
    cred_id = credential_id or f"urn:uuid:{uuid.uuid4()}"
    payload = {
        "iss": issuer,
        "sub": subject,
        "nbf": valid_from,
        "iat": valid_from,
        "exp": valid_until,
        "jti": cred_id,
        "vc": {
            "@context": [VC_CONTEXT, MEMBERSHIP_CONTEXT],
            "id": cred_id,
            "type": ["VerifiableCredential", CREDENTIAL_TYPE],
            "issuer": issuer,
            "credentialSubject": {
                "id": subject,
                "participantId": participant_id,
                "name": name,
                "role": role.value,
                "region": region,
            },
        },
    }
    header = {"typ": JWT_TYP, "kid": f"{issuer}#{signer.key_id}"}
    return jws.encode(header, payload, signer)


def read(token: str) -> tuple[jws.Parsed, MembershipCredential]:
    """Decode a credential without checking its signature or time (for display and routing).

    Raises ``PeerAuthError(MALFORMED_CREDENTIAL)`` naming the first problem found.
    """
    try:
        parsed = jws.parse(token)
    except ValueError as exc:
        raise PeerAuthError(Reason.MALFORMED_CREDENTIAL, f"credential: {exc}") from None
    p = parsed.payload
    vc = p.get("vc")
    subject = vc.get("credentialSubject") if isinstance(vc, dict) else None
    if not isinstance(subject, dict):
        raise PeerAuthError(Reason.MALFORMED_CREDENTIAL, "credential has no vc.credentialSubject")
    if CREDENTIAL_TYPE not in (vc.get("type") or []):
        raise PeerAuthError(Reason.MALFORMED_CREDENTIAL, f"credential is not a {CREDENTIAL_TYPE}")
    try:
        cred = MembershipCredential(
            id=_str(p, "jti"),
            issuer=_str(p, "iss"),
            subject=_str(p, "sub"),
            participant_id=_str(subject, "participantId"),
            name=str(subject.get("name", "")),
            role=Role(subject.get("role")),
            region=str(subject.get("region", "")),
            valid_from=_int(p, "nbf"),
            valid_until=_int(p, "exp"),
        )
    except (KeyError, ValueError) as exc:
        raise PeerAuthError(Reason.MALFORMED_CREDENTIAL, f"credential field {exc}") from None
    if subject.get("id") != cred.subject:
        raise PeerAuthError(Reason.MALFORMED_CREDENTIAL, "credentialSubject.id differs from sub")
    return parsed, cred


def verify(
    token: str,
    *,
    issuer_key: Callable[[str, str | None], Ed25519PublicKey],
    trusted_issuers: frozenset[str] | set[str],
    now: float,
    skew: int,
) -> MembershipCredential:
    """Verify a credential: trusted issuer, signature, validity window (with ``skew`` seconds).

    Args:
        issuer_key: returns the issuer's public key for ``(issuer DID, kid)``; may raise
            ``PeerAuthError`` (e.g. authority unresolvable).
        trusted_issuers: DIDs of the trust anchors.
    """
    parsed, cred = read(token)
    if cred.issuer not in trusted_issuers:
        raise PeerAuthError(
            Reason.UNTRUSTED_ISSUER, f"credential issued by {cred.issuer}, not a trust anchor"
        )
    key = issuer_key(cred.issuer, parsed.header.get("kid"))
    if not jws.verify_signature(parsed, key):
        raise PeerAuthError(
            Reason.CREDENTIAL_BAD_SIGNATURE,
            f"credential signature does not verify for {cred.issuer}",
        )
    check_validity(cred, now=now, skew=skew)
    return cred


def check_validity(cred: MembershipCredential, *, now: float, skew: int) -> None:
    """Raise when ``now`` is outside the credential's validity window (with ``skew``)."""
    if now + skew < cred.valid_from:
        raise PeerAuthError(
            Reason.CREDENTIAL_NOT_YET_VALID,
            f"credential valid from {cred.valid_from}, now {int(now)}",
        )
    if now - skew >= cred.valid_until:
        raise PeerAuthError(
            Reason.CREDENTIAL_EXPIRED, f"credential expired at {cred.valid_until}, now {int(now)}"
        )


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise KeyError(key)
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyError(key)
    return value
