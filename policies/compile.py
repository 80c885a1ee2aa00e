"""Compiling a parsed policy into closures for one (profile, scope, options).

Everything that does not depend on the request is done here once: operand lookup, scope
binding, coercion of right operands, operator selection. What is left for evaluation is
a few function calls per constraint. A constraint that cannot be evaluated (unknown
operand, wrong right-operand type, operand not bound in the scope) compiles to a function
that always answers *unknown* and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policies.model import (
    Asset,
    Constraint,
    ConstraintNode,
    LogicalConstraint,
    Party,
    Policy,
    Rule,
)
from policies.operators import NEGATIVE, OPERATOR_FUNCTIONS, ORDERING, reachable
from policies.profiles import Operand, Profile, context_source
from policies.request import MISSING, Request, State
from policies.values import (
    ANY,
    DATE,
    DATETIME,
    IRI,
    ORDERED_KINDS,
    STRING,
    Incomparable,
    coerce,
    display,
)
from policies.vocab import ODRL, short

# Report tuples (turned into JSON by Decision): kept as tuples so evaluation stays cheap.
#   atomic : ("constraint", uid, left, operator, right, left_value, result, note)
#   logical: ("logical", uid, op, result, (member reports...))
Report = tuple
Ev = Callable[[Request, State], tuple[bool | None, Report]]


@dataclass(frozen=True, slots=True)
class Flags:
    """Options that change semantics (part of the compile cache key)."""

    missing_satisfies_negative: bool = False
    unset_duty: str = "condition"  # or "obligation"
    actionless_rule_matches: bool = False


def _fixed(result: bool | None, report: Report) -> Ev:
    def ev(req: Request, state: State) -> tuple[bool | None, Report]:
        return result, report

    return ev


def _comparison_kind(operand: Operand | None, c: Constraint) -> str:
    if operand is not None and operand.kind != ANY:
        return operand.kind
    kinds = {k for _, k in c.right}
    if len(kinds) == 1:
        kind = kinds.pop()
        return DATETIME if kind == DATE else kind
    return ANY


def _coerce_left(raw: Any, kind: str, unit: str | None) -> list:
    values = raw if isinstance(raw, list | tuple | set | frozenset) else [raw]
    out = []
    for v in values:
        if isinstance(v, dict):  # {"value": ..., "unit": ...} from the request
            if unit is not None and v.get("unit") not in (None, unit):
                raise Incomparable(f"unit {v.get('unit')} is not {unit}")
            v = v.get("value", v.get("@value", v.get("@id")))
        if kind in ORDERED_KINDS or kind == "boolean":
            out.append(coerce(v, kind))
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(str(v))
        else:
            raise Incomparable(f"{v!r} is not an identifier or text")
    return out


def _static_check(
    c: Constraint, profile: Profile, scope: str
) -> tuple[str | None, Operand | None, list, str]:
    """What can be known about a constraint without a request: its operand, the typed right
    values and comparison kind, or why it can never be evaluated (the problem)."""
    operand = profile.lookup(c.left)
    if operand is None:
        if not profile.extension_operands:
            return (
                f"left operand {short(c.left)} is not part of the {profile.name} profile",
                None,
                [],
                ANY,
            )
        operand = Operand(c.left, ANY, context_source(c.left))
    if scope not in operand.scopes:
        return f"{short(c.left)} cannot be evaluated in scope {scope}", operand, [], ANY
    if operand.special is not None:
        return None, operand, [], ANY
    kind = _comparison_kind(operand, c)
    if c.operator in ORDERING and kind not in ORDERED_KINDS:
        return (
            f"operator {short(c.operator)} needs a number, date, dateTime or duration "
            "right operand",
            operand,
            [],
            kind,
        )
    try:
        rights = [
            coerce(v, kind) if kind in ORDERED_KINDS or kind == "boolean" else v for v, _ in c.right
        ]
    except Incomparable as exc:
        return f"right operand: {exc}", operand, [], kind
    if kind in (IRI, STRING, ANY):
        rights = [str(v) if isinstance(v, str) else v for v in rights]
    return None, operand, rights, kind


def constraint_problem(c: Constraint, profile: Profile, scope: str | None = None) -> str | None:
    """Why ``c`` can never be evaluated under ``profile`` (in ``scope``, or in any scope of
    its operand), or None. Used to reject policies before anyone relies on them."""
    operand = profile.lookup(c.left)
    if scope is None:
        scope = next(iter(sorted(operand.scopes))) if operand is not None else "usage"
    return _static_check(c, profile, scope)[0]


def compile_constraint(c: ConstraintNode, profile: Profile, scope: str, flags: Flags) -> Ev:
    """Compile one (logical or atomic) constraint for ``profile`` in ``scope``."""
    if isinstance(c, LogicalConstraint):
        return _compile_logical(c, profile, scope, flags)
    left_name, op_name = short(c.left), short(c.operator)
    right_shown = (
        display([v for v, _ in c.right])
        if c.is_list
        else (display(c.right[0][0]) if c.right else [short(r) for r in c.right_refs])
    )

    def report(left: Any, result: bool | None, note: str | None = None) -> Report:
        return ("constraint", c.uid, left_name, op_name, right_shown, left, result, note)

    problem, operand, rights, kind = _static_check(c, profile, scope)
    if problem is not None:
        return _fixed(None, report(None, None, problem))
    assert operand is not None
    if operand.special is not None:
        special = operand.special

        def ev_special(req: Request, state: State) -> tuple[bool | None, Report]:
            result, left = special(c, req, state)
            shown = None if left is MISSING else left  # rendered lazily (Decision.to_json)
            note = "left operand value unknown" if result is None else None
            return result, report(shown, result, note)

        return ev_special

    refs = c.right_refs
    fn = OPERATOR_FUNCTIONS[c.operator]
    source = operand.source
    assert source is not None
    negative_default = flags.missing_satisfies_negative and c.operator in NEGATIVE
    unit = c.unit

    def ev(req: Request, state: State) -> tuple[bool | None, Report]:
        raw = source(req, state)
        if raw is MISSING or raw is None:
            if negative_default:
                return True, report(
                    None, True, "left operand absent; counted as satisfied (option)"
                )
            return None, report(None, None, "left operand value unknown")
        right = rights
        if refs:
            got = [state.references.get(r, MISSING) for r in refs]
            if any(g is MISSING for g in got):
                return None, report(display(raw), None, "rightOperandReference not resolved")
            try:
                right = rights + [coerce(g, kind) if kind in ORDERED_KINDS else g for g in got]
            except Incomparable as exc:
                return None, report(display(raw), None, f"rightOperandReference: {exc}")
        try:
            left = _coerce_left(raw, kind, unit)
        except Incomparable as exc:
            return None, report(display(raw) if not isinstance(raw, dict) else None, None, str(exc))
        result = fn(left, right, state)
        # keep the typed value; it is rendered only if someone reads the explanation
        shown = left[0] if len(left) == 1 and not isinstance(raw, list | tuple) else left
        return result, report(shown, result)

    return ev


def _compile_logical(c: LogicalConstraint, profile: Profile, scope: str, flags: Flags) -> Ev:
    members = [compile_constraint(m, profile, scope, flags) for m in c.members]
    op, uid = c.op, c.uid

    def ev(req: Request, state: State) -> tuple[bool | None, Report]:
        results = []
        reports = []
        if op == "andSequence":  # order matters: stop at the first constraint not satisfied
            result: bool | None = True
            for m in members:
                r, rep = m(req, state)
                reports.append(rep)
                if r is not True:
                    result = r
                    break
            return result, ("logical", uid, op, result, tuple(reports))
        for m in members:
            r, rep = m(req, state)
            results.append(r)
            reports.append(rep)
        if op == "and":
            result = False if False in results else (None if None in results else True)
        elif op == "or":
            result = True if True in results else (None if None in results else False)
        else:  # xone: exactly one satisfied
            trues = results.count(True)
            if trues > 1:
                result = False
            elif None in results:
                result = None
            else:
                result = trues == 1
        return result, ("logical", uid, op, result, tuple(reports))

    return ev


def combine_and(evs: list[Ev]) -> Callable[[Request, State], tuple[bool | None, tuple]]:
    """All constraints of a rule must hold (ODRL: a rule's constraints are conjunctive)."""
    if not evs:
        return lambda req, state: (True, ())
    if len(evs) == 1:
        only = evs[0]

        def one(req: Request, state: State) -> tuple[bool | None, tuple]:
            r, rep = only(req, state)
            return r, (rep,)

        return one

    def ev(req: Request, state: State) -> tuple[bool | None, tuple]:
        result: bool | None = True
        reports = []
        for e in evs:
            r, rep = e(req, state)
            reports.append(rep)
            if r is False:
                result = False
            elif r is None and result is True:
                result = None
        return result, tuple(reports)

    return ev


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate; ``source`` is the parsed rule it came from."""

    source: Rule
    actions: tuple[tuple[str, Callable[[Request, State], tuple[bool | None, tuple]]], ...]
    constraints: Callable[[Request, State], tuple[bool | None, tuple]]
    targets: tuple[tuple[Asset, Callable[[Request, State], tuple[bool | None, tuple]]], ...]
    assignees: tuple[tuple[Party, Callable[[Request, State], tuple[bool | None, tuple]]], ...]
    duties: tuple[CompiledRule, ...]
    deadline: Callable[[Request, State], datetime | None]


def _deadline(rule: Rule) -> Callable[[Request, State], datetime | None]:
    """When a duty falls due: a dateTime lt/lteq/eq bound, or elapsedTime after the agreement."""
    from policies.model import iter_constraints
    from policies.profiles import agreement_start
    from policies.values import Duration

    fixed: datetime | None = None
    after: Duration | None = None
    for c in iter_constraints(rule.constraints):
        if c.operator not in (ODRL + "lt", ODRL + "lteq", ODRL + "eq") or len(c.right) != 1:
            continue
        value = c.right[0][0]
        try:
            if c.left == ODRL + "dateTime":
                fixed = coerce(value, DATETIME)
            elif c.left == ODRL + "elapsedTime":
                after = coerce(value, "duration")
        except Incomparable:
            continue

    def deadline(req: Request, state: State) -> datetime | None:
        if fixed is not None:
            return fixed
        if after is not None:
            start = agreement_start(req, state)
            if start is not MISSING:
                return start + after.as_timedelta()
        return None

    return deadline


def _is_deadline(c: ConstraintNode) -> bool:
    return (
        isinstance(c, Constraint)
        and c.left in (ODRL + "dateTime", ODRL + "elapsedTime")
        and c.operator in (ODRL + "lt", ODRL + "lteq")
    )


def compile_rule(rule: Rule, profile: Profile, scope: str, flags: Flags) -> CompiledRule:
    """Compile a rule with its refinements, constraints and duties."""
    actions = tuple(
        (a.iri, combine_and([compile_constraint(r, profile, scope, flags) for r in a.refinements]))
        for a in rule.actions
    )
    targets = tuple(
        (t, combine_and([compile_constraint(r, profile, scope, flags) for r in t.refinements]))
        for t in rule.targets
    )
    assignees = tuple(
        (p, combine_and([compile_constraint(r, profile, scope, flags) for r in p.refinements]))
        for p in rule.assignees
    )
    own = rule.constraints
    if rule.kind in ("duty", "consequence"):
        # A time bound on a duty is its deadline, not a condition for the duty to apply.
        own = tuple(c for c in own if not _is_deadline(c))
    constraints = combine_and([compile_constraint(c, profile, scope, flags) for c in own])
    duties = tuple(compile_rule(d, profile, scope, flags) for d in rule.duties + rule.consequences)
    return CompiledRule(rule, actions, constraints, targets, assignees, duties, _deadline(rule))


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy compiled for one profile, scope and set of semantic options."""

    policy: Policy
    profile: Profile
    scope: str
    flags: Flags
    permissions: tuple[CompiledRule, ...]
    prohibitions: tuple[CompiledRule, ...]
    obligations: tuple[CompiledRule, ...]


def compile_policy(
    policy: Policy, profile: Profile, scope: str, flags: Flags | None = None
) -> CompiledPolicy:
    """Compile (and cache on the policy) for ``profile`` in ``scope``."""
    flags = flags or Flags()
    key = (profile.name, scope, flags)
    cached = policy.compiled.get(key)
    if cached is not None:
        return cached
    compiled = CompiledPolicy(
        policy,
        profile,
        scope,
        flags,
        tuple(compile_rule(r, profile, scope, flags) for r in policy.permissions),
        tuple(compile_rule(r, profile, scope, flags) for r in policy.prohibitions),
        tuple(compile_rule(r, profile, scope, flags) for r in policy.obligations),
    )
    policy.compiled[key] = compiled
    return compiled


def match_thing(iri: str | None, thing: Asset | Party, state: State) -> bool | None:
    """Does the requested party / target denote ``thing`` (directly or via partOf)?"""
    if iri is None:
        return None
    if iri == thing.iri:
        return True
    # Any asset or party may be declared part of another in the state (odrl:partOf).
    return thing.iri in reachable(iri, state.memberships)
