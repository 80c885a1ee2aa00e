"""Reading ODRL 2.2 policies from JSON-LD into the internal model.

The document is expanded first (offline contexts only), so compact documents with the
W3C ODRL, DSP 2025-1 or Catena-X context, ``@vocab`` documents and expanded or flattened
documents (node references by ``@id``, as an RDF serialiser writes them) all read alike.
Every problem found is collected; :class:`PolicyError` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies import jsonld
from policies.errors import PolicyError
from policies.model import (
    CONSEQUENCE,
    DUTY,
    OBLIGATION,
    PERMISSION,
    PROHIBITION,
    REMEDY,
    Action,
    Asset,
    Constraint,
    ConstraintNode,
    LogicalConstraint,
    Party,
    Policy,
    Rule,
)
from policies.values import Incomparable, literal
from policies.vocab import (
    ACTION_ALIASES,
    CONFLICT_TERMS,
    LOGICAL_OPERATORS,
    ODRL,
    OPERATORS,
    POLICY_TYPES,
    RDF_VALUE,
    canonical_action,
    short,
)

# Limits on untrusted policies (each a clear PolicyError when exceeded).
MAX_CONSTRAINTS = 10_000
MAX_NESTING = 32
MAX_RULES = 2_000
MAX_INHERITANCE_DEPTH = 16

_P = {
    name: ODRL + name
    for name in (
        "permission",
        "prohibition",
        "obligation",
        "duty",
        "remedy",
        "consequence",
        "failure",
        "action",
        "target",
        "assignee",
        "assigner",
        "constraint",
        "refinement",
        "leftOperand",
        "operator",
        "rightOperand",
        "rightOperandReference",
        "unit",
        "dataType",
        "datatype",
        "conflict",
        "profile",
        "inheritFrom",
        "uid",
        "source",
        "partOf",
    )
}
_RULE_PROPS = {_P[k] for k in ("permission", "prohibition", "obligation")}
_LOGICAL = set(LOGICAL_OPERATORS)
_KNOWN_POLICY_PROPS = _RULE_PROPS | {
    _P["target"],
    _P["assignee"],
    _P["assigner"],
    _P["action"],
    _P["conflict"],
    _P["profile"],
    _P["inheritFrom"],
    _P["uid"],
    "@id",
    "@type",
}

Resolver = Callable[[str], Any]


class _Reader:
    """One parse: the node index of the document, the reasons collected, the limits."""

    def __init__(self, expanded: list) -> None:
        self.reasons: list[str] = []
        self.index: dict[str, dict] = {}
        self.constraints = 0
        self.rules = 0
        self.too_deep = False
        self._index(expanded)

    def _index(self, expanded: list) -> None:
        stack: list[Any] = list(expanded)
        seen = 0
        while stack:
            node = stack.pop()
            seen += 1
            if seen > 500_000:
                self.reasons.append("document has too many nodes")
                return
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                ident = node.get("@id")
                if isinstance(ident, str) and len(node) > 1:
                    have = self.index.get(ident)
                    if have is None:
                        self.index[ident] = node
                    else:  # the same node described in two places: merge the properties
                        merged = dict(have)
                        for k, v in node.items():
                            if k != "@id":
                                merged[k] = list(merged.get(k, [])) + list(v) if k != "@type" else v
                        self.index[ident] = merged
                for key, value in node.items():
                    if key not in ("@id", "@value", "@type", "@language"):
                        stack.append(value)

    def deref(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"@id"}:
            return self.index.get(node["@id"], node)
        return node

    def values(self, node: dict, prop: str) -> list:
        raw = node.get(prop, [])
        if not isinstance(raw, list):
            raw = [raw]
        out: list = []
        for item in raw:
            if isinstance(item, dict) and "@list" in item:
                out.extend(item["@list"] if isinstance(item["@list"], list) else [item["@list"]])
            else:
                out.append(item)
        return out

    def iris(self, node: dict, prop: str, what: str) -> list[str]:
        out = []
        for item in self.values(node, prop):
            if isinstance(item, dict) and isinstance(item.get("@id"), str):
                out.append(item["@id"])
            elif isinstance(item, dict) and isinstance(item.get("@value"), str):
                out.append(item["@value"])
            else:
                self.reasons.append(f"{what} must be an IRI, found {_brief(item)}")
        return out

    # -- constraints ---------------------------------------------------------------
    def constraint(self, raw: Any, depth: int, where: str) -> ConstraintNode | None:
        node = self.deref(raw)
        if depth > MAX_NESTING:
            self.too_deep = True
            self.reasons.append(f"{where}: constraints nested deeper than {MAX_NESTING} levels")
            return None
        if not isinstance(node, dict):
            self.reasons.append(f"{where}: a constraint must be an object, found {_brief(node)}")
            return None
        uid = node.get("@id") if isinstance(node.get("@id"), str) else None
        logical = [k for k in node if k in _LOGICAL]
        if logical:
            if len(logical) > 1 or _P["leftOperand"] in node:
                self.reasons.append(f"{where}: a logical constraint has exactly one operator")
                return None
            op = logical[0]
            members: list[ConstraintNode] = []
            for member in self.values(node, op):
                parsed = self.constraint(member, depth + 1, where)
                if parsed is not None:
                    members.append(parsed)
            if not members and not self.too_deep:
                self.reasons.append(f"{where}: logical constraint {short(op)} has no operands")
                return None
            return LogicalConstraint(uid, LOGICAL_OPERATORS[op], tuple(members))
        self.constraints += 1
        if self.constraints > MAX_CONSTRAINTS:
            if self.constraints == MAX_CONSTRAINTS + 1:
                self.reasons.append(f"policy has more than {MAX_CONSTRAINTS} constraints")
            return None
        lefts = self.iris(node, _P["leftOperand"], f"{where}: leftOperand")
        ops = self.iris(node, _P["operator"], f"{where}: operator")
        if len(lefts) != 1:
            self.reasons.append(
                f"{where}: constraint {uid or ''} needs exactly one leftOperand".replace("  ", " ")
            )
            return None
        if len(ops) != 1:
            self.reasons.append(
                f"{where}: constraint on {short(lefts[0])} needs exactly one operator"
            )
            return None
        op = _bare(ops[0], ODRL)
        if op not in OPERATORS:
            self.reasons.append(f"{where}: unknown operator {short(op)!s} on {short(lefts[0])}")
            return None
        rights = self.values(node, _P["rightOperand"])
        refs = self.iris(node, _P["rightOperandReference"], f"{where}: rightOperandReference")
        if not rights and not refs:
            self.reasons.append(f"{where}: constraint on {short(lefts[0])} has no rightOperand")
            return None
        typed: list[tuple[Any, str]] = []
        for r in rights:
            r = self.deref(r) if isinstance(r, dict) and set(r) == {"@id"} else r
            if isinstance(r, dict) and "@id" in r and len(r) > 1:
                r = {"@id": r["@id"]}  # a described node used as a value: its identity counts
            try:
                typed.append(literal(r))
            except Incomparable as exc:
                self.reasons.append(f"{where}: rightOperand of {short(lefts[0])}: {exc}")
                return None
        units = self.iris(node, _P["unit"], f"{where}: unit")
        dtypes = self.iris(node, _P["datatype"], f"{where}: dataType")
        raw_right = node.get(_P["rightOperand"])
        is_list = len(typed) > 1 or (
            isinstance(raw_right, list)
            and any(isinstance(x, dict) and "@list" in x for x in raw_right)
        )
        return Constraint(
            uid,
            _left_iri(lefts[0]),
            op,
            tuple(typed),
            tuple(refs),
            units[0] if units else None,
            dtypes[0] if dtypes else None,
            is_list,
        )

    def constraints_of(self, node: dict, prop: str, where: str) -> tuple[ConstraintNode, ...]:
        out = []
        for raw in self.values(node, prop):
            parsed = self.constraint(raw, 0, where)
            if parsed is not None:
                out.append(parsed)
        return tuple(out)

    # -- parties, assets, actions ---------------------------------------------------
    def _thing(self, raw: Any, where: str) -> tuple[str, bool, tuple[ConstraintNode, ...]] | None:
        node = self.deref(raw)
        if isinstance(node, dict) and isinstance(node.get("@id"), str):
            types = node.get("@type", [])
            types = types if isinstance(types, list) else [types]
            coll = any(t in (ODRL + "PartyCollection", ODRL + "AssetCollection") for t in types)
            coll = coll or _P["source"] in node or _P["refinement"] in node
            refs = self.constraints_of(node, _P["refinement"], where)
            return node["@id"], coll, refs
        if isinstance(node, dict) and isinstance(node.get("@value"), str):
            return node["@value"], False, ()
        if isinstance(node, dict) and _P["refinement"] in node:
            self.reasons.append(f"{where}: a collection with a refinement needs an @id")
            return None
        self.reasons.append(f"{where}: expected an IRI, found {_brief(node)}")
        return None

    def parties(self, node: dict, prop: str, where: str) -> tuple[Party, ...]:
        out = []
        for raw in self.values(node, prop):
            got = self._thing(raw, where)
            if got:
                out.append(Party(*got))
        return tuple(out)

    def assets(self, node: dict, where: str) -> tuple[Asset, ...]:
        out = []
        for raw in self.values(node, _P["target"]):
            got = self._thing(raw, where)
            if got:
                out.append(Asset(*got))
        return tuple(out)

    def actions(self, node: dict, where: str) -> tuple[Action, ...]:
        out = []
        for raw in self.values(node, _P["action"]):
            item = self.deref(raw)
            if isinstance(item, dict) and RDF_VALUE in item:
                vals = self.iris(item, RDF_VALUE, f"{where}: action rdf:value")
                if len(vals) != 1:
                    self.reasons.append(f"{where}: a refined action needs one rdf:value")
                    continue
                refs = self.constraints_of(
                    item, _P["refinement"], f"{where} action {short(vals[0])}"
                )
                out.append(Action(_action_iri(vals[0]), refs))
            elif isinstance(item, dict) and isinstance(item.get("@id"), str):
                refs = self.constraints_of(item, _P["refinement"], where)
                out.append(Action(_action_iri(item["@id"]), refs))
            elif isinstance(item, dict) and isinstance(item.get("@value"), str):
                out.append(Action(_action_iri(item["@value"])))
            else:
                self.reasons.append(f"{where}: action must be an IRI, found {_brief(item)}")
        return tuple(out)

    # -- rules -------------------------------------------------------------------------
    def rule(self, raw: Any, kind: str, inherited: dict[str, Any], depth: int = 0) -> Rule | None:
        node = self.deref(raw)
        self.rules += 1
        if self.rules > MAX_RULES:
            if self.rules == MAX_RULES + 1:
                self.reasons.append(f"policy has more than {MAX_RULES} rules")
            return None
        if depth > 8:
            self.reasons.append(f"{kind}: duties nested deeper than 8 levels")
            return None
        if not isinstance(node, dict):
            self.reasons.append(f"{kind}: a rule must be an object, found {_brief(node)}")
            return None
        uid = node.get("@id") if isinstance(node.get("@id"), str) else None
        where = f"{kind} {uid}" if uid else kind
        if set(node) == {"@id"} and not inherited.get("actions"):
            self.reasons.append(
                f"{where}: only referenced; the rule is not described in the document"
            )
            return None
        actions = self.actions(node, where) or inherited.get("actions", ())
        targets = self.assets(node, where) or inherited.get("targets", ())
        assignees = self.parties(node, _P["assignee"], where) or inherited.get("assignees", ())
        assigners = self.parties(node, _P["assigner"], where) or inherited.get("assigners", ())
        constraints = self.constraints_of(node, _P["constraint"], where)
        sub_inherit = {"targets": targets, "assigners": assigners}
        duties = remedies = consequences = ()
        if kind == PERMISSION:
            duties = tuple(
                r
                for r in (
                    self.rule(d, DUTY, sub_inherit, depth + 1)
                    for d in self.values(node, _P["duty"])
                )
                if r
            )
        if kind == PROHIBITION:
            remedies = tuple(
                r
                for r in (
                    self.rule(d, REMEDY, sub_inherit, depth + 1)
                    for d in self.values(node, _P["remedy"])
                )
                if r
            )
        if kind in (DUTY, OBLIGATION):
            raw_cons = self.values(node, _P["consequence"]) + self.values(node, _P["failure"])
            consequences = tuple(
                r
                for r in (self.rule(d, CONSEQUENCE, sub_inherit, depth + 1) for d in raw_cons)
                if r
            )
        return Rule(
            kind,
            uid,
            actions,
            targets,
            assignees,
            assigners,
            constraints,
            duties,
            remedies,
            consequences,
        )


def _bare(iri: str, ns: str) -> str:
    return ns + iri if ":" not in iri and "/" not in iri else iri


def _left_iri(iri: str) -> str:
    """A bare left operand name (no context term for it) -> the profile operand's IRI."""
    if ":" in iri or "/" in iri:
        return iri
    from policies.profiles import PROFILES

    for profile in PROFILES.values():
        operand = profile.lookup(iri)
        if operand is not None:
            return operand.iri
    return iri


