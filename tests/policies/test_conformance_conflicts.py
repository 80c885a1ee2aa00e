"""ODRL conflict quiz (SolidLab ODRL-Test-Conflicts) for ``policy lint``, read from ../shared.

Each quiz file holds several policies that apply together; the published answers say
whether they conflict. ``lint_policy`` on the merged rules must find a conflict exactly
when the answer is "Conflict".
"""

from __future__ import annotations

import json
from pathlib import Path

import rdflib
from rdflib import RDF, RDFS

from policies import lint_policy, parse_policy
from tests.policies.conformance import ODRL

POLICY_TYPES = (ODRL.Set, ODRL.Offer, ODRL.Agreement, ODRL.Policy)


def _answers(shared: Path) -> dict[str, str]:
    quiz = shared / "conformance" / "odrl" / "odrl-test-conflicts" / "quiz"
    out = {}
    for line in (quiz / "answers-from-commit-fa4bc68.txt").read_text().splitlines():
        if line.strip():
            name, answer = line.split()
            out[name] = answer
    return out


def _hierarchy(path: Path) -> dict[str, str]:
    """Actions a quiz declares itself (rdfs:subClassOf / odrl:includedIn another action)."""
    g = rdflib.Graph()
    g.parse(path, format="turtle")
    out = {}
    for prop in (RDFS.subClassOf, ODRL.includedIn):
        for s, o in g.subject_objects(prop):
            out[str(s)] = str(o)
    return out


def _policies(path: Path) -> list:
    g = rdflib.Graph()
    g.parse(path, format="turtle")
    out = []
    subjects = {s for t in POLICY_TYPES for s in g.subjects(RDF.type, t)}
    for s in sorted(subjects):
        sub = rdflib.Graph()
        for triple in g.cbd(s):
            sub.add(triple)
        out.append(parse_policy(json.loads(sub.serialize(format="json-ld"))))
    return out


def test_conflict_quiz(shared_dir: Path) -> None:
    quiz = shared_dir / "conformance" / "odrl" / "odrl-test-conflicts" / "quiz"
    answers = _answers(shared_dir)
    wrong = []
    for name, answer in sorted(answers.items()):
        findings = lint_policy(_policies(quiz / name), included_in=_hierarchy(quiz / name))
        found = any("can both apply" in f["message"] for f in findings)
        if found != (answer == "Conflict"):
            wrong.append(name)
    score = f"{len(answers) - len(wrong)}/{len(answers)}"
    print(f"\nODRL conflict quiz: {score}; not as expected: {wrong}")
    assert wrong == []
