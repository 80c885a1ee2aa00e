"""One error family for everything that makes a peer call untrusted.

Each failure carries a :class:`Reason` (a stable code for logs, metrics and the
problem document), the HTTP status it maps to, and a human-readable detail saying
what was expected and what was found.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a peer token, a credential or a DID was refused."""

    # The token itself (the caller failed to authenticate): 401.
    MISSING_TOKEN = "missing_token"
    MALFORMED_TOKEN = "malformed_token"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    BAD_SIGNATURE = "bad_signature"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    REPLAYED = "replayed"
    CALLER_UNRESOLVABLE = "caller_unresolvable"
    UNKNOWN_KEY = "unknown_key"
    # The membership (authenticated, but not admitted to this data space): 403.
    MISSING_CREDENTIAL = "missing_credential"
    MALFORMED_CREDENTIAL = "malformed_credential"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    CREDENTIAL_BAD_SIGNATURE = "credential_bad_signature"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_NOT_YET_VALID = "credential_not_yet_valid"
    SUBJECT_MISMATCH = "subject_mismatch"
    REVOKED = "revoked"
    NOT_A_MEMBER = "not_a_member"
    # Our side cannot decide right now (fail closed, caller may retry): 503.
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    AUTHORITY_UNRESOLVABLE = "authority_unresolvable"
    REPLAY_UNDECIDABLE = "replay_undecidable"  # the jti record is unavailable or was lost

    @property
    def status(self) -> int:
        """HTTP status of a refusal for this reason."""
        if self in _UNAVAILABLE:
            return 503
        if self in _FORBIDDEN:
            return 403
        return 401


_FORBIDDEN = frozenset(
    {
        Reason.MISSING_CREDENTIAL,
        Reason.MALFORMED_CREDENTIAL,
        Reason.UNTRUSTED_ISSUER,
        Reason.CREDENTIAL_BAD_SIGNATURE,
        Reason.CREDENTIAL_EXPIRED,
        Reason.CREDENTIAL_NOT_YET_VALID,
        Reason.SUBJECT_MISMATCH,
        Reason.REVOKED,
        Reason.NOT_A_MEMBER,
    }
)
_UNAVAILABLE = frozenset(
    {Reason.REGISTRY_UNAVAILABLE, Reason.AUTHORITY_UNRESOLVABLE, Reason.REPLAY_UNDECIDABLE}
)


class PeerAuthError(Exception):
    """A peer call, token or credential was refused; fail closed.

    Attributes:
        reason: stable machine-readable code.
        detail: what was expected and what was found (safe to show the caller).
        caller: the caller DID as claimed (unverified) when it could be read.
    """

    def __init__(self, reason: Reason, detail: str, *, caller: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.caller = caller

    @property
    def status(self) -> int:
        return self.reason.status


class DidError(ValueError):
    """A DID or DID document is malformed or cannot be turned into a URL."""


class IdentityError(Exception):
    """An operator-level identity problem (authority home, credential file); one CLI line."""
