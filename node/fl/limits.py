"""From a contract agreement's ODRL policy to the limits a federated round must respect.

A data owner offers training data under a policy whose permission allows
``cn:federatedCompute`` (computation that runs where the data is; ``odrl:use`` covers it in
the ODRL action hierarchy). Constraints of that permission limit the rounds::

    {"action": "cn:federatedCompute", "constraint": [
        {"leftOperand": "cn:cohortSize",         "operator": "gteq", "rightOperand": 3},
        {"leftOperand": "cn:secureAggregation",  "operator": "eq",   "rightOperand": true},
        {"leftOperand": "cn:epsilon",            "operator": "lteq", "rightOperand": 8.0},
        {"leftOperand": "purpose",               "operator": "isAnyOf",
         "rightOperand": ["predictive-quality"]},
        {"leftOperand": "dateTime",              "operator": "lt",
         "rightOperand": "2099-01-01T00:00:00Z"}]}

:func:`limits_from_policy` turns that into :class:`federated.guard.AgreementLimits`. It fails
closed: a policy with no permission covering federated computation, a prohibition of it, a
constraint it does not understand, or an ``or``/``xone`` composite raises
:class:`PolicyLimitError` naming what it found, and the round is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from federated.guard import AgreementLimits
from policies.vocab import CN, ODRL

#: Our left operands for federated rounds (cn-auto namespace).
COHORT_SIZE = CN + "cohortSize"
SECURE_AGGREGATION = CN + "secureAggregation"
EPSILON = CN + "epsilon"
FEDERATED_COMPUTE = CN + "federatedCompute"
PURPOSE = ODRL + "purpose"
DATE_TIME = ODRL + "dateTime"

#: Actions whose permission covers a federated round (ODRL: use includes federatedCompute).
COVERING_ACTIONS = frozenset({FEDERATED_COMPUTE, ODRL + "use"})
_PREFIXES = {"cn:": CN, "odrl:": ODRL}


class PolicyLimitError(Exception):
    """The agreement's policy does not (clearly) permit federated rounds."""


def expand(term: Any, default: str = ODRL) -> str:
    """``"cn:epsilon"`` / ``"purpose"`` / an IRI / ``{"@id": ...}`` -> full IRI."""
    if isinstance(term, Mapping):
        term = term.get("@id", term.get("@value"))
    if not isinstance(term, str):
        return ""
    if term.startswith(("http://", "https://")):
        return term
    for prefix, base in _PREFIXES.items():
        if term.startswith(prefix):
            return base + term[len(prefix):]
    return (CN if term in {"federatedCompute", "cohortSize", "secureAggregation", "epsilon"}
            else default) + term


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _value(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return raw.get("@value", raw.get("@id"))
    return raw


def _action_of(rule: Mapping[str, Any]) -> set[str]:
    actions = set()
    for a in _as_list(rule.get("action")):
        if isinstance(a, Mapping) and "rdf:value" in a:
            a = a["rdf:value"]
        actions.add(expand(a))
    return actions


def _constraints(items: list[Any]) -> Iterator[Mapping[str, Any]]:
    """Atomic constraints of a list, flattening ``and`` composites; others fail closed."""
    for c in items:
        if not isinstance(c, Mapping):
            raise PolicyLimitError(f"malformed constraint {c!r}")
        if "and" in c or "odrl:and" in c:
            yield from _constraints(_as_list(c.get("and", c.get("odrl:and"))))
            continue
        for composite in ("or", "xone", "andSequence", "odrl:or", "odrl:xone"):
            if composite in c:
                raise PolicyLimitError(f"a {composite!r} constraint cannot be checked per round")
        yield c


def _number(c: Mapping[str, Any], what: str) -> float:
    raw = _value(c.get("rightOperand"))
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise PolicyLimitError(f"{what} needs a number, found {raw!r}") from None


def _moment(c: Mapping[str, Any]) -> datetime:
    raw = _value(c.get("rightOperand"))
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise PolicyLimitError(f"dateTime needs an RFC 3339 time, found {raw!r}") from None
    if moment.tzinfo is None:
        raise PolicyLimitError(f"dateTime {raw!r} has no time zone")
    return moment


def limits_from_policy(policy: Mapping[str, Any], agreement_id: str) -> AgreementLimits:
    """The limits of the permission covering ``cn:federatedCompute`` in ``policy``.

    Args:
        policy: the ODRL agreement as stored (compact JSON-LD terms).
        agreement_id: the agreement the round must cite.

    Raises:
        PolicyLimitError: no covering permission, a prohibition of federated computation, or
            a constraint this node cannot enforce per round.
    """
    for rule in _as_list(policy.get("prohibition")):
        if isinstance(rule, Mapping) and _action_of(rule) & COVERING_ACTIONS:
            raise PolicyLimitError("the agreement prohibits federated computation")
    permissions = [r for r in _as_list(policy.get("permission"))
                   if isinstance(r, Mapping) and _action_of(r) & COVERING_ACTIONS]
    if not permissions:
        raise PolicyLimitError("the agreement has no permission for cn:federatedCompute")
    # Several covering permissions: use the first one whose constraints we can read.
    problems: list[str] = []
    for rule in permissions:
        try:
            return _limits(rule, agreement_id)
        except PolicyLimitError as exc:
            problems.append(str(exc))
    raise PolicyLimitError("; ".join(problems))


def _limits(rule: Mapping[str, Any], agreement_id: str) -> AgreementLimits:
    if rule.get("duty") or rule.get("odrl:duty"):
        raise PolicyLimitError("duties on federated computation are not supported")
    min_cohort = 2
    secure = True
    max_eps: float | None = None
    purposes: set[str] = set()
    not_before = not_after = None
    for c in _constraints(_as_list(rule.get("constraint"))):
        left = expand(c.get("leftOperand"))
        op = expand(c.get("operator"))[len(ODRL):] if expand(c.get("operator")).startswith(
            ODRL) else str(c.get("operator"))
        if left == COHORT_SIZE and op in ("gteq", "gt"):
            n = _number(c, "cohortSize")
            min_cohort = max(min_cohort, int(n) + (1 if op == "gt" else 0))
        elif left == SECURE_AGGREGATION and op == "eq":
            secure = str(_value(c.get("rightOperand"))).lower() == "true"
        elif left == EPSILON and op in ("lteq", "lt"):
            max_eps = _number(c, "epsilon")
        elif left == PURPOSE and op in ("eq", "isAnyOf", "isPartOf"):
            purposes.update(str(_value(v)) for v in _as_list(c.get("rightOperand")))
        elif left == DATE_TIME and op in ("gteq", "gt"):
            not_before = _moment(c)
        elif left == DATE_TIME and op in ("lteq", "lt"):
            not_after = _moment(c)
        else:
            raise PolicyLimitError(f"constraint {c.get('leftOperand')!r} {c.get('operator')!r} "
                                   "cannot be enforced on a federated round")
    if not purposes:
        raise PolicyLimitError("the agreement names no purpose for federated computation")
    return AgreementLimits(min_cohort=min_cohort, require_secure_aggregation=secure,
                           max_epsilon=max_eps, purposes=frozenset(purposes),
                           not_before=not_before, not_after=not_after, agreement=agreement_id)
