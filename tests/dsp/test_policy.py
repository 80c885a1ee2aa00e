"""Policy comparison after normalisation, contexts travelling with policies, agreements."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.dsp import messages as m
from connectors.dsp.agreement import agreement_problems, build_agreement
from connectors.dsp.policy import (
    PolicyDecision,
    check_policy,
    policy_terms,
    same_terms,
    structural_normaliser,
)
from connectors.dsp.vocabulary import DSP_CONTEXT_URL, PolicyScope
from tests.dsp.schemas import DSP_DIR, assert_valid

CX = "https://w3id.org/catenax/2025/9/policy/context.jsonld"
A = {
    "@id": "urn:o:1",
    "@type": "Offer",
    "target": "urn:ds",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"},
                {"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"},
            ],
        }
    ],
}
SAME = {
    "@id": "urn:agreement:9",
    "@type": "Agreement",
    "target": "urn:ds",
    "assigner": "p",
    "assignee": "c",
    "timestamp": "2026-01-01T00:00:00Z",
    "permission": [
        {
            "constraint": [
                {"operator": "odrl:eq", "rightOperand": "CN", "leftOperand": "spatial"},
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"},
            ],
            "action": {"@id": "use"},
        }
    ],
}
DIFFERENT = [
    {**A, "permission": [{"action": "use"}]},
    {
        **A,
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"},
                    {"leftOperand": "spatial", "operator": "eq", "rightOperand": "CN"},
                ],
            }
        ],
    },
    {**A, "prohibition": [{"action": "distribute"}]},
    {
        **A,
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "andSequence": [
                            {"leftOperand": "a", "operator": "eq", "rightOperand": "1"},
                            {"leftOperand": "b", "operator": "eq", "rightOperand": "2"},
                        ]
                    }
                ],
            }
        ],
    },
]


def test_structural_normaliser_ignores_identity_order_and_spelling() -> None:
    assert same_terms(A, SAME, structural_normaliser)
    for other in DIFFERENT:
        assert not same_terms(A, other, structural_normaliser), other


def test_and_sequence_keeps_its_order() -> None:
    seq = DIFFERENT[3]
    flipped = {
        **seq,
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "andSequence": list(
                            reversed(seq["permission"][0]["constraint"][0]["andSequence"])
                        )
                    }
                ],
            }
        ],
    }
    assert not same_terms(seq, flipped, structural_normaliser)


def test_a_failing_normaliser_means_different() -> None:
    def broken(policy):
        raise ValueError("unreadable")

    assert not same_terms(A, A, broken)


def test_engine_normaliser_agrees() -> None:
    policies = pytest.importorskip("policies")
    from connectors.dsp.policy import engine_normaliser

    try:
        assert same_terms(
            A,
            SAME
            | {
                "permission": [
                    {
                        **SAME["permission"][0],
                        "action": "use",
                        "constraint": [
                            {"operator": "eq", "rightOperand": "CN", "leftOperand": "spatial"},
                            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"},
                        ],
                    }
                ]
            },
            engine_normaliser,
        )
    except policies.PolicyError as exc:  # pragma: no cover - engine still being built
        pytest.skip(f"policy engine cannot read DSP compact policies yet: {exc}")
    for other in DIFFERENT[:3]:
        assert not same_terms(A, other, engine_normaliser)


def test_check_policy_fails_closed() -> None:
    def returns_none(policy, **kw):
        return None

    decision = check_policy(
        returns_none,
        A,
        scope=PolicyScope.NEGOTIATION,
        caller=None,  # type: ignore[arg-type]
        context={},
    )
    assert decision == PolicyDecision(False, ("policy evaluation returned no decision",))


def test_extra_contexts_travel_with_the_policy() -> None:
    offer = {
        **A,
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "cx-policy:FrameworkAgreement",
                        "operator": "eq",
                        "rightOperand": "DataExchangeGovernance:1.0",
                    }
                ],
            }
        ],
    }
    doc = m.ContractRequestMessage("urn:c", offer, callback_address="https://c").to_json()
    doc["@context"] = [DSP_CONTEXT_URL, CX]
    parsed = m.parse_message(doc)
    assert parsed.offer["@context"] == CX
    again = parsed.to_json()
    assert again["offer"]["@context"] == CX and again["@context"] == [DSP_CONTEXT_URL]
    if DSP_DIR.is_dir():
        assert_valid(again)
    # the terms keep the context, so an agreement built from them does too
    agreement = build_agreement(
        parsed.offer,
        agreement_id="urn:a",
        target="urn:ds",
        assigner="p",
        assignee="c",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert agreement["@context"] == CX and policy_terms(agreement)["@context"] == CX


def test_agreement_problems_lists_every_problem() -> None:
    agreement = build_agreement(
        A,
        agreement_id="urn:a",
        target="urn:ds",
        assigner="p",
        assignee="c",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    ok = agreement_problems(
        agreement,
        offer=A,
        expected_target="urn:ds",
        provider_id="p",
        consumer_id="c",
        normaliser=structural_normaliser,
    )
    assert ok == []
    bad = {**agreement, "assigner": "x", "assignee": "y", "target": "z", "timestamp": "no"}
    problems = agreement_problems(
        bad,
        offer=DIFFERENT[0],
        expected_target="urn:ds",
        provider_id="p",
        consumer_id="c",
        normaliser=structural_normaliser,
    )
    assert len(problems) == 5
    assert agreement_problems(
        agreement,
        offer=None,
        expected_target=None,
        provider_id="p",
        consumer_id="c",
        normaliser=structural_normaliser,
    ) == ["no offer on record to compare the agreement with"]
