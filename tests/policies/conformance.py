"""Harness for the public ODRL test suites: Turtle / suite JSON-LD -> our JSON formats.

The product reads JSON-LD policies and our request / state JSON. The suites write policies,
requests and states of the world in Turtle (SolidLab) or their own JSON-LD vocabulary (W3C
formal semantics). This module converts: the policy graph goes through rdflib's JSON-LD
serialiser into ``parse_policy``; requests and states are read from the graph into the
request / state JSON of docs/policies.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import rdflib
from rdflib import RDF, Literal, Namespace, URIRef

ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
DCT = Namespace("http://purl.org/dc/terms/")
SOTW = Namespace("https://w3id.org/force/sotw#")
REPORT = Namespace("https://w3id.org/force/compliance-report#")

# Options under which the SolidLab suites are decided (documented in docs/policies.md):
# the suite treats an absent purpose as satisfying isNoneOf, an unset duty as an
# obligation still to be met, and a permission without action as covering every action.
SOLIDLAB_OPTIONS = {
    "missing_satisfies_negative": True,
    "unset_duty": "obligation",
    "actionless_rule_matches": True,
}

FEATURE_OPERANDS = {
    SOTW.Purpose: "purpose",
    SOTW.DeliveryChannel: "deliveryChannel",
    SOTW.Recipient: "recipient",
    SOTW.Spatial: "spatial",
}


def graph(*paths: Path) -> rdflib.Graph:
    g = rdflib.Graph()
    for p in paths:
        g.parse(p, format="turtle")
    return g


def policy_jsonld(path: Path) -> list:
    """The policy graph as (expanded, flat) JSON-LD, as an RDF tool would hand it over."""
    return json.loads(graph(path).serialize(format="json-ld"))


def _lit(value: Any) -> Any:
    if isinstance(value, Literal):
        py = value.toPython()
        if isinstance(py, datetime):
            return py.isoformat()
        return str(value)
    return str(value)


def solidlab_request(path: Path) -> tuple[dict, str | None]:
    """Read an odrl:Request or sotw:EvaluationRequest; returns (request, time if given)."""
    g = graph(path)
    time = None
    for req in g.subjects(RDF.type, ODRL.Request):
        for perm in g.objects(req, ODRL.permission):
            return (
                {
                    "assignee": str(g.value(perm, ODRL.assignee)),
                    "action": str(g.value(perm, ODRL.action)),
                    "target": str(g.value(perm, ODRL.target)),
                },
                None,
            )
    for req in g.subjects(RDF.type, SOTW.EvaluationRequest):
        context: dict[str, Any] = {}
        types: dict[str, list[str]] = {}
        for param in g.objects(req, SOTW.requestParameter):
            feature = g.value(param, SOTW.describesFeature)
            value = g.value(param, SOTW.value)
            if feature == SOTW.TemporalData:
                time = _lit(value)
            elif feature in FEATURE_OPERANDS:
                context[FEATURE_OPERANDS[feature]] = str(value)
                if isinstance(value, URIRef):
                    cls = [str(t) for t in g.objects(value, RDF.type)]
                    if cls:
                        types[str(value)] = cls
        request = {
            "assignee": str(g.value(req, SOTW.requestingParty)),
            "action": str(g.value(req, SOTW.requestedAction)),
            "target": str(g.value(req, SOTW.requestedTarget)),
            "context": context,
        }
        if types:
            request["_types"] = types
        return request, time
    raise ValueError(f"no request in {path}")


def solidlab_state(path: Path, time: str | None = None) -> dict:
    """Read a state of the world: current time, partOf memberships, duty reports."""
    g = graph(path)
    state: dict[str, Any] = {}
    issued = [o for s, o in g.subject_objects(DCT.issued)]
    if issued:
        state["now"] = _lit(issued[0])
    if time is not None:
        state["now"] = time
    memberships: dict[str, list[str]] = {}
    for s, o in g.subject_objects(ODRL.partOf):
        memberships.setdefault(str(s), []).append(str(o))
    if memberships:
        state["memberships"] = memberships
    duties = {}
    for report in g.subjects(REPORT.deonticState, None):
        rule = g.value(report, REPORT.rule)
        deontic = g.value(report, REPORT.deonticState)
        if rule is not None and deontic == REPORT.Fulfilled:
            duties[str(rule)] = "fulfilled"
        elif rule is not None and deontic == REPORT.Violated:
            duties[str(rule)] = "violated"
    if duties:
        state["duties"] = duties
    return state
