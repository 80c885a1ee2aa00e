"""The ledger's error families.

Every failure a caller can act on is one of these, carrying what was expected and
what was found, so the CLI and the HTTP layer can print a one-line diagnosis
without a traceback. Verification failures (the evidence is wrong) are kept apart
from bad input (the evidence cannot even be read) and from operational failures
(storage, chain), because the audit CLI maps them to different exit codes.
"""

from __future__ import annotations

import base64
from typing import Any


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode() if value else "<empty>"
    return str(value)


class LedgerError(Exception):
    """Root of the ledger's errors."""

    def __init__(self, message: str, *, expected: Any = None, found: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.found = found

    @property
    def diagnosis(self) -> str:
        """One human-readable line: what failed, what was expected, what was found."""
        parts = [self.message]
        if self.expected is not None:
            parts.append(f"expected {_show(self.expected)}")
        if self.found is not None:
            parts.append(f"found {_show(self.found)}")
        return "; ".join(parts)

    def __str__(self) -> str:
        return self.diagnosis


# -- the evidence is wrong ---------------------------------------------------------------
class VerificationError(LedgerError):
    """A proof, signature, checkpoint or anchor does not verify: the evidence is invalid."""


class ProofError(VerificationError):
    """A Merkle proof is malformed for the claimed index/sizes."""


class RootMismatchError(VerificationError):
    """A well-formed proof leads to a different root than the one claimed."""


class SignatureError(VerificationError):
    """A signed note carries no valid signature by the expected key."""


class ForkError(VerificationError):
    """Two checkpoints of one log cannot both be true (different roots, failed consistency)."""


class AnchorMismatchError(VerificationError):
    """The chain does not hold an anchor that covers the checkpoint."""


# -- the input cannot be read ------------------------------------------------------------
class FormatError(LedgerError):
    """Input (bundle, checkpoint, key, record) is malformed and cannot be evaluated."""


class RecordError(FormatError):
    """A record does not satisfy its type's schema."""


# -- operational failures ----------------------------------------------------------------
class StorageError(LedgerError):
    """The log's storage is inconsistent or a requested entry does not exist."""


class NotFoundError(StorageError):
    """No such record, entry or tree size in this log."""


class RemoteError(LedgerError):
    """A remote service (EVM node, another node's log endpoint) is unreachable or unusable."""


class ChainError(RemoteError):
    """The EVM node is unreachable, on the wrong chain, or rejected a transaction."""
