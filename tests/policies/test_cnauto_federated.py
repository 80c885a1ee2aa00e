"""cn-auto: the federated-round operands (cn:cohortSize, cn:secureAggregation, cn:epsilon).

They are usage-time operands: a round binds them (the owner's guard puts the round's values
in the request context); the catalog cannot evaluate them, and with no round in sight they
stay unknown, so a decision depending on them denies (fail closed).
"""

from __future__ import annotations

from typing import Any

import pytest

from policies import evaluate, get_profile, parse_policy, validate_policy
from policies.jsonld import ODRL_CONTEXT_URL
from policies.vocab import CN

NOW = "2026-06-01T00:00:00Z"


def offer(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "@context": [ODRL_CONTEXT_URL, {"cn": CN}],
        "@type": "Agreement",
        "uid": "urn:agr:fl",
        "assigner": "urn:party:supplier",
        "assignee": "urn:party:oem",
        "permission": [{
            "target": "urn:asset:quality",
            "action": "cn:federatedCompute",
            "constraint": [
                {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": 2},
                {"leftOperand": "cn:secureAggregation", "operator": "eq",
                 "rightOperand": True},
                {"leftOperand": "cn:epsilon", "operator": "lteq", "rightOperand": 8.0},
                *(extra or []),
            ],
        }],
    }


def round_request(action: str = "cn:federatedCompute", **context: Any) -> dict[str, Any]:
    return {
        "assignee": "urn:party:oem",
        "action": action,
        "target": "urn:asset:quality",
        "claims": {"region": "CN"},
        "asset": {"classification": "core", "homeRegion": "CN"},
        "context": {CN + k: v for k, v in context.items()},
    }


def decide(req: dict[str, Any], scope: str = "usage", pol: dict[str, Any] | None = None):
    return evaluate(parse_policy(pol or offer()), req, {"now": NOW}, scope=scope,
                    profile="cn-auto")


def test_the_operands_are_known_usage_time_operands() -> None:
    profile = get_profile("cn-auto")
    for name in ("cohortSize", "secureAggregation", "epsilon"):
        operand = profile.lookup(CN + name)
        assert operand is not None, name
        assert "catalog" not in operand.scopes and "usage" in operand.scopes
        assert operand.access is False  # not an access-policy condition
    assert validate_policy(offer(), profile="cn-auto", kind="usage") == []


def test_a_round_within_the_limits_is_permitted() -> None:
    d = decide(round_request(cohortSize=3, secureAggregation=True, epsilon=2.5))
    assert d.permitted, d.reason


@pytest.mark.parametrize(("context", "why"), [
    ({"cohortSize": 1, "secureAggregation": True, "epsilon": 1.0}, "cohort too small"),
    ({"cohortSize": 3, "secureAggregation": False, "epsilon": 1.0}, "no secure aggregation"),
    ({"cohortSize": 3, "secureAggregation": True, "epsilon": 9.5}, "epsilon over budget"),
    ({"secureAggregation": True, "epsilon": 1.0}, "cohort size not stated"),
])
def test_a_round_outside_the_limits_is_refused(context: dict[str, Any], why: str) -> None:
    assert not decide(round_request(**context)).permitted, why


def test_without_a_round_the_operands_are_unknown_and_deny() -> None:
    # the catalog cannot evaluate them at all; a transfer has no round to bind them
    assert not decide(round_request(), scope="catalog").permitted
    transfer = decide(round_request(action="use", cohortSize=3, secureAggregation=True,
                                    epsilon=1.0), scope="transfer.process")
    assert not transfer.permitted  # core data: only federated computation may use it


def test_federated_compute_does_not_grant_use() -> None:
    d = decide(round_request(action="use", cohortSize=3, secureAggregation=True, epsilon=1.0))
    assert not d.permitted


def test_an_unknown_cn_operand_still_denies() -> None:
    pol = offer([{"leftOperand": "cn:rounds", "operator": "lteq", "rightOperand": 10}])
    d = decide(round_request(cohortSize=3, secureAggregation=True, epsilon=1.0,
                             rounds=3), pol=pol)
    assert not d.permitted


def test_an_access_policy_checked_before_any_asset_is_left_to_the_policy() -> None:
    access = {"@context": ODRL_CONTEXT_URL, "@type": "Set",
              "permission": [{"action": "use", "assignee": "urn:party:oem"}]}
    seen = {"assignee": "urn:party:oem", "action": "use", "claims": {"region": "CN"}}
    assert decide(seen, scope="catalog", pol=access).permitted
    assert not decide({**seen, "assignee": "urn:party:x"}, scope="catalog", pol=access).permitted
    # with an asset named, a missing classification still denies
    assert not decide({**seen, "target": "urn:asset:quality", "asset": {"homeRegion": "CN"}},
                      scope="catalog", pol=access).permitted
