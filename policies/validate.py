"""Profile validation and lint: what is wrong with a policy, before anyone relies on it."""

from __future__ import annotations

from typing import Any

from policies import catenax
from policies.compile import constraint_problem
from policies.errors import PolicyError
from policies.model import Constraint, Policy, Rule, iter_constraints
from policies.parse import parse_policy
from policies.profiles import get_profile
from policies.values import Incomparable, coerce
from policies.vocab import CN, ODRL, action_ancestors, short


def _as_policy(policy: Any) -> Policy:
    return policy if isinstance(policy, Policy) else parse_policy(policy)


def _where(rule: Rule) -> str:
    return f"{rule.kind} {rule.uid}" if rule.uid else rule.kind


def _general(policy: Policy, profile_name: str) -> list[str]:
    out: list[str] = []
    # ODRL 2.2: an Agreement names its assigner and assignee, an Offer its assigner.
    needs = {"Agreement": ("assigner", "assignee"), "Offer": ("assigner",)}.get(policy.type, ())
    for rule in policy.rules:
        for party in needs:
            if not getattr(rule, party + "s"):
                out.append(f"{_where(rule)}: an {policy.type} names the {party}")

    def check_rule(rule: Rule) -> None:
        where = _where(rule)
        if not rule.actions:
            out.append(f"{where}: has no action")
        for c in iter_constraints(rule.constraints):
            out.extend(_constraint_problems(c, where, profile_name))
        for a in rule.actions:
            for c in iter_constraints(a.refinements):
                out.extend(_constraint_problems(c, where, profile_name))
        for sub in rule.duties + rule.remedies + rule.consequences:
            check_rule(sub)

    for rule in policy.rules:
        check_rule(rule)
    return out


def _constraint_problems(c: Constraint, where: str, profile_name: str) -> list[str]:
    profile = get_profile(profile_name)
    if profile.lookup(c.left) is None and profile.extension_operands:
        if not c.left.startswith(("http://", "https://", "urn:")):
            return [f"{where}: left operand {short(c.left)} is not an absolute IRI"]
        return []
    problem = constraint_problem(c, profile)
    return [f"{where}: {short(c.left)}: {problem}"] if problem else []


def validate_policy(
    policy: Any, profile: str = "odrl", kind: str = "usage", *, classification: str | None = None
) -> list[str]:
    """List every violation of ``policy`` for ``profile`` (empty list = valid).

    Args:
        policy: a parsed policy or a policy document (parse errors are listed too).
        profile: odrl, catenax or cn-auto.
        kind: "access" (catalog) or "usage" (contract) policy.
        classification: for cn-auto, the classification of the assets it will govern.
    """
    if kind not in ("access", "usage"):
        return [f"kind must be 'access' or 'usage', not {kind!r}"]
    try:
        get_profile(profile)
    except ValueError as exc:
        return [str(exc)]
    try:
        parsed = _as_policy(policy)
    except PolicyError as exc:
        return list(exc.reasons)
    out = _general(parsed, profile)
    if profile == "catenax":
        out.extend(catenax.validate(parsed, kind))
    if profile == "cn-auto" and classification == "core":
        for rule in parsed.permissions:
            for a in rule.actions:
                if CN + "federatedCompute" not in action_ancestors(a.iri):
                    out.append(
                        f"permission {rule.uid or ''}: core data may only be used by "
                        f"cn:federatedCompute, not {short(a.iri)}".replace(" :", ":")
                    )
    seen: set[str] = set()
    return [m for m in out if not (m in seen or seen.add(m))]


def _overlap_action(p: Rule, q: Rule, extra: dict[str, str] | None = None) -> str | None:
    for a in p.actions:
        for b in q.actions:
            if b.iri in action_ancestors(a.iri, extra=extra):
                return short(a.iri)
            if a.iri in action_ancestors(b.iri, extra=extra):
                return short(b.iri)
    return None


def _overlap_things(xs: tuple, ys: tuple) -> bool:
    if not xs or not ys:
        return True
    if any(x.collection or x.refinements for x in xs) or any(
        y.collection or y.refinements for y in ys
    ):
        return True
    return bool({x.iri for x in xs} & {y.iri for y in ys})


