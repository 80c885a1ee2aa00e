"""The evaluation request and the state of the world, read from their JSON formats.

Both formats are documented in ``docs/policies.md``. The request says who wants to do
what with which asset, with context values the requester declares and claims a verifier
has already checked; the state is what the node itself knows (time, memberships, counters,
duty states). Values the requester cannot be trusted with (the time, usage counts) come
only from the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policies.errors import RequestError
from policies.values import Incomparable, parse_datetime
from policies.vocab import CN, CX, ODRL, action_ancestors

_PREFIXES = {"odrl": ODRL, "cx-policy": CX, "cx": CX, "cn": CN}
MAX_CONTEXT_ENTRIES = 256


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def expand_name(name: str, default_ns: str = ODRL) -> str:
    """``read`` -> odrl:read IRI; ``cx-policy:Membership`` -> full IRI; IRIs unchanged."""
    if "://" in name or name.startswith("urn:"):
        return name
    prefix, sep, local = name.partition(":")
    if sep and prefix in _PREFIXES:
        return _PREFIXES[prefix] + local
    if not sep:
        return default_ns + name
    return name


@dataclass(slots=True)
class Request:
    """Who asks to perform which action on which target, in which context."""

    assignee: str | None
    action: str
    actions: tuple[str, ...]  # the action and every action it is included in
    target: str | None
    context: dict[str, Any]
    claims: dict[str, Any]
    agreement: dict[str, Any]
    asset: dict[str, Any]


@dataclass(slots=True)
class State:
    """What the node knows: time, memberships, types, counters, duty states."""

    now: datetime
    memberships: dict[str, frozenset[str]] = field(default_factory=dict)
    types: dict[str, frozenset[str]] = field(default_factory=dict)
    count: int | None = None
    duties: dict[str, str] = field(default_factory=dict)
    agreement_start: datetime | None = None
    references: dict[str, Any] = field(default_factory=dict)
    recorded: dict[str, Any] = field(default_factory=dict)  # facts the node measured


def _str_or_none(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise RequestError(f"{what} must be a non-empty string")
    return value


def parse_request(doc: Any) -> Request:
    """Read a request document (see docs/policies.md).

    Raises:
        RequestError: the document is not a request.
    """
    if isinstance(doc, Request):
        return doc
    if not isinstance(doc, Mapping):
        raise RequestError("request must be a JSON object")
    action_name = doc.get("action")
    if not isinstance(action_name, str) or not action_name:
        raise RequestError("request.action must be a non-empty string")
    action = expand_name(action_name)
    context_raw = doc.get("context") or {}
    if not isinstance(context_raw, Mapping) or len(context_raw) > MAX_CONTEXT_ENTRIES:
        raise RequestError("request.context must be an object of at most 256 entries")
    context: dict[str, Any] = {}
    for key, value in context_raw.items():
        if not isinstance(key, str):
            raise RequestError("request.context keys must be strings")
        if ":" in key:
            context[expand_name(key)] = value
        else:  # a bare name may be an ODRL, Catena-X or cn-auto operand
            for ns in (ODRL, CX, CN):
                context.setdefault(ns + key, value)
        context.setdefault(key, value)
    parts = {}
    for name in ("claims", "agreement", "asset"):
        value = doc.get(name) or {}
        if not isinstance(value, Mapping):
            raise RequestError(f"request.{name} must be an object")
        parts[name] = dict(value)
    return Request(
        assignee=_str_or_none(doc.get("assignee"), "request.assignee"),
        action=action,
        actions=action_ancestors(action),
        target=_str_or_none(doc.get("target"), "request.target"),
        context=context,
        claims=parts["claims"],
        agreement=parts["agreement"],
        asset=parts["asset"],
    )


def _set_map(raw: Any, what: str) -> dict[str, frozenset[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise RequestError(f"state.{what} must be an object of lists")
    out = {}
    for key, value in raw.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(key, str) or not isinstance(items, list | tuple):
            raise RequestError(f"state.{what} must map strings to lists of strings")
        if not all(isinstance(v, str) for v in items):
            raise RequestError(f"state.{what}[{key!r}] must hold strings")
        out[key] = frozenset(items)
    return out


def _time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise RequestError(f"{what} must be an xsd:dateTime string")
    try:
        return parse_datetime(value)
    except Incomparable as exc:
        raise RequestError(f"{what}: {exc}") from exc


def parse_state(doc: Any, clock: Callable[[], datetime] | None = None) -> State:
    """Read a state document; the time defaults to ``clock()`` (injected) or now (UTC).

    Raises:
        RequestError: the document is not a state.
    """
    if isinstance(doc, State):
        return doc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise RequestError("state must be a JSON object")
    now = _time(doc.get("now"), "state.now")
    if now is None:
        now = clock() if clock else datetime.now(UTC)
    count = doc.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise RequestError("state.count must be a non-negative integer")
    duties = doc.get("duties") or {}
    if not isinstance(duties, Mapping) or not all(
        isinstance(k, str) and v in ("fulfilled", "violated", "pending") for k, v in duties.items()
    ):
        raise RequestError("state.duties must map duty ids to fulfilled / violated / pending")
    refs = doc.get("references") or {}
    if not isinstance(refs, Mapping):
        raise RequestError("state.references must be an object")
    recorded_raw = doc.get("recorded") or {}
    if not isinstance(recorded_raw, Mapping) or not all(isinstance(k, str) for k in recorded_raw):
        raise RequestError("state.recorded must be an object keyed by left operand")
    recorded = {expand_name(k): v for k, v in recorded_raw.items()}
    return State(
        now=now,
        memberships=_set_map(doc.get("memberships"), "memberships"),
        types=_set_map(doc.get("types"), "types"),
        count=count,
        duties=dict(duties),
        agreement_start=_time(doc.get("agreementStart"), "state.agreementStart"),
        references=dict(refs),
        recorded=recorded,
    )
