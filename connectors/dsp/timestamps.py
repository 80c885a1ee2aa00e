"""xsd:dateTime in and out (agreement timestamps), always UTC on the way out."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# xsd:dateTime lexical form (seconds required, fraction and zone optional), as the DSP
# 2025-1 Agreement schema's timestamp pattern.
_XSD_DATETIME = re.compile(
    r"-?\d{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?"
)


def format_xsd_datetime(moment: datetime) -> str:
    """``2025-01-31T12:00:00Z`` (UTC, seconds precision: agreements are compared as text)."""
    if moment.tzinfo is None:
        raise ValueError("agreement timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_xsd_datetime(text: str) -> datetime | None:
    """Parse an xsd:dateTime; None if it is not one. A missing zone is read as UTC."""
    if not _XSD_DATETIME.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
