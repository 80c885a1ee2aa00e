"""The internal policy model: what a parsed ODRL 2.2 policy is, independent of JSON-LD.

Every IRI is absolute (or kept relative exactly as written); every right operand is a
typed value. Rules carry policy-level properties already pushed down (ODRL compact form),
and inherited rules already merged (``inheritFrom``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PERMISSION = "permission"
PROHIBITION = "prohibition"
OBLIGATION = "obligation"
DUTY = "duty"
REMEDY = "remedy"
CONSEQUENCE = "consequence"


@dataclass(frozen=True, slots=True)
class Constraint:
    """An atomic constraint: ``leftOperand operator rightOperand`` (with optional unit)."""

    uid: str | None
    left: str
    operator: str
    right: tuple[tuple[Any, str], ...]  # ((value, kind), ...); several values = a list
    right_refs: tuple[str, ...] = ()
    unit: str | None = None
    datatype: str | None = None
    is_list: bool = False


@dataclass(frozen=True, slots=True)
class LogicalConstraint:
    """``and`` / ``or`` / ``xone`` / ``andSequence`` over constraints (order kept)."""

    uid: str | None
    op: str
    members: tuple[Constraint | LogicalConstraint, ...]


ConstraintNode = Constraint | LogicalConstraint


@dataclass(frozen=True, slots=True)
class Action:
    """An action, possibly narrowed by refinements."""

    iri: str
    refinements: tuple[ConstraintNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Party:
    """A party or a party collection (matched through ``partOf`` memberships)."""

    iri: str
    collection: bool = False
    refinements: tuple[ConstraintNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset or an asset collection (matched through ``partOf`` memberships)."""

    iri: str
    collection: bool = False
    refinements: tuple[ConstraintNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A permission, prohibition, obligation, duty, remedy or consequence."""

    kind: str
    uid: str | None
    actions: tuple[Action, ...]
    targets: tuple[Asset, ...] = ()
    assignees: tuple[Party, ...] = ()
    assigners: tuple[Party, ...] = ()
    constraints: tuple[ConstraintNode, ...] = ()
    duties: tuple[Rule, ...] = ()  # duties of a permission
    remedies: tuple[Rule, ...] = ()  # remedies of a prohibition
    consequences: tuple[Rule, ...] = ()  # consequences of a duty / obligation


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy; ``compiled`` caches compiled forms per profile (not compared)."""

    uid: str | None
    type: str  # Set / Offer / Agreement / Request / ...
    permissions: tuple[Rule, ...] = ()
    prohibitions: tuple[Rule, ...] = ()
    obligations: tuple[Rule, ...] = ()
    conflict: str = "invalid"
    profiles: tuple[str, ...] = ()
    assigner: tuple[Party, ...] = ()
    assignee: tuple[Party, ...] = ()
    inherit_from: tuple[str, ...] = ()
    properties: tuple[tuple[str, Any], ...] = ()  # other policy-level properties (IRI, value)
    compiled: dict[str, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.permissions + self.prohibitions + self.obligations

    def constraint_count(self) -> int:
        """Number of atomic constraints and refinements anywhere in the policy."""
        total = 0
        stack: list[Any] = list(self.rules)
        while stack:
            item = stack.pop()
            if isinstance(item, Rule):
                stack.extend(item.constraints)
                stack.extend(item.duties + item.remedies + item.consequences)
                for a in item.actions:
                    stack.extend(a.refinements)
            elif isinstance(item, LogicalConstraint):
                stack.extend(item.members)
            elif isinstance(item, Constraint):
                total += 1
        return total


def iter_constraints(nodes: tuple[ConstraintNode, ...]):  # type: ignore[no-untyped-def]
    """Yield every atomic constraint under ``nodes`` (depth first, order kept)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if isinstance(node, LogicalConstraint):
            stack.extend(reversed(node.members))
        else:
            yield node