def _disjoint(a: Constraint, b: Constraint) -> bool:
    """Can no value satisfy both ``a`` and ``b``? Conservative: False when unsure."""
    if a.left != b.left:
        return False
    op_a, op_b = a.operator[len(ODRL) :], b.operator[len(ODRL) :]
    va = {str(v) for v, _ in a.right}
    vb = {str(v) for v, _ in b.right}
    try:
        if op_a in ("eq", "isAnyOf") and op_b in ("eq", "isAnyOf"):
            return not va & vb
        if {op_a, op_b} == {"eq", "isA"}:
            return va == vb  # X itself vs instances of X: a class is not its own instance
        if op_a == "eq" and op_b in ("isNoneOf", "neq"):
            return va <= vb
        if op_b == "eq" and op_a in ("isNoneOf", "neq"):
            return vb <= va
        low_ops, high_ops = {"gt", "gteq"}, {"lt", "lteq"}
        if (
            len(a.right) == 1
            and len(b.right) == 1
            and ((op_a in low_ops and op_b in high_ops) or (op_a in high_ops and op_b in low_ops))
        ):
            low, high = (a, b) if op_a in low_ops else (b, a)
            kind = "dateTime" if low.right[0][1] in ("date", "dateTime") else "decimal"
            lv, hv = coerce(low.right[0][0], kind), coerce(high.right[0][0], kind)
            strict = low.operator.endswith("gt") or high.operator.endswith("lt")
            return lv >= hv if strict else lv > hv
    except (Incomparable, TypeError):
        return False
    return False


def _conflicts(parsed: Policy, included_in: dict[str, str] | None) -> list[dict[str, str]]:
    findings: list[dict[str, str]] = []
    resolved = {
        "perm": "permission wins",
        "prohibit": "prohibition wins",
        "invalid": "the policy is void where they meet",
    }[parsed.conflict]
    # A permission and a prohibition that can both apply; an obligation to do what a
    # prohibition forbids (no conflict strategy resolves that one).
    pairs = [(p, q) for p in parsed.permissions for q in parsed.prohibitions]
    pairs += [(o, q) for o in parsed.obligations for q in parsed.prohibitions]
    for p, q in pairs:
        action = _overlap_action(p, q, included_in)
        if action is None or not _overlap_things(p.targets, q.targets):
            continue
        if not _overlap_things(p.assignees, q.assignees):
            continue
        pc = list(iter_constraints(p.constraints))
        qc = list(iter_constraints(q.constraints))
        if any(_disjoint(x, y) for x in pc for y in qc):
            continue
        obligation = p.kind == "obligation"
        severity = "error" if obligation or parsed.conflict == "invalid" else "warning"
        how = (
            "an unavoidable violation"
            if obligation
            else f"conflict strategy {parsed.conflict}: {resolved}"
        )
        findings.append(
            {
                "severity": severity,
                "rule": f"{p.uid or p.kind} / {q.uid or 'prohibition'}",
                "message": (
                    f"{p.kind} {p.uid or '(no id)'} and prohibition {q.uid or '(no id)'} "
                    f"can both apply to {action} ({how})"
                ),
            }
        )
    return findings


def merge_policies(policies: list[Policy]) -> Policy:
    """One policy holding the rules of several (to lint policies that apply together)."""
    from dataclasses import replace

    first = policies[0]
    return replace(
        first,
        permissions=tuple(r for p in policies for r in p.permissions),
        prohibitions=tuple(r for p in policies for r in p.prohibitions),
        obligations=tuple(r for p in policies for r in p.obligations),
        compiled={},
    )


def lint_policy(
    policy: Any,
    profile: str | None = None,
    kind: str = "usage",
    *,
    included_in: dict[str, str] | None = None,
) -> list[dict[str, str]]:
    """Report contradictions (a permission or obligation and a prohibition that can both
    apply) and, when ``profile`` is given, its violations. Each finding: severity, rule,
    message. ``policy`` may also be a list of policies that apply together; ``included_in``
    adds a profile's own actions to the ODRL action hierarchy."""
    try:
        if isinstance(policy, list) and policy and all(isinstance(p, Policy) for p in policy):
            parsed = merge_policies(policy)
        else:
            parsed = _as_policy(policy)
    except PolicyError as exc:
        return [{"severity": "error", "rule": "", "message": r} for r in exc.reasons]
    findings = _conflicts(parsed, included_in)
    if profile:
        for message in validate_policy(parsed, profile, kind):
            findings.append({"severity": "error", "rule": "", "message": message})
    return findings
