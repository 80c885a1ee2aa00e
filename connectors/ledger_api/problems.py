"""Ledger errors and bad query parameters as problem documents (never a traceback)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from connectors.http.problem import ProblemError
from ledger.errors import (
    FormatError,
    LedgerError,
    NotFoundError,
    RemoteError,
    StorageError,
    VerificationError,
)
from ledger.rfc9162 import MAX_TREE_SIZE

# Tree sizes and leaf indices are unsigned 63-bit integers (RFC 9162 sizes fit in uint64;
# the log stores them as BIGINT): at most 19 decimal digits, no sign, no spaces.
_UINT = re.compile(r"^[0-9]{1,19}$")


def problem_for(exc: LedgerError) -> ProblemError:
    """The HTTP answer for a ledger error family."""
    if isinstance(exc, NotFoundError):
        return ProblemError(404, "Not Found", exc.diagnosis)
    if isinstance(exc, FormatError):
        return ProblemError(400, "Bad Request", exc.diagnosis)
    if isinstance(exc, RemoteError):
        return ProblemError(503, "Service Unavailable", exc.diagnosis,
                            headers={"Retry-After": "5"})
    if isinstance(exc, StorageError):
        return ProblemError(409, "Conflict", exc.diagnosis)
    if isinstance(exc, VerificationError):
        # The node's own storage fails its checks: the operator must look, the client cannot fix.
        return ProblemError(500, "Ledger integrity error", exc.diagnosis)
    return ProblemError(500, "Ledger error", exc.diagnosis)


@contextmanager
def ledger_errors() -> Iterator[None]:
    """Turn any `LedgerError` raised inside into the matching problem document."""
    try:
        yield
    except LedgerError as exc:
        raise problem_for(exc) from None


def uint_param(args: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    """A non-negative integer query parameter (0..2^63-1), or 400 saying what is wrong."""
    raw = args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ProblemError(400, "Bad Request", f"query parameter {name!r} is required")
        return default
    if not _UINT.match(raw) or int(raw) > MAX_TREE_SIZE:
        raise ProblemError(400, "Bad Request",
                           f"query parameter {name!r} must be an integer in 0..2^63-1",
                           parameter=name)
    return int(raw)


def refuse_unknown(args: Mapping[str, str], known: set[str] | frozenset[str]) -> None:
    """400 for query parameters this endpoint does not understand (fail closed, say which)."""
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ProblemError(400, "Bad Request",
                           f"unknown query parameter(s): {', '.join(unknown)}; "
                           f"this endpoint accepts {', '.join(sorted(known)) or 'none'}")
