"""Typed values of constraint operands and their comparison.

Right operands arrive as JSON-LD values (``{"@value": ..., "@type": xsd:...}`` or
``{"@id": ...}``); left operands arrive as plain JSON in the request. Both are coerced to
one *kind* (dateTime, date, decimal, integer, duration, string, iri, boolean) before they
are compared; a value that cannot be coerced is not comparable, which the engine treats as
*unknown* (never as satisfied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from policies.vocab import XSD

DATETIME = "dateTime"
DATE = "date"
DECIMAL = "decimal"
INTEGER = "integer"
DURATION = "duration"
STRING = "string"
IRI = "iri"
BOOLEAN = "boolean"
ANY = "any"

ORDERED_KINDS = frozenset({DATETIME, DATE, DECIMAL, INTEGER, DURATION})

_XSD_KIND = {
    XSD + "dateTime": DATETIME,
    XSD + "dateTimeStamp": DATETIME,
    XSD + "date": DATE,
    XSD + "decimal": DECIMAL,
    XSD + "double": DECIMAL,
    XSD + "float": DECIMAL,
    XSD + "integer": INTEGER,
    XSD + "int": INTEGER,
    XSD + "long": INTEGER,
    XSD + "nonNegativeInteger": INTEGER,
    XSD + "positiveInteger": INTEGER,
    XSD + "duration": DURATION,
    XSD + "dayTimeDuration": DURATION,
    XSD + "yearMonthDuration": DURATION,
    XSD + "string": STRING,
    XSD + "anyURI": IRI,
    XSD + "boolean": BOOLEAN,
}

# Average Gregorian month, so that P1M and P30D can be ordered (documented approximation).
SECONDS_PER_MONTH = 2_629_746
MAX_LITERAL_LENGTH = 4096

_DURATION_RE = re.compile(
    r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


class Iri(str):
    """A string that is an IRI (compared as an identifier, not as text)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Duration:
    """An xsd:duration reduced to seconds (months counted as average months)."""

    seconds: Decimal
    text: str

    def __lt__(self, other: Duration) -> bool:
        return self.seconds < other.seconds

    def __le__(self, other: Duration) -> bool:
        return self.seconds <= other.seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and self.seconds == other.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)

    def as_timedelta(self) -> timedelta:
        return timedelta(seconds=float(self.seconds))


class Incomparable(ValueError):
    """A value could not be coerced to the kind it is compared as."""


def parse_duration(text: str) -> Duration:
    m = _DURATION_RE.match(text.strip()) if len(text) < 64 else None
    if not m or text.strip() in ("P", "-P") or text.strip().endswith("T"):
        raise Incomparable(f"{text!r} is not an xsd:duration")
    sign, years, months, weeks, days, hours, minutes, seconds = m.groups()
    total = Decimal(0)
    total += (int(years or 0) * 12 + int(months or 0)) * SECONDS_PER_MONTH
    total += (int(weeks or 0) * 7 + int(days or 0)) * 86400
    total += int(hours or 0) * 3600 + int(minutes or 0) * 60 + Decimal(seconds or 0)
    return Duration(-total if sign else total, text)


def parse_datetime(text: str) -> datetime:
    s = text.strip()
    if len(s) > 64:
        raise Incomparable("dateTime literal too long")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(s.replace(" ", "T", 1) if "T" not in s else s)
    except ValueError as exc:
        raise Incomparable(f"{text!r} is not an xsd:dateTime") from exc
    if value.tzinfo is None:  # xsd:dateTime without zone: taken as UTC (documented)
        value = value.replace(tzinfo=UTC)
    return value


def parse_date(text: str) -> datetime:
    """An xsd:date as the instant its day starts (UTC), so it orders against dateTimes."""
    s = text.strip()
    try:
        d = date.fromisoformat(s[:10]) if len(s) >= 10 else date.fromisoformat(s)
    except ValueError as exc:
        raise Incomparable(f"{text!r} is not an xsd:date") from exc
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def kind_of_datatype(datatype: str | None) -> str | None:
    return _XSD_KIND.get(datatype or "")


def coerce(raw: Any, kind: str) -> Any:
    """Coerce a JSON value (or an already typed value) to ``kind``.

    Raises:
        Incomparable: the value does not denote a ``kind`` value.
    """
    if isinstance(raw, bool) and kind not in (BOOLEAN, ANY, STRING):
        raise Incomparable(f"boolean {raw} is not a {kind}")
    if isinstance(raw, str) and len(raw) > MAX_LITERAL_LENGTH:
        raise Incomparable("literal too long")
    if kind in (DATETIME, DATE):
        if isinstance(raw, datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        if isinstance(raw, str):
            return parse_datetime(raw) if ("T" in raw or " " in raw.strip()) else parse_date(raw)
        raise Incomparable(f"{raw!r} is not a date or dateTime")
    if kind == DECIMAL:
        if isinstance(raw, Decimal):
            return raw
        if isinstance(raw, int | float | str):
            try:
                value = Decimal(str(raw).strip())
            except InvalidOperation as exc:
                raise Incomparable(f"{raw!r} is not a number") from exc
            if not value.is_finite():
                raise Incomparable(f"{raw!r} is not a finite number")
            return value
        raise Incomparable(f"{raw!r} is not a number")
    if kind == INTEGER:
        if isinstance(raw, int):
            return Decimal(raw)
        value = coerce(raw, DECIMAL)
        if value != value.to_integral_value():
            raise Incomparable(f"{raw!r} is not an integer")
        return value
    if kind == DURATION:
        if isinstance(raw, Duration):
            return raw
        if isinstance(raw, str):
            return parse_duration(raw)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return Duration(Decimal(str(raw)), f"PT{raw}S")
        raise Incomparable(f"{raw!r} is not a duration")
    if kind == BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise Incomparable(f"{raw!r} is not a boolean")
    if kind == IRI:
        if isinstance(raw, str):
            return Iri(raw)
        raise Incomparable(f"{raw!r} is not an IRI")
    if kind == STRING:
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
            return str(raw)
        raise Incomparable(f"{raw!r} is not a string")
    if isinstance(raw, str | int | float | bool | Decimal | datetime | Duration):
        return raw
    raise Incomparable(f"{raw!r} is not a scalar value")


def literal(node: Any) -> tuple[Any, str]:
    """Read one expanded JSON-LD value node into ``(python value, kind)``."""
    if isinstance(node, dict):
        if "@id" in node:
            ident = node["@id"]
            if not isinstance(ident, str):
                raise Incomparable("@id must be a string")
            return Iri(ident), IRI
        if "@value" in node:
            value = node["@value"]
            kind = kind_of_datatype(node.get("@type"))
            if kind is None:
                if isinstance(value, bool):
                    kind = BOOLEAN
                elif isinstance(value, int):
                    kind = INTEGER
                elif isinstance(value, float):
                    kind = DECIMAL
                else:
                    kind = STRING
            if kind == STRING and not isinstance(value, str):
                raise Incomparable(f"{value!r} is not a string")
            if kind in (DATETIME, DATE) and isinstance(value, str):
                return (parse_datetime(value) if kind == DATETIME else parse_date(value)), kind
            return coerce(value, kind), kind
    raise Incomparable(f"unsupported operand value {node!r}")


def display(value: Any) -> Any:
    """JSON-friendly form of a typed value, for explanations."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return (
            int(value) if value == value.to_integral_value() and abs(value) < 10**15 else str(value)
        )
    if isinstance(value, Duration):
        return value.text
    if isinstance(value, list | tuple | frozenset | set):
        items = [display(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
