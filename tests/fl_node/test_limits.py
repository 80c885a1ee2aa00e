"""Agreement policy -> round limits: what is read, and everything that fails closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from federated.guard import RoundContext
from node.fl.limits import PolicyLimitError, expand, limits_from_policy
from policies.vocab import CN, ODRL

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def policy(*constraints, action="cn:federatedCompute", **extra):
    return {"@id": "urn:a", "permission": [{"action": action, "constraint": list(constraints)}],
            **extra}


PURPOSE = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "pq"}


def ctx(**kw):
    base = dict(participant_id="s", coordinator_id="c", task_id="t", round=1, asset="a",
                agreement="urn:a", purpose="pq", cohort_size=3, min_participants=3,
                secure_aggregation=True, dp=False, epsilon_spent=0.0,
                epsilon_after=float("inf"), delta=0.0)
    base.update(kw)
    return RoundContext(**base)


def test_expand_names():
    assert expand("cn:epsilon") == CN + "epsilon"
    assert expand("epsilon") == CN + "epsilon"
    assert expand("purpose") == ODRL + "purpose"
    assert expand({"@id": "odrl:use"}) == ODRL + "use"
    assert expand(CN + "x") == CN + "x"


def test_all_limits_are_read():
    p = policy(PURPOSE,
               {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": 4},
               {"leftOperand": "cn:secureAggregation", "operator": "eq", "rightOperand": True},
               {"and": [{"leftOperand": "cn:epsilon", "operator": "lteq",
                         "rightOperand": {"@value": "3.5"}}]},
               {"leftOperand": "dateTime", "operator": "gteq",
                "rightOperand": "2026-01-01T00:00:00Z"},
               {"leftOperand": "odrl:dateTime", "operator": "lt",
                "rightOperand": "2027-01-01T00:00:00+00:00"})
    limits = limits_from_policy(p, "urn:a")
    assert limits.min_cohort == 4 and limits.max_epsilon == 3.5
    assert limits.purposes == frozenset({"pq"}) and limits.agreement == "urn:a"
    assert limits.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    assert limits.not_after == datetime(2027, 1, 1, tzinfo=UTC)
    assert not limits.check(ctx(), NOW).allowed  # DP required by the epsilon budget
    assert limits.check(ctx(cohort_size=4, min_participants=4, dp=True, epsilon_after=2.0),
                        NOW).allowed
    refused = limits.check(ctx(cohort_size=4, min_participants=4, dp=True, epsilon_after=9.0,
                               purpose="other"), datetime(2028, 1, 1, tzinfo=UTC))
    text = "; ".join(refused.reasons)
    assert "epsilon budget exhausted" in text and "purpose 'other'" in text
    assert "expired" in text


def test_use_permission_covers_federated_compute():
    assert limits_from_policy(policy(PURPOSE, action="use"), "urn:a").min_cohort == 2


@pytest.mark.parametrize("doc, why", [
    (policy(PURPOSE, action="read"), "no permission for cn:federatedCompute"),
    ({**policy(PURPOSE), "prohibition": [{"action": "cn:federatedCompute"}]}, "prohibits"),
    (policy(), "names no purpose"),
    (policy(PURPOSE, {"leftOperand": "cn:region", "operator": "eq", "rightOperand": "CN"}),
     "cannot be enforced"),
    (policy(PURPOSE, {"or": [PURPOSE]}), "'or' constraint"),
    (policy(PURPOSE, {"leftOperand": "cn:cohortSize", "operator": "gteq",
                      "rightOperand": "many"}), "needs a number"),
    (policy(PURPOSE, {"leftOperand": "dateTime", "operator": "lt",
                      "rightOperand": "2027-01-01"}), "no time zone"),
    ({"permission": [{"action": "cn:federatedCompute", "constraint": [PURPOSE],
                      "duty": [{"action": "notify"}]}]}, "duties"),
])
def test_fails_closed(doc, why):
    with pytest.raises(PolicyLimitError, match=why):
        limits_from_policy(doc, "urn:a")
