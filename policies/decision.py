"""The result of an evaluation: permit or deny, and why.

The explanation is a tree: the decision, then each rule (active or not, and whether its
action, target and party matched), then each constraint with its left value, operator,
right value and result (satisfied / unsatisfied / unknown). It is kept as tuples while
deciding and rendered as JSON (or a readable tree) only when someone asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies.values import display

RESULT = {True: "satisfied", False: "unsatisfied", None: "unknown"}


@dataclass(slots=True)
class RuleReport:
    """How one rule fared."""

    kind: str
    uid: str | None
    active: bool | None
    action: bool | None
    target: bool | None
    party: bool | None
    constraints: tuple = ()
    duties: tuple[RuleReport, ...] = ()
    note: str | None = None
    duty_state: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "id": self.uid,
            "state": {True: "active", False: "inactive", None: "unknown"}[self.active],
            "action": RESULT[self.action],
            "target": RESULT[self.target],
            "party": RESULT[self.party],
            "constraints": [render_constraint(c) for c in self.constraints],
        }
        if self.duties:
            out["duties"] = [d.to_json() for d in self.duties]
        if self.duty_state is not None:
            out["dutyState"] = self.duty_state
        if self.note:
            out["note"] = self.note
        return out


def _unmet(rep: tuple, out: list[str]) -> None:
    """Collect the failed or undecidable leaves of a constraint report."""
    if rep[0] == "logical":
        _, _uid, _op, result, members = rep
        if result is not True:
            for member in members:
                _unmet(member, out)
        return
    _, _uid, left, op, right, value, result, note = rep
    if result is True:
        return
    name = _term(left)
    if result is None:
        out.append(f"{name} is not known" + (f" ({note})" if note else ""))
        return
    shown = display(value)
    out.append(f"{name} {_term(op)} {display(right)} does not hold (it is {shown})")


def _term(iri: Any) -> str:
    """The last segment of an IRI (``odrl:count`` -> ``count``), for messages."""
    text = str(iri)
    return text.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1] or text


def render_constraint(rep: tuple) -> dict[str, Any]:
    """Turn a constraint report tuple (see compile.py) into JSON."""
    if rep[0] == "logical":
        _, uid, op, result, members = rep
        out = {
            "logical": op,
            "result": RESULT[result],
            "constraints": [render_constraint(m) for m in members],
        }
        if uid:
            out["id"] = uid
        return out
    _, uid, left, op, right, value, result, note = rep
    out = {
        "leftOperand": left,
        "operator": op,
        "rightOperand": right,
        "leftValue": display(value),
        "result": RESULT[result],
    }
    if uid:
        out["id"] = uid
    if note:
        out["note"] = note
    return out


@dataclass(slots=True)
class Decision:
    """Permit or deny, with the reason, the explanation tree and what the caller must do.

    Attributes:
        permitted: the only field a caller needs to enforce.
        reason: one sentence saying why.
        rules: per-rule reports (the explanation tree).
        obligations: duties the caller must discharge (inform, delete by a deadline, log...).
        events: records for the caller to append to the ledger (the library writes nothing).
        export: the cross-border record (cn-auto), for the export log; None if not cross-border.
    """

    permitted: bool
    reason: str
    policy: str | None = None
    scope: str = "usage"
    profile: str = "odrl"
    rules: list[RuleReport] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    export: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

    def unmet(self) -> list[str]:
        """The constraints that kept each permission from granting, one phrase each.

        ``reason`` says *that* no permission granted; operators and consumers need to know
        *which* term failed (the agreed number of uses is spent, another purpose was given).
        """
        out: list[str] = []
        if self.permitted:
            return out
        for rule in self.rules:
            if rule.kind == "permission" and rule.active is not True:
                for rep in rule.constraints:
                    _unmet(rep, out)
        return list(dict.fromkeys(out))

    @property
    def explanation(self) -> dict[str, Any]:
        """The explanation tree as JSON."""
        return {
            "decision": "permit" if self.permitted else "deny",
            "reason": self.reason,
            "rules": [r.to_json() for r in self.rules],
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": "permit" if self.permitted else "deny",
            "permitted": self.permitted,
            "reason": self.reason,
            "policy": self.policy,
            "scope": self.scope,
            "profile": self.profile,
            "rules": [r.to_json() for r in self.rules],
            "obligations": self.obligations,
            "events": self.events,
        }
        if self.export is not None:
            out["export"] = self.export
        if self.errors:
            out["errors"] = self.errors
        return out

    def to_text(self) -> str:
        """A readable tree for ``--human``."""
        lines = [f"{'PERMIT' if self.permitted else 'DENY'}: {self.reason}"]
        for r in self.rules:
            state = {True: "active", False: "inactive", None: "unknown"}[r.active]
            lines.append(
                f"  {r.kind} {r.uid or ''} [{state}] action={RESULT[r.action]} "
                f"target={RESULT[r.target]} party={RESULT[r.party]}"
                + (f" ({r.note})" if r.note else "")
            )
            _text_constraints(r.constraints, lines, "    ")
            for d in r.duties:
                lines.append(
                    f"    duty {d.uid or ''} [{d.duty_state or 'unset'}]"
                    + (f" ({d.note})" if d.note else "")
                )
                _text_constraints(d.constraints, lines, "      ")
        for o in self.obligations:
            lines.append(f"  obligation: {o.get('action')} {o.get('deadline') or ''}".rstrip())
        if self.export:
            lines.append(f"  cross-border: {self.export}")
        return "\n".join(lines)


def _text_constraints(reports: tuple, lines: list[str], indent: str) -> None:
    for rep in reports:
        if rep[0] == "logical":
            lines.append(f"{indent}{rep[2]} -> {RESULT[rep[3]]}")
            _text_constraints(rep[4], lines, indent + "  ")
        else:
            _, _uid, left, op, right, value, result, note = rep
            lines.append(
                f"{indent}{left} {op} {right} (value {display(value)!r}) -> {RESULT[result]}"
                + (f" ({note})" if note else "")
            )
