"""Runtime validation of incoming DSP documents (compact JSON-LD, DSP context).

Written from the DSP 2025-1 schemas but without loading them: every check says which
field of which message is wrong so the peer's operator can act on the error body.
All functions raise :class:`~connectors.dsp.errors.InvalidMessageError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.dsp.errors import InvalidMessageError
from connectors.dsp.vocabulary import DCAT_NS, DSP_CONTEXT_URL, DSPACE_NS, ODRL_NS, ErrorCode

# ODRL operators the DSP 2025-1 contract schema admits.
OPERATORS = frozenset(
    {
        "eq",
        "gt",
        "gteq",
        "lt",
        "lteq",
        "neq",
        "hasPart",
        "isA",
        "isAllOf",
        "isAnyOf",
        "isNoneOf",
        "isPartOf",
        "term-lteq",
    }
)
LOGICAL_OPERATORS = ("and", "andSequence", "or", "xone")
RULE_KINDS = ("permission", "prohibition", "obligation")
# How deep logical constraints may nest before we refuse (guards recursion on hostile input).
MAX_CONSTRAINT_DEPTH = 16

_PREFIXES = {"dspace:": DSPACE_NS, "dcat:": DCAT_NS, "odrl:": ODRL_NS}


def compact_type(value: Any) -> str | None:
    """Reduce ``dspace:X`` or a full DSP/DCAT/ODRL IRI to the compact term ``X``."""
    if not isinstance(value, str):
        return None
    for prefix, ns in _PREFIXES.items():
        if value.startswith(prefix):
            return value[len(prefix) :]
        if value.startswith(ns):
            return value[len(ns) :]
    return value


def where(msg_type: str, key: str) -> str:
    return f"{msg_type}.{key}"


def require_object(doc: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise InvalidMessageError(f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def check_context(doc: Mapping[str, Any], msg_type: str) -> None:
    """The document must name the DSP 2025-1 context (as a string or in a list)."""
    ctx = doc.get("@context")
    if ctx is None:
        raise InvalidMessageError(f"{msg_type} has no @context; expected {DSP_CONTEXT_URL}")
    entries = ctx if isinstance(ctx, list) else [ctx]
    if DSP_CONTEXT_URL not in entries:
        raise InvalidMessageError(f"{msg_type}.@context must include {DSP_CONTEXT_URL}")


def extra_contexts(doc: Mapping[str, Any]) -> list[Any]:
    """The @context entries besides the DSP one (e.g. a Catena-X policy context)."""
    ctx = doc.get("@context")
    entries = ctx if isinstance(ctx, list) else [] if ctx is None else [ctx]
    return [c for c in entries if c != DSP_CONTEXT_URL]


def with_context(policy: Mapping[str, Any], extras: list[Any]) -> dict[str, Any]:
    """A policy that carries the contexts its terms need once taken out of its message.

    Extra contexts of a message (Catena-X puts its policy context there) travel with the
    policy as an embedded @context, so the policy engine can still read its terms.
    """
    out = dict(policy)
    if extras and "@context" not in out:
        out["@context"] = extras if len(extras) > 1 else extras[0]
    return out


def check_callback_address(url: str, *, consumer_pid: str | None = None) -> str:
    """A callbackAddress we can POST to: an absolute http(s) URL (DSP: an address the
    provider does not understand is an unrecoverable error, so refuse it up front)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidMessageError(
            f"callbackAddress {url!r} is not an absolute http(s) URL without query or fragment",
            code=ErrorCode.UNSUPPORTED_CALLBACK,
            consumer_pid=consumer_pid,
        )
    return url


def check_type(doc: Mapping[str, Any], expected: str) -> None:
    found = compact_type(doc.get("@type"))
    if found != expected:
        raise InvalidMessageError(f"expected @type {expected}, found {doc.get('@type')!r}")


def require_str(doc: Mapping[str, Any], key: str, msg_type: str) -> str:
    value = doc.get(key)
    if value is None:
        raise InvalidMessageError(f"{where(msg_type, key)} is required")
    if not isinstance(value, str) or not value:
        raise InvalidMessageError(f"{where(msg_type, key)} must be a non-empty string")
    return value


def optional_str(doc: Mapping[str, Any], key: str, msg_type: str) -> str | None:
    if doc.get(key) is None:
        return None
    return require_str(doc, key, msg_type)


