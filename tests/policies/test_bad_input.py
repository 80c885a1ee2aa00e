"""Bad input: a clear error or a bounded-time decision; never an escaping exception,
never a permit. Includes hypothesis fuzzing."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import PolicyError, evaluate, parse_policy, validate_policy
from policies.jsonld import ODRL_CONTEXT_URL
from policies.parse import MAX_CONSTRAINTS, MAX_NESTING

CTX = ODRL_CONTEXT_URL
GOOD = {
    "@context": CTX,
    "@type": "Set",
    "uid": "urn:p",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ],
}
REQ = {"assignee": "urn:a", "action": "use", "target": "urn:t", "context": {"purpose": "research"}}


def with_constraints(constraints: list) -> dict:
    return {
        "@context": CTX,
        "@type": "Set",
        "uid": "urn:p",
        "permission": [{"action": "use", "constraint": constraints}],
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"@context": 5},
        {"@context": CTX, "@id": {"nested": True}, "permission": []},
        {"@context": {"@vocab": 7}, "permission": [{"action": "use"}]},
        {"@context": CTX, "@type": "Set"},
        {"@context": CTX, "@type": "Set", "permission": ["just a string"]},
        {
            "@context": CTX,
            "@type": "Set",
            "permission": [{"action": "use", "constraint": [{"operator": "eq"}]}],
        },
        [1, 2, 3],
        "a string",
        None,
        {"@context": CTX, "@type": ["Set", "Offer"], "permission": [{"action": {"@value": 5}}]},
    ],
)
def test_malformed_documents_are_policy_errors(doc) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert info.value.reasons and all(isinstance(r, str) and r for r in info.value.reasons)
    assert not evaluate(doc, REQ, {"now": "2025-01-01T00:00:00Z"}).permitted


def test_every_reason_is_listed() -> None:
    doc = with_constraints(
        [
            {"leftOperand": "purpose", "operator": "resembles", "rightOperand": "x"},
            {"leftOperand": "purpose", "operator": "eq"},
            {"operator": "eq", "rightOperand": "x"},
        ]
    )
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert len(info.value.reasons) == 3
    assert any("unknown operator" in r for r in info.value.reasons)


def test_unknown_left_operand_is_unknown_not_satisfied() -> None:
    doc = with_constraints(
        [{"leftOperand": "https://example.com/vibe", "operator": "eq", "rightOperand": "good"}]
    )
    assert not evaluate(doc, REQ, {}).permitted
    for profile in ("catenax", "cn-auto"):
        d = evaluate(
            doc, dict(REQ, context={"https://example.com/vibe": "good"}), {}, profile=profile
        )
        assert not d.permitted


def test_nesting_deeper_than_the_limit() -> None:
    node: dict = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
    for _ in range(MAX_NESTING + 5):
        node = {"and": [node]}
    with pytest.raises(PolicyError, match="nested deeper"):
        parse_policy(with_constraints([node]))


def test_pathologically_deep_json_is_an_error_not_a_crash() -> None:
    node: dict = {"x": 1}
    for _ in range(5000):
        node = {"y": node}
    doc = {"@context": CTX, "permission": [{"action": "use"}], "deep": node}
    with pytest.raises(PolicyError, match="deeper"):
        parse_policy(doc)
    assert not evaluate(doc, REQ, {}).permitted


def test_self_inheritance_is_cyclic() -> None:
    doc = dict(GOOD, inheritFrom="urn:p")
    with pytest.raises(PolicyError, match="cyclic"):
        parse_policy(doc, resolve=lambda uid: doc)


def test_ten_thousand_constraints_in_bounded_time() -> None:
    constraints = [
        {"leftOperand": "purpose", "operator": "neq", "rightOperand": f"p{i}"}
        for i in range(MAX_CONSTRAINTS - 1)
    ]
    constraints.append({"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"})
    start = time.perf_counter()
    policy = parse_policy(with_constraints(constraints))
    assert policy.constraint_count() == MAX_CONSTRAINTS
    decision = evaluate(policy, REQ, {})
    assert decision.permitted
    assert not evaluate(policy, dict(REQ, context={"purpose": "p7"}), {}).permitted
    assert time.perf_counter() - start < 60
    constraints.append({"leftOperand": "purpose", "operator": "eq", "rightOperand": "x"})
    with pytest.raises(PolicyError, match="more than"):
        parse_policy(with_constraints(constraints))


@pytest.mark.parametrize(
    ("constraint", "context"),
    [
        ({"leftOperand": "dateTime", "operator": "lt", "rightOperand": "banana"}, {}),
        ({"leftOperand": "count", "operator": "lteq", "rightOperand": "many"}, {}),
        (
            {"leftOperand": "purpose", "operator": "lt", "rightOperand": "research"},
            {"purpose": "a"},
        ),
        (
            {
                "leftOperand": "payAmount",
                "operator": "gt",
                "rightOperand": {"@value": "NaN", "@type": "xsd:decimal"},
            },
            {"payAmount": 3},
        ),
        ({"leftOperand": "payAmount", "operator": "gt", "rightOperand": 1}, {"payAmount": "lots"}),
        (
            {"leftOperand": "payAmount", "operator": "gt", "rightOperand": 1},
            {"payAmount": {"nested": [1]}},
        ),
        (
            {
                "leftOperand": "elapsedTime",
                "operator": "lt",
                "rightOperand": {"@value": "P", "@type": "xsd:duration"},
            },
            {},
        ),
    ],
)
def test_wrong_right_operand_types_deny_with_a_reason(constraint, context) -> None:
    doc = with_constraints([constraint])
    try:
        policy = parse_policy(doc)
    except PolicyError as exc:
        assert exc.reasons
        return
    d = evaluate(
        policy, dict(REQ, context=context), {"count": 0, "agreementStart": "2025-01-01T00:00:00Z"}
    )
    assert not d.permitted
    assert d.to_json()["rules"][0]["constraints"][0]["result"] == "unknown"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "@context",
                    "@id",
                    "@type",
                    "@value",
                    "@list",
                    "permission",
                    "prohibition",
                    "action",
                    "target",
                    "assignee",
                    "constraint",
                    "leftOperand",
                    "operator",
                    "rightOperand",
                    "and",
                    "or",
                    "xone",
                    "duty",
                    "uid",
                    "inheritFrom",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values, request=json_values)
def test_fuzz_garbage_never_raises_never_permits(doc, request) -> None:
    with contextlib.suppress(PolicyError):  # any other exception fails the test
        parse_policy(doc)
    d = evaluate(doc, request, request if isinstance(request, dict) else None)
    assert "internal error" not in d.reason, d.errors  # handled as bad input, not by luck
    # garbage requests cannot carry a valid action, so nothing can grant them
    if not (isinstance(request, dict) and isinstance(request.get("action"), str)):
        assert not d.permitted


good_requests = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["use", "read", "distribute", "sell", "odrl:use"]),
        "assignee": st.text(max_size=5) | st.none(),
        "context": st.dictionaries(
            st.sampled_from(["purpose", "dateTime", "count"]), json_values, max_size=3
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(request=good_requests)
def test_fuzz_requests_permit_only_when_the_constraint_holds(request) -> None:
    d = evaluate(GOOD, request, {"now": "2025-01-01T00:00:00Z"})
    expected = request["context"].get("purpose") == "research" and request["action"] in (
        "use",
        "read",
        "odrl:use",
    )
    assert d.permitted is expected


@settings(max_examples=200, deadline=None)
@given(
    right=json_values,
    op=st.sampled_from(
        ["eq", "neq", "lt", "gteq", "isAnyOf", "isAllOf", "isNoneOf", "isA", "hasPart", "isPartOf"]
    ),
    left=st.sampled_from(["purpose", "dateTime", "count", "payAmount", "elapsedTime", "spatial"]),
    value=json_values,
)
def test_fuzz_constraints_never_raise(right, op, left, value) -> None:
    doc = with_constraints([{"leftOperand": left, "operator": op, "rightOperand": right}])
    d = evaluate(doc, dict(REQ, context={left: value}), {"count": 1})
    assert d.errors == [] or not d.permitted
    assert "internal error" not in d.reason


def test_validate_lists_constraints_that_can_never_be_evaluated() -> None:
    doc = with_constraints(
        [
            {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "banana"},
            {"leftOperand": "purpose", "operator": "gt", "rightOperand": "research"},
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
        ]
    )
    problems = validate_policy(doc, "odrl")
    assert len(problems) == 2
    assert any("dateTime" in p for p in problems) and any("needs a number" in p for p in problems)