def _action_iri(iri: str) -> str:
    if ":" not in iri and "/" not in iri:
        # A context without a term for the action (e.g. DSP's ODRL profile defines only
        # "use") leaves the bare name; ODRL actions are the only actions named bare.
        iri = ODRL + iri
    iri = ACTION_ALIASES.get(iri, iri)
    return canonical_action(iri)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _policy_nodes(reader: _Reader, expanded: list) -> list[dict]:
    """Nodes that are policies: typed as one, or carrying rules (wherever they are nested,
    e.g. the ``offer`` of a DSP message or the ``policy`` of an EDC policy definition)."""
    typed: list[dict] = []
    untyped: list[dict] = []
    seen: set[int] = set()
    stack: list[Any] = list(expanded) + list(reader.index.values())
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        node = reader.deref(node)
        if any(t in POLICY_TYPES for t in _types(node)):
            if not any(n is node for n in typed):
                typed.append(node)
        elif any(p in node for p in _RULE_PROPS) and not any(n is node for n in untyped):
            untyped.append(node)
        for key, value in node.items():
            if key not in ("@id", "@type", "@value") and key not in _RULE_PROPS:
                stack.append(value)
    # Prefer typed policies; a node may be indexed and nested both: keep one per @id.
    found = typed or untyped
    unique: dict[Any, dict] = {}
    for node in found:
        unique.setdefault(node.get("@id") or id(node), node)
    return list(unique.values())


