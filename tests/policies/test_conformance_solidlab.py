"""SolidLab ODRL test suite (68 cases + 15 extension cases), read from ../shared.

Each case names a policy, a request and a state of the world, and the expected activation
state of each rule. We compare the activation state of every expected rule with the state
our explanation reports. The suite is decided under ``SOLIDLAB_OPTIONS`` (see
docs/policies.md); the score under the fail-closed defaults is reported too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import evaluate, parse_policy
from tests.policies.conformance import (
    SOLIDLAB_OPTIONS,
    policy_jsonld,
    solidlab_request,
    solidlab_state,
)

# Cases decided differently from the suite under the fail-closed defaults (expected).
DEFAULT_MODE_DEVIATIONS = {
    # permission without action: the suite reads it as "any action"; we grant nothing
    # (a prohibition without action, 004-006, covers everything in both readings)
    "testcase-001-alice",
    "testcase-002-bob",
    "testcase-003-bob-write-y",
    # duty with no recorded state: the suite reads it as "not yet due"; by default a
    # compensate duty is a precondition (W3C formal semantics)
    "testcase-059-nonset",
    "testcase-065-alice",
    # absent purpose with isNoneOf: the suite counts it satisfied; we count it unknown
    "testcase-076-noneOf-purpose-happy",
}


def _cases(shared: Path) -> list[tuple[str, Path, Path, Path, list]]:
    base = shared / "conformance" / "odrl" / "odrl-test-suite"
    out = []
    for case in json.loads((base / "manifest.json").read_text()):
        name = Path(case["file"]).stem
        data = base / "data"
        out.append(
            (
                name,
                data / case["policy"],
                data / case["request"],
                data / case["sotw"],
                case["expected_rules"],
            )
        )
    ext = shared / "conformance" / "odrl" / "odrl-test-suite-ext"
    for case in json.loads((ext / "manifest.json").read_text()):
        d = ext / case["dir"]
        out.append(
            (
                case["case"],
                d / "policy.ttl",
                d / "request.ttl",
                d / "sotw.ttl",
                case["expected_rules"],
            )
        )
    return out


def _decide(policy_path: Path, request_path: Path, sotw_path: Path, options: dict | None):
    policy = parse_policy(policy_jsonld(policy_path))
    request, time = solidlab_request(request_path)
    state = solidlab_state(sotw_path, time)
    types = request.pop("_types", None)
    if types:
        state["types"] = types
    return evaluate(policy, request, state, scope="usage", profile="odrl", options=options)


def _matches(decision, expected_rules: list) -> bool:
    # Our rule states are active / inactive / unknown; an unknown rule is not active
    # (fail closed), which is what the suite calls Inactive.
    states = {r.uid: r.active is True for r in decision.rules}
    for exp in expected_rules:
        if exp["rule"] not in states:
            return False
        if states[exp["rule"]] != (exp["activationState"] == "Active"):
            return False
    return True


def _score(shared: Path, options: dict | None) -> tuple[int, int, list[str]]:
    passed, failed = 0, []
    cases = _cases(shared)
    for name, pol, req, sotw, expected in cases:
        if _matches(_decide(pol, req, sotw, options), expected):
            passed += 1
        else:
            failed.append(name)
    return passed, len(cases), failed


def test_solidlab_suite_is_complete(shared_dir: Path) -> None:
    assert len(_cases(shared_dir)) == 83


def test_solidlab_score_with_suite_options(shared_dir: Path) -> None:
    passed, total, failed = _score(shared_dir, SOLIDLAB_OPTIONS)
    print(f"\nSolidLab ODRL suite (suite options): {passed}/{total}; not as expected: {failed}")
    assert failed == [], failed


def test_solidlab_score_with_fail_closed_defaults(shared_dir: Path) -> None:
    passed, total, failed = _score(shared_dir, None)
    print(f"\nSolidLab ODRL suite (defaults): {passed}/{total}; deliberate deviations: {failed}")
    assert set(failed) == DEFAULT_MODE_DEVIATIONS


@pytest.mark.parametrize("case", ["testcase-031-alice-read-x-past", "testcase-061-violated"])
def test_inactive_cases_never_permit(shared_dir: Path, case: str) -> None:
    for name, pol, req, sotw, _expected in _cases(shared_dir):
        if name == case:
            assert _decide(pol, req, sotw, None).permitted is False
