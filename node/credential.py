"""The node's own membership credential, kept as ``HOME/credential.jwt``."""

from __future__ import annotations

import os
from pathlib import Path

from connectors.identity import credentials
from connectors.identity.credentials import MembershipCredential
from connectors.identity.errors import IdentityError, PeerAuthError
from connectors.identity.trust import AnchorKeys

CREDENTIAL_FILE = "credential.jwt"


def credential_path(home: Path) -> Path:
    return Path(home) / CREDENTIAL_FILE


class CredentialFile:
    """Reads the credential when it changes on disk (import works without a restart)."""

    def __init__(self, home: Path) -> None:
        self.path = credential_path(home)
        self._stamp: tuple[int, int] | None = None
        self._token: str | None = None

    def __call__(self) -> str | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._token = self.path.read_text().strip() or None
            self._stamp = stamp
        return self._token


def import_credential(
    home: Path, token: str, *, node_did: str, keys: AnchorKeys | None, now: float, skew: int = 30
) -> MembershipCredential:
    """Check a credential is for this node and (when an anchor is configured) validly signed.

    Raises ``IdentityError`` with one line saying what is wrong; writes nothing then.
    """
    token = token.strip()
    try:
        _, cred = credentials.read(token)
        if cred.subject != node_did:
            raise IdentityError(f"credential is for {cred.subject}, this node is {node_did}")
        if keys is not None:
            credentials.verify(
                token, issuer_key=keys.key, trusted_issuers=frozenset(keys.anchors), now=now,
                skew=skew,
            )
        else:
            credentials.check_validity(cred, now=now, skew=skew)
    except PeerAuthError as exc:
        raise IdentityError(f"credential refused ({exc.reason.value}): {exc.detail}") from None
    path = credential_path(home)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(token + "\n")
    os.replace(tmp, path)
    return cred