def optional_list(doc: Mapping[str, Any], key: str, msg_type: str) -> list[Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidMessageError(f"{where(msg_type, key)} must be an array")
    return value


def reason_list(
    doc: Mapping[str, Any], msg_type: str, *, non_empty: bool = True
) -> tuple[Any, ...]:
    """``reason``: absent, or an array (non-empty where the schema says minItems 1)."""
    value = optional_list(doc, "reason", msg_type)
    if value is not None and not value and non_empty:
        raise InvalidMessageError(f"{where(msg_type, 'reason')} must not be an empty array")
    return tuple(value or ())


def non_empty_list(doc: Mapping[str, Any], key: str, msg_type: str) -> list[Any]:
    """An optional array that, when present, has at least one item (DCAT minItems 1)."""
    value = optional_list(doc, key, msg_type)
    if value is not None and not value:
        raise InvalidMessageError(f"{where(msg_type, key)} must not be an empty array")
    return value or []


def check_constraint(c: Any, what: str, depth: int = 0) -> None:
    """An atomic (leftOperand, operator, rightOperand) or logical (and/or/xone/andSequence) one."""
    if depth > MAX_CONSTRAINT_DEPTH:
        raise InvalidMessageError(f"{what} nests deeper than {MAX_CONSTRAINT_DEPTH} levels")
    c = require_object(c, what)
    logical = [k for k in LOGICAL_OPERATORS if k in c]
    if logical:
        if len(logical) > 1:
            raise InvalidMessageError(f"{what} has several logical operators {logical}")
        parts = c[logical[0]]
        if not isinstance(parts, list) or not parts:
            raise InvalidMessageError(f"{what}.{logical[0]} must be a non-empty array")
        for i, sub in enumerate(parts):
            check_constraint(sub, f"{what}.{logical[0]}[{i}]", depth + 1)
        return
    for key in ("leftOperand", "operator", "rightOperand"):
        if key not in c:
            raise InvalidMessageError(f"{what}.{key} is required")
    if not isinstance(c["leftOperand"], str):
        raise InvalidMessageError(f"{what}.leftOperand must be a string")
    if compact_type(c["operator"]) not in OPERATORS:
        raise InvalidMessageError(f"{what}.operator {c['operator']!r} is not an ODRL operator")
    if not isinstance(c["rightOperand"], str | dict | list | int | float | bool):
        raise InvalidMessageError(f"{what}.rightOperand must be a value")


def check_rule(rule: Any, what: str) -> None:
    rule = require_object(rule, what)
    action = rule.get("action")
    if isinstance(action, Mapping):  # {"@id": "use"} or refined actions
        action = action.get("@id") or action.get("rdf:value")
    if not isinstance(action, str) or not action:
        raise InvalidMessageError(f"{what}.action is required and must be a string")
    if "target" in rule:
        raise InvalidMessageError(f"{what} must not carry a target (DSP compact policy rule)")
    constraints = rule.get("constraint")
    if constraints is not None:
        if not isinstance(constraints, list):
            raise InvalidMessageError(f"{what}.constraint must be an array")
        for i, c in enumerate(constraints):
            check_constraint(c, f"{what}.constraint[{i}]")
    duties = rule.get("duty")
    if duties is not None:
        if not isinstance(duties, list):
            raise InvalidMessageError(f"{what}.duty must be an array")
        for i, d in enumerate(duties):
            check_rule(d, f"{what}.duty[{i}]")


def check_policy(
    policy: Any,
    what: str,
    *,
    odrl_type: str,
    require_target: bool,
    forbid_target: bool = False,
) -> Mapping[str, Any]:
    """Check an ODRL Offer/Agreement as the DSP contract schema describes it."""
    policy = require_object(policy, what)
    if compact_type(policy.get("@type")) != odrl_type:
        raise InvalidMessageError(
            f"{what}.@type must be {odrl_type}, found {policy.get('@type')!r}"
        )
    require_str(policy, "@id", what)
    if require_target:
        require_str(policy, "target", what)
    if forbid_target and "target" in policy:
        raise InvalidMessageError(f"{what} in a catalog must not carry a target")
    if not any(k in policy for k in ("permission", "prohibition")):
        raise InvalidMessageError(f"{what} needs a permission or a prohibition")
    for kind in RULE_KINDS:
        rules = policy.get(kind)
        if rules is None:
            continue
        if not isinstance(rules, list) or not rules:
            raise InvalidMessageError(f"{what}.{kind} must be a non-empty array")
        for i, rule in enumerate(rules):
            check_rule(rule, f"{what}.{kind}[{i}]")
    profile = policy.get("profile")
    if profile is not None and not (
        isinstance(profile, str)
        or (isinstance(profile, list) and all(isinstance(p, str) for p in profile))
    ):
        raise InvalidMessageError(f"{what}.profile must be a string or an array of strings")
    return policy
