"""The dataspace authority: admits participants, revokes them, signs the member registry.

State is a small JSON member book in the authority's home, replaced atomically on
every change so the serving process always reads a complete document. The key is
reached only through a ``Signer``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.identity import credentials, registry
from connectors.identity.credentials import Role
from connectors.identity.did import DEFAULT_HTTP_HOSTS, did_document, did_web_base_url
from connectors.identity.errors import DidError, IdentityError
from connectors.identity.registry import Member, Revocation
from connectors.identity.signer import Signer

DAY = 86400
DEFAULT_REGISTRY_VALIDITY = 3600  # a node keeps using a registry it cannot refresh this long


class MemberBook:
    """Admitted members and revocations, persisted as JSON at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[dict[str, Member], list[Revocation]]:
        if not self.path.exists():
            return {}, []
        try:
            data = json.loads(self.path.read_text())
            members = {d: Member(**m) for d, m in data.get("members", {}).items()}
            revoked = [Revocation(**r) for r in data.get("revoked", [])]
        except (ValueError, TypeError) as exc:
            raise IdentityError(f"member book {self.path} is unreadable: {exc}") from None
        return members, revoked

    def save(self, members: dict[str, Member], revoked: list[Revocation]) -> None:
        data: dict[str, Any] = {
            "members": {d: m.to_json() for d, m in sorted(members.items())},
            "revoked": [r.to_json() for r in revoked],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".members-")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class Authority:
    """Operations of a dataspace authority identified by ``did``.

    Args:
        did: the authority's DID (did:web of its URL, or did:key).
        signer: the authority's key.
        book: where members are kept.
        clock: Unix seconds.
    """

    def __init__(
        self, did: str, signer: Signer, book: MemberBook, *, clock: Callable[[], float]
    ) -> None:
        self.did = did
        self._signer = signer
        self._book = book
        self._clock = clock

    def admit(
        self,
        *,
        member_did: str,
        participant_id: str,
        role: Role | str,
        region: str = "CN",
        valid_days: float = 365,
        name: str | None = None,
        url: str | None = None,
        allow_http_hosts: tuple[str, ...] = DEFAULT_HTTP_HOSTS,
    ) -> tuple[str, Member]:
        """Issue a membership credential and list the member; re-admission replaces the entry."""
        if valid_days <= 0:
            raise IdentityError("--valid-days must be positive")
        try:
            role = Role(role)
        except ValueError:
            raise IdentityError(f"role must be one of {[r.value for r in Role]}") from None
        if url is None:
            try:
                url = did_web_base_url(member_did, allow_http_hosts=allow_http_hosts)
            except DidError:
                raise IdentityError(f"cannot derive a URL from {member_did}; pass --url") from None
        now = int(self._clock())
        until = now + int(valid_days * DAY)
        token = credentials.issue(
            self._signer,
            issuer=self.did,
            subject=member_did,
            participant_id=participant_id,
            name=name or participant_id,
            role=role,
            region=region,
            valid_from=now,
            valid_until=until,
        )
        _, cred = credentials.read(token)
        member = Member(
            did=member_did,
            participant_id=participant_id,
            name=cred.name,
            role=role.value,
            region=region,
            url=url,
            credential_id=cred.id,
            valid_until=until,
        )
        members, revoked = self._book.load()
        previous = members.get(member_did)
        if previous is not None:  # the superseded credential no longer counts
            revoked.append(Revocation(member_did, previous.credential_id, now))
        members[member_did] = member
        revoked = [r for r in revoked if r.credential_id != cred.id]
        self._book.save(members, revoked)
        return token, member

    def revoke(self, member_did: str) -> Revocation:
        """Remove a member; its credential is listed as revoked from the next registry on."""
        members, revoked = self._book.load()
        member = members.pop(member_did, None)
        if member is None:
            raise IdentityError(f"{member_did} is not a member")
        revocation = Revocation(member_did, member.credential_id, int(self._clock()))
        revoked.append(revocation)
        self._book.save(members, revoked)
        return revocation

    def members(self) -> list[Member]:
        return sorted(self._book.load()[0].values(), key=lambda m: m.participant_id)

    def registry_document(self, *, validity: int = DEFAULT_REGISTRY_VALIDITY) -> str:
        """The signed member registry as of now."""
        members, revoked = self._book.load()
        return registry.issue(
            self._signer,
            issuer=self.did,
            members=members.values(),
            revocations=revoked,
            now=int(self._clock()),
            validity=validity,
        )

    def did_document(self, registry_url: str | None) -> dict[str, Any]:
        """The authority's DID document, naming its registry as a service."""
        services = None
        if registry_url:
            services = [
                {
                    "id": f"{self.did}#registry",
                    "type": registry.REGISTRY_SERVICE_TYPE,
                    "serviceEndpoint": registry_url,
                }
            ]
        return did_document(
            self.did, self._signer.public_key_bytes(), self._signer.key_id, services=services
        )