def parse_policy(doc: Any, *, resolve: Resolver | None = None) -> Policy:
    """Parse an ODRL policy (any JSON-LD form) into the internal model.

    Args:
        doc: the policy document (compact, ``@vocab``, expanded or flattened JSON-LD).
        resolve: looks up a parent policy document by its uid for ``inheritFrom``.

    Raises:
        PolicyError: every problem found (also for malformed JSON-LD, cycles, limits).
    """
    return _parse(doc, resolve, ())


def _parse(doc: Any, resolve: Resolver | None, chain: tuple[str, ...]) -> Policy:
    try:
        expanded = jsonld.expand(doc)
    except jsonld.JsonLdError as exc:
        raise PolicyError(str(exc)) from exc
    reader = _Reader(expanded)
    if reader.reasons:
        raise PolicyError(reader.reasons)
    nodes = _policy_nodes(reader, expanded)
    if not nodes:
        raise PolicyError("no ODRL policy found (expected a Set, Offer, Agreement or rules)")
    if len(nodes) > 1:
        nodes = [n for n in nodes if ODRL + "Request" not in _types(n)] or nodes
    if len(nodes) > 1:
        raise PolicyError(f"document holds {len(nodes)} policies; give one at a time")
    node = nodes[0]
    types = [t for t in _types(node) if t in POLICY_TYPES]
    ptype = POLICY_TYPES[types[0]] if types else "Set"
    uid = node.get("@id") if isinstance(node.get("@id"), str) else None
    uids = reader.iris(node, _P["uid"], "uid")
    uid = uid or (uids[0] if uids else None)

    inherited = {
        "actions": reader.actions(node, "policy"),
        "targets": reader.assets(node, "policy"),
        "assignees": reader.parties(node, _P["assignee"], "policy"),
        "assigners": reader.parties(node, _P["assigner"], "policy"),
    }
    kinds = (
        (PERMISSION, _P["permission"]),
        (PROHIBITION, _P["prohibition"]),
        (OBLIGATION, _P["obligation"]),
    )
    rules: dict[str, list[Rule]] = {PERMISSION: [], PROHIBITION: [], OBLIGATION: []}
    for kind, prop in kinds:
        for raw in reader.values(node, prop):
            rule = reader.rule(raw, kind, inherited)
            if rule is not None:
                rules[kind].append(rule)
    conflicts = reader.iris(node, _P["conflict"], "conflict")
    conflict = "invalid"
    if conflicts:
        if len(conflicts) > 1 or conflicts[0] not in CONFLICT_TERMS:
            reader.reasons.append(
                f"conflict must be one of perm, prohibit, invalid; found {conflicts}"
            )
        else:
            conflict = CONFLICT_TERMS[conflicts[0]]
    profiles = tuple(reader.iris(node, _P["profile"], "profile"))
    parents = tuple(reader.iris(node, _P["inheritFrom"], "inheritFrom"))
    props = tuple(
        sorted(
            ((k, v) for k, v in node.items() if k not in _KNOWN_POLICY_PROPS), key=lambda kv: kv[0]
        )
    )
    if not any(rules.values()) and not parents:
        reader.reasons.append("policy has no permission, prohibition or obligation")
    if reader.reasons:
        raise PolicyError(reader.reasons)

    for parent_uid in parents:
        if parent_uid in chain or parent_uid == uid:
            path = " -> ".join((*chain, uid or "?", parent_uid))
            raise PolicyError(f"cyclic inheritFrom: {path}")
        if len(chain) >= MAX_INHERITANCE_DEPTH:
            raise PolicyError(f"inheritFrom deeper than {MAX_INHERITANCE_DEPTH} policies")
        if resolve is None:
            raise PolicyError(
                f"inheritFrom {parent_uid} cannot be resolved (no policy store given)"
            )
        try:
            parent_doc = resolve(parent_uid)
        except Exception as exc:  # a resolver is caller code; its failure is a policy error
            raise PolicyError(f"inheritFrom {parent_uid} could not be loaded: {exc}") from exc
        if parent_doc is None:
            raise PolicyError(f"inheritFrom {parent_uid} is not a known policy")
        parent = _parse(parent_doc, resolve, (*chain, uid or "?"))
        rules[PERMISSION] = list(parent.permissions) + rules[PERMISSION]
        rules[PROHIBITION] = list(parent.prohibitions) + rules[PROHIBITION]
        rules[OBLIGATION] = list(parent.obligations) + rules[OBLIGATION]
        if not conflicts and parent.conflict != "invalid":
            conflict = parent.conflict
    if not any(rules.values()):
        raise PolicyError("policy has no permission, prohibition or obligation")
    return Policy(
        uid,
        ptype,
        tuple(rules[PERMISSION]),
        tuple(rules[PROHIBITION]),
        tuple(rules[OBLIGATION]),
        conflict,
        profiles,
        inherited["assigners"],
        inherited["assignees"],
        parents,
        props,
    )


def _types(node: dict) -> list:
    types = node.get("@type", [])
    return types if isinstance(types, list) else [types]
