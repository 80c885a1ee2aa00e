"""Deciding: ``evaluate(policy, request, state) -> Decision``, failing closed.

A permission grants the request only when its action covers the requested action (with
refinements satisfied), its target and assignee match, every constraint is *satisfied*
(unknown is not enough) and none of its duties blocks it. A prohibition applies unless it
is certainly not relevant (unknown counts as applying). Conflicts between an active
permission and an active prohibition follow the policy's strategy (perm / prohibit /
invalid, default invalid = deny). Nothing raises: any failure is a deny that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from policies.compile import CompiledPolicy, CompiledRule, Flags, compile_policy, match_thing
from policies.decision import Decision, RuleReport
from policies.errors import PolicyError, RequestError
from policies.model import Policy
from policies.profiles import SCOPES, Profile, get_profile
from policies.request import Request, State, parse_request, parse_state
from policies.values import display
from policies.vocab import AUTOSPACE, ODRL, short

# Duties that are discharged on or after use (the caller performs them), so an unset state
# does not block the use; every other duty (e.g. compensate) is a precondition by default.
ON_USE_DUTIES = frozenset(
    {
        ODRL + "inform",
        ODRL + "delete",
        ODRL + "acceptTracking",
        ODRL + "attribute",
        ODRL + "nextPolicy",
        ODRL + "watermark",
        ODRL + "anonymize",
        AUTOSPACE + "log",
    }
)
LOG_ACTIONS = frozenset({AUTOSPACE + "log"})
_LOG_NAMES = frozenset(short(a) for a in LOG_ACTIONS)

_OPTION_KEYS = {"missing_satisfies_negative", "unset_duty", "actionless_rule_matches", "clock"}


def flags_from_options(
    options: Mapping[str, Any] | None,
) -> tuple[Flags, Callable[[], datetime] | None]:
    """Validate evaluation options; return the semantic flags and the clock."""
    options = options or {}
    unknown = set(options) - _OPTION_KEYS
    if unknown:
        raise RequestError(f"unknown evaluation option(s): {', '.join(sorted(unknown))}")
    unset = options.get("unset_duty", "condition")
    if unset not in ("condition", "obligation"):
        raise RequestError("option unset_duty must be 'condition' or 'obligation'")
    return Flags(
        bool(options.get("missing_satisfies_negative", False)),
        unset,
        bool(options.get("actionless_rule_matches", False)),
    ), options.get("clock")


def _match_parties(rule: CompiledRule, req: Request, state: State) -> tuple[bool | None, tuple]:
    if not rule.assignees:
        return True, ()
    best: bool | None = False
    reports: tuple = ()
    for party, refine in rule.assignees:
        m = match_thing(req.assignee, party, state)
        if m is not False and party.refinements:
            r, reports = refine(req, state)
            m = r if m is True else (False if r is False else None)
        if m is True:
            return True, reports
        if m is None:
            best = None
    return best, reports


def _match_targets(rule: CompiledRule, req: Request, state: State) -> tuple[bool | None, tuple]:
    if not rule.targets:
        return True, ()
    best: bool | None = False
    reports: tuple = ()
    for asset, refine in rule.targets:
        m = match_thing(req.target, asset, state)
        if m is not False and asset.refinements:
            r, reports = refine(req, state)
            m = r if m is True else (False if r is False else None)
        if m is True:
            return True, reports
        if m is None:
            best = None
    return best, reports


def _match_action(
    rule: CompiledRule, req: Request, state: State, flags: Flags, scope: str
) -> tuple[bool | None, tuple]:
    if scope == "catalog":
        # An access policy answers "may this party see the offer"; the action it names
        # (Catena-X "access", or "use") is not the request's action. Refinements still count.
        if not rule.actions:
            return True, ()
        results = [refine(req, state) for _iri, refine in rule.actions]
        if any(r is True for r, _ in results):
            return True, next(reps for r, reps in results if r is True)
        return (None if any(r is None for r, _ in results) else False), results[0][1]
    if not rule.actions:
        # ODRL requires an action. Without one, a prohibition covers everything (the safe
        # reading) and a permission grants nothing unless the option says otherwise.
        return (flags.actionless_rule_matches or rule.source.kind != "permission"), ()
    best: bool | None = False
    reports: tuple = ()
    for iri, refine in rule.actions:
        if iri in req.actions:
            r, reps = refine(req, state)
            if r is True:
                return True, reps
            reports = reps
            if r is None:
                best = None
    return best, reports


def _duty(
    duty: CompiledRule, req: Request, state: State, flags: Flags
) -> tuple[bool, RuleReport, dict | None]:
    """Does this duty block the permission? Returns (blocks, report, obligation to perform)."""
    applies, creps = duty.constraints(req, state)
    action = duty.source.actions[0].iri if duty.source.actions else None
    uid = duty.source.uid
    recorded = state.duties.get(uid) if uid else None
    report = RuleReport(duty.source.kind, uid, None, None, None, None, creps, duty_state=recorded)
    if applies is False:  # the duty's condition does not hold: the duty is not in force
        report.active = False
        report.note = "duty not in force (its constraint is not satisfied)"
        return False, report, None
    report.active = True
    if recorded == "violated":
        # ODRL consequences: a violated duty is made good by fulfilling its consequences.
        consequences = [d for d in duty.duties if d.source.kind == "consequence"]
        if consequences and all(
            d.source.uid and state.duties.get(d.source.uid) == "fulfilled" for d in consequences
        ):
            report.note = "duty violated; its consequences are fulfilled"
            return False, report, None
        owed = ", ".join(d.source.uid or short(d.source.actions[0].iri) for d in consequences)
        report.note = "duty violated" + (f"; consequences owed: {owed}" if owed else "")
        return True, report, None
    deadline = duty.deadline(req, state)
    obligation = {
        "duty": uid,
        "action": short(action) if action else None,
        "deadline": display(deadline) if deadline else None,
        "state": recorded or "unset",
    }
    if recorded in ("fulfilled",):
        return False, report, None
    if recorded == "pending" or action in ON_USE_DUTIES:
        if deadline is not None and state.now > deadline and recorded != "fulfilled":
            report.note = "duty overdue"
            return True, report, None
        return False, report, obligation
    if flags.unset_duty == "obligation":
        return False, report, obligation
    report.note = "duty must be fulfilled before use (no fulfilment recorded)"
    return True, report, None


def _rule(
    rule: CompiledRule, req: Request, state: State, flags: Flags, kind: str, scope: str
) -> tuple[RuleReport, list[dict]]:
    action, areps = _match_action(rule, req, state, flags, scope)
    target, treps = _match_targets(rule, req, state)
    party, preps = _match_parties(rule, req, state)
    cons, creps = rule.constraints(req, state)
    report = RuleReport(
        kind, rule.source.uid, None, action, target, party, areps + treps + preps + creps
    )
    parts = (action, target, party, cons)
    if False in parts:
        report.active = False
    elif None in parts:
        report.active = None
    else:
        report.active = True
    obligations: list[dict] = []
    if kind == "permission" and report.active is True and rule.duties:
        duty_reports = []
        for duty in rule.duties:
            blocks, drep, obligation = _duty(duty, req, state, flags)
            duty_reports.append(drep)
            if blocks:
                report.active = False
                report.note = f"blocked by duty {duty.source.uid or ''}".strip()
            elif obligation:
                obligations.append(obligation)
        report.duties = tuple(duty_reports)
    return report, obligations


def _deny(reason: str, compiled: CompiledPolicy | None = None, **kw: Any) -> Decision:
    d = Decision(False, reason, **kw)
    if compiled is not None:
        d.policy, d.scope, d.profile = compiled.policy.uid, compiled.scope, compiled.profile.name
    return d


def decide(compiled: CompiledPolicy, req: Request, state: State) -> Decision:
    """Evaluate a compiled policy (the fast path; request and state already parsed)."""
    flags = compiled.flags
    reports: list[RuleReport] = []
    granted: list[RuleReport] = []
    obligations: list[dict] = []
    for rule in compiled.permissions:
        rep, obls = _rule(rule, req, state, flags, "permission", compiled.scope)
        reports.append(rep)
        if rep.active is True:
            granted.append(rep)
            obligations.extend(obls)
    blocking: list[RuleReport] = []
    for rule in compiled.prohibitions:
        rep, _ = _rule(rule, req, state, flags, "prohibition", "")
        reports.append(rep)
        if rep.active is not False:  # unknown counts as applying (fail closed)
            blocking.append(rep)
    obligation_failure = None
    for rule in compiled.obligations:
        rep, _ = _rule(rule, req, state, flags, "obligation", "")
        reports.append(rep)
        uid = rule.source.uid
        if uid and state.duties.get(uid) == "violated":
            obligation_failure = f"obligation {uid} is violated"
        elif compiled.profile.gate_obligations and rep.action is True and rep.active is not True:
            obligation_failure = (
                f"obligation {uid or short(rule.source.actions[0].iri)} no longer holds"
            )
        elif rep.action is not False:
            deadline = rule.deadline(req, state)
            obligations.append(
                {
                    "duty": uid,
                    "action": short(rule.source.actions[0].iri) if rule.source.actions else None,
                    "deadline": display(deadline) if deadline else None,
                    "state": state.duties.get(uid, "unset") if uid else "unset",
                }
            )
    policy = compiled.policy
    common = {
        "policy": policy.uid,
        "scope": compiled.scope,
        "profile": compiled.profile.name,
        "rules": reports,
    }
    if not granted:
        unknown = any(r.active is None for r in reports if r.kind == "permission")
        reason = (
            "no permission is satisfied: some constraints could not be evaluated"
            if unknown
            else "no permission grants this request"
        )
        return Decision(False, reason, **common)
    if blocking:
        definite = any(r.active is True for r in blocking)
        which = ", ".join(r.uid or "prohibition" for r in blocking)
        if policy.conflict == "perm":
            pass  # permissions override prohibitions
        elif policy.conflict == "prohibit":
            return Decision(False, f"prohibited by {which}", **common)
        else:
            what = "prohibited by" if definite else "a prohibition may apply (unknown)"
            return Decision(
                False,
                f"{what} {which}; conflicting rules make the policy invalid for this request",
                **common,
            )
    if obligation_failure:
        return Decision(False, obligation_failure, **common)
    events = [
        {
            "type": "policy.use",
            "policy": policy.uid,
            "duty": o["duty"],
            "assignee": req.assignee,
            "action": short(req.action),
            "target": req.target,
            "time": display(state.now),
            "scope": compiled.scope,
        }
        for o in obligations
        if o.get("action") in _LOG_NAMES
    ]
    return Decision(
        True,
        f"permitted by {', '.join(r.uid or 'permission' for r in granted)}",
        obligations=obligations,
        events=events,
        **common,
    )


def evaluate(
    policy: Any,
    request: Any,
    state: Any = None,
    *,
    scope: str = "usage",
    profile: str | Profile = "odrl",
    options: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide whether ``request`` is allowed by ``policy`` given ``state``.

    Args:
        policy: a :class:`Policy` (parsed once, compiled and cached) or a policy document.
        request: the request JSON (docs/policies.md) or a parsed :class:`Request`.
        state: the state JSON or a parsed :class:`State`; time defaults to the clock.
        scope: catalog, contract.negotiation, transfer.process, usage or monitor.
        profile: odrl, catenax or cn-auto.
        options: ``missing_satisfies_negative`` (bool), ``unset_duty`` ("condition" |
            "obligation"), ``actionless_rule_matches`` (bool), ``clock`` (callable).

    Returns:
        A :class:`Decision`; never raises, never permits on bad input.
    """
    try:
        prof = profile if isinstance(profile, Profile) else get_profile(profile)
        if scope not in SCOPES:
            return _deny(
                f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}",
                scope=str(scope),
                profile=prof.name,
            )
        flags, clock = flags_from_options(options)
        if not isinstance(policy, Policy):
            from policies.parse import parse_policy

            policy = parse_policy(policy)
        req = parse_request(request)
        st = parse_state(state, clock)
        compiled = compile_policy(policy, prof, scope, flags)
        decision = decide(compiled, req, st)
        if prof.name == "cn-auto":
            from policies.cnauto import apply_region_rules

            decision = apply_region_rules(decision, policy, req, st)
        return decision
    except PolicyError as exc:
        return _deny(f"invalid policy: {exc}", scope=str(scope), errors=list(exc.reasons))
    except (RequestError, ValueError) as exc:
        return _deny(f"invalid input: {exc}", scope=str(scope), errors=[str(exc)])
    except RecursionError:
        return _deny("input nested too deeply", scope=str(scope))
    except Exception as exc:  # fail closed on anything unforeseen, and say so
        return _deny(
            f"internal error while deciding ({type(exc).__name__}); denied",
            scope=str(scope),
            errors=[repr(exc)[:300]],
        )
