"""A canonical form of a policy, so that two policies can be compared by meaning.

The connector compares the offer a consumer accepted with the agreement the provider
sends: the JSON differs (contexts, compact or expanded, ordering, blank-node ids, the
Offer/Agreement type, parties added by the agreement) while the rules are the same.
``normalize`` keeps what decides (actions, targets, parties of rules, constraints with
typed values) and drops what does not; conjunctions are flattened and sets sorted.
"""

from __future__ import annotations

import json
from typing import Any

from policies.model import Constraint, ConstraintNode, LogicalConstraint, Party, Policy, Rule
from policies.profiles import PROFILES
from policies.values import ORDERED_KINDS, Incomparable, coerce, display

_SET_OPERATORS = ("isAnyOf", "isAllOf", "isNoneOf")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _operand_kind(iri: str) -> str | None:
    for profile in PROFILES.values():
        operand = profile.lookup(iri)
        if operand is not None and operand.kind in ORDERED_KINDS:
            return operand.kind
    return None


def _typed(value: Any, kind: str | None) -> Any:
    """Read a value as its operand's type (an untyped "2030-01-01T00:00:00Z" is a dateTime)."""
    if kind is None:
        return value
    try:
        return coerce(value, kind)
    except Incomparable:
        return value


def _constraint(node: ConstraintNode) -> Any:
    if isinstance(node, LogicalConstraint):
        members = [_constraint(m) for m in node.members]
        if node.op == "and":  # nested conjunctions are one conjunction
            flat: list = []
            for m in members:
                flat.extend(m["and"] if isinstance(m, dict) and "and" in m else [m])
            members = flat
        if node.op != "andSequence":
            members = sorted(members, key=_key)
        return {node.op: members}
    assert isinstance(node, Constraint)
    kind = _operand_kind(node.left)
    values = [display(_typed(v, kind)) for v, _ in node.right]
    if node.operator.rsplit("/", 1)[-1] in _SET_OPERATORS:
        values = sorted(values, key=_key)
    out: dict[str, Any] = {
        "leftOperand": node.left,
        "operator": node.operator,
        "rightOperand": values if node.is_list or len(values) != 1 else values[0],
    }
    if node.right_refs:
        out["rightOperandReference"] = sorted(node.right_refs)
    if node.unit:
        out["unit"] = node.unit
    if node.datatype:
        out["dataType"] = node.datatype
    return out


def _constraints(nodes: tuple[ConstraintNode, ...]) -> list:
    flat: list = []
    for n in nodes:
        c = _constraint(n)
        flat.extend(c["and"] if isinstance(c, dict) and "and" in c else [c])
    return sorted(flat, key=_key)


def _parties(parties: tuple[Party, ...]) -> list:
    return sorted(
        (
            {"id": p.iri, **({"refinement": _constraints(p.refinements)} if p.refinements else {})}
            for p in parties
        ),
        key=_key,
    )


def _rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "action": sorted(
            (
                {
                    "id": a.iri,
                    **({"refinement": _constraints(a.refinements)} if a.refinements else {}),
                }
                for a in rule.actions
            ),
            key=_key,
        ),
        "constraint": _constraints(rule.constraints),
    }
    if rule.targets:
        out["target"] = sorted(t.iri for t in rule.targets)
    if rule.assignees:
        out["assignee"] = _parties(rule.assignees)
    if rule.assigners:
        out["assigner"] = _parties(rule.assigners)
    for name, subs in (
        ("duty", rule.duties),
        ("remedy", rule.remedies),
        ("consequence", rule.consequences),
    ):
        if subs:
            out[name] = sorted((_rule(s) for s in subs), key=_key)
    return out


def normalize(
    policy: Policy | dict, *, parties: bool = False, targets: bool = True
) -> dict[str, Any]:
    """The canonical form of ``policy`` (a JSON object; equal forms mean equal rules).

    Args:
        policy: a parsed policy, or a policy document (parsed here; PolicyError if invalid).
        parties: keep assigner/assignee of rules (an agreement adds them; offers may not).
        targets: keep rule targets (an offer in a catalog states them on the dataset).
    """

    if not isinstance(policy, Policy):
        from policies.parse import parse_policy

        policy = parse_policy(policy)

    def rule(r: Rule) -> dict[str, Any]:
        out = _rule(r)
        if not parties:
            out.pop("assignee", None)
            out.pop("assigner", None)
        if not targets:
            out.pop("target", None)
        return out

    return {
        "permission": sorted((rule(r) for r in policy.permissions), key=_key),
        "prohibition": sorted((rule(r) for r in policy.prohibitions), key=_key),
        "obligation": sorted((rule(r) for r in policy.obligations), key=_key),
        "conflict": policy.conflict,
    }
