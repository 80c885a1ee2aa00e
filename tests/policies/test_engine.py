"""Deciding: operators, three-valued logic, rules, conflicts, duties, profiles."""

from __future__ import annotations

import pytest

from policies import PolicyError, evaluate, normalize, parse_policy
from policies.jsonld import ODRL_CONTEXT_URL

CTX = ODRL_CONTEXT_URL
NOW = "2025-06-01T12:00:00Z"


def policy(*permissions, prohibitions=(), obligations=(), **top):
    doc = {"@context": CTX, "@type": "Set", "uid": "urn:policy:1", **top}
    if permissions:
        doc["permission"] = list(permissions)
    if prohibitions:
        doc["prohibition"] = list(prohibitions)
    if obligations:
        doc["obligation"] = list(obligations)
    return doc


def perm(action="use", constraint=None, uid="urn:rule:p", **more):
    rule = {"uid": uid, "action": action, **more}
    if constraint is not None:
        rule["constraint"] = constraint if isinstance(constraint, list) else [constraint]
    return rule


def c(left, op, right, **more):
    return {"leftOperand": left, "operator": op, "rightOperand": right, **more}


def req(action="use", **more):
    return {"assignee": "urn:party:alice", "action": action, "target": "urn:asset:x", **more}


def decide(pol, request=None, state=None, **kw):
    return evaluate(parse_policy(pol), request or req(), {"now": NOW, **(state or {})}, **kw)


@pytest.mark.parametrize(
    ("constraint", "permitted"),
    [
        (c("dateTime", "lt", {"@value": "2026-01-01", "@type": "xsd:date"}), True),
        (c("dateTime", "gt", {"@value": "2026-01-01", "@type": "xsd:date"}), False),
        (
            c("dateTime", "lteq", "2025-06-01T12:00:00Z"),
            True,
        ),  # untyped: read as the operand's type
        (
            c("dateTime", "eq", {"@value": "2025-06-01T14:00:00+02:00", "@type": "xsd:dateTime"}),
            True,
        ),
        (c("dateTime", "lt", "not a date"), False),
    ],
)
def test_typed_datetime_comparison(constraint, permitted) -> None:
    assert decide(policy(perm(constraint=constraint))).permitted is permitted


def test_decimal_integer_and_duration_comparisons() -> None:
    pay = policy(
        perm(constraint=c("payAmount", "gteq", {"@value": "5.00", "@type": "xsd:decimal"}))
    )
    # what was paid is recorded by the node; the requester's word does not count
    assert decide(pay, state={"recorded": {"payAmount": "5"}}).permitted
    assert not decide(pay, state={"recorded": {"payAmount": 4.99}}).permitted
    assert not decide(pay, req(context={"payAmount": "5"})).permitted
    count = policy(perm(constraint=c("count", "lteq", {"@value": "3", "@type": "xsd:integer"})))
    assert decide(count, state={"count": 2}).permitted  # this use is the third
    assert not decide(count, state={"count": 3}).permitted
    assert not decide(count).permitted  # no counter known: unknown, not satisfied
    elapsed = policy(
        perm(constraint=c("elapsedTime", "lteq", {"@value": "P30D", "@type": "xsd:duration"}))
    )
    assert decide(elapsed, state={"agreementStart": "2025-05-10T00:00:00Z"}).permitted
    assert not decide(elapsed, state={"agreementStart": "2025-04-01T00:00:00Z"}).permitted


def test_unknown_left_operand_value_never_satisfies_a_permission() -> None:
    pol = policy(perm(constraint=c("purpose", "eq", "research")))
    d = decide(pol)
    assert not d.permitted
    rendered = d.to_json()["rules"][0]["constraints"][0]
    assert rendered["result"] == "unknown" and rendered["leftValue"] is None
    assert "could not be evaluated" in d.reason


def test_missing_operand_and_negative_operators_is_an_option() -> None:
    pol = policy(perm(constraint=c("purpose", "isNoneOf", ["marketing", "resale"])))
    assert not decide(pol).permitted
    assert decide(pol, options={"missing_satisfies_negative": True}).permitted
    assert not decide(
        pol, req(context={"purpose": "resale"}), options={"missing_satisfies_negative": True}
    ).permitted


def test_set_operators() -> None:
    any_of = policy(perm(constraint=c("purpose", "isAnyOf", ["a", "b"])))
    assert decide(any_of, req(context={"purpose": "b"})).permitted
    all_of = policy(perm(constraint=c("purpose", "isAllOf", ["a", "b"])))
    assert decide(all_of, req(context={"purpose": ["a", "b", "c"]})).permitted
    assert not decide(all_of, req(context={"purpose": ["a"]})).permitted
    part = policy(perm(constraint=c("spatial", "isPartOf", {"@id": "urn:region:eu"})))
    state = {"memberships": {"urn:region:de": ["urn:region:eu"]}}
    assert decide(part, req(context={"spatial": "urn:region:de"}), state).permitted
    assert not decide(part, req(context={"spatial": "urn:region:us"}), state).permitted
    is_a = policy(perm(constraint=c("purpose", "isA", {"@id": "urn:purpose:Research"})))
    types = {"types": {"urn:p:1": ["urn:purpose:Research"]}}
    assert decide(is_a, req(context={"purpose": "urn:p:1"}), types).permitted


def test_logical_constraints_keep_order_and_three_values() -> None:
    either = policy(perm(constraint={"or": [c("purpose", "eq", "a"), c("purpose", "eq", "b")]}))
    assert decide(either, req(context={"purpose": "b"})).permitted
    xone = policy(
        perm(constraint={"xone": [c("purpose", "isAnyOf", ["a", "b"]), c("purpose", "eq", "b")]})
    )
    assert not decide(xone, req(context={"purpose": "b"})).permitted  # both hold
    assert decide(xone, req(context={"purpose": "a"})).permitted
    seq = policy(
        perm(
            constraint={
                "andSequence": [
                    c("purpose", "eq", "x"),
                    c("dateTime", "lt", "2030-01-01T00:00:00Z"),
                ]
            }
        )
    )
    d = decide(seq, req(context={"purpose": "y"}))
    logical = d.to_json()["rules"][0]["constraints"][0]
    assert not d.permitted and len(logical["constraints"]) == 1  # stopped at the first failure
    nested = policy(
        perm(
            constraint={
                "and": [
                    {"or": [c("purpose", "eq", "a"), c("purpose", "eq", "b")]},
                    c("dateTime", "lt", "2030-01-01T00:00:00Z"),
                ]
            }
        )
    )
    assert decide(nested, req(context={"purpose": "a"})).permitted


def test_action_hierarchy() -> None:
    assert decide(policy(perm("use")), req("read")).permitted  # read is included in use
    assert not decide(policy(perm("read")), req("use")).permitted
    assert not decide(policy(perm("use")), req("sell")).permitted  # sell is included in transfer
    assert decide(policy(perm("transfer")), req("sell")).permitted
    assert decide(
        policy(perm("use")), req("http://www.w3.org/ns/odrl/2/write")
    ).permitted  # deprecated -> modify


def test_targets_parties_and_collections() -> None:
    pol = policy(perm(target="urn:collection:c", assignee="urn:group:g"))
    state = {
        "memberships": {"urn:asset:x": ["urn:collection:c"], "urn:party:alice": ["urn:group:g"]}
    }
    assert decide(pol, state=state).permitted
    assert not decide(pol).permitted
    assert not decide(pol, req(assignee="urn:party:bob"), state).permitted


def test_policy_level_properties_are_pushed_down() -> None:
    pol = policy(
        {"uid": "urn:rule:p"}, target="urn:asset:x", action="read", assignee="urn:party:alice"
    )
    assert decide(pol, req("read")).permitted
    assert not decide(pol, req("read", target="urn:asset:y")).permitted
    assert not decide(pol, req("modify")).permitted


@pytest.mark.parametrize(
    ("strategy", "permitted"), [("perm", True), ("prohibit", False), (None, False)]
)
def test_conflict_strategies(strategy, permitted) -> None:
    extra = {"conflict": strategy} if strategy else {}
    pol = policy(perm("use"), prohibitions=[{"uid": "urn:rule:q", "action": "read"}], **extra)
    d = decide(pol, req("read"))
    assert d.permitted is permitted
    if strategy is None:
        assert "invalid" in d.reason


def test_prohibition_with_unknown_constraint_counts_as_applying() -> None:
    pol = policy(
        perm("use"),
        prohibitions=[
            {
                "uid": "urn:rule:q",
                "action": "use",
                "constraint": [c("recipient", "eq", "urn:party:evil")],
            }
        ],
        conflict="prohibit",
    )
    assert not decide(pol).permitted
    assert decide(pol, req(context={"recipient": "urn:party:good"})).permitted


def test_inherit_from() -> None:
    parent = policy(perm("use", uid="urn:rule:parent"), uid="urn:policy:parent")
    child = policy(
        prohibitions=[{"uid": "urn:rule:child", "action": "distribute"}],
        uid="urn:policy:child",
        inheritFrom="urn:policy:parent",
        conflict="perm",
    )
    store = {"urn:policy:parent": parent}
    parsed = parse_policy(child, resolve=store.get)
    assert [r.uid for r in parsed.permissions] == ["urn:rule:parent"]
    assert evaluate(parsed, req("read"), {"now": NOW}).permitted
    with pytest.raises(PolicyError, match="cannot be resolved"):
        parse_policy(child)
    cyclic = {
        "urn:policy:parent": policy(
            perm(), uid="urn:policy:parent", inheritFrom="urn:policy:child"
        ),
        "urn:policy:child": child,
    }
    with pytest.raises(PolicyError, match="cyclic inheritFrom"):
        parse_policy(child, resolve=cyclic.get)


def test_duties() -> None:
    inform = policy(perm(duty=[{"uid": "urn:duty:inform", "action": "inform"}]))
    d = decide(inform)
    assert d.permitted and d.obligations[0]["duty"] == "urn:duty:inform"
    pay = policy(perm(duty=[{"uid": "urn:duty:pay", "action": "compensate"}]))
    assert not decide(pay).permitted  # a precondition not yet met
    assert decide(pay, state={"duties": {"urn:duty:pay": "fulfilled"}}).permitted
    assert decide(pay, options={"unset_duty": "obligation"}).permitted
    assert not decide(inform, state={"duties": {"urn:duty:inform": "violated"}}).permitted
    delete = policy(
        perm(
            duty=[
                {
                    "uid": "urn:duty:del",
                    "action": "delete",
                    "constraint": [c("dateTime", "lteq", "2025-05-01T00:00:00Z")],
                }
            ]
        )
    )
    # the deletion deadline has passed and no attestation is recorded: no more use
    assert not decide(delete, state={"duties": {"urn:duty:del": "pending"}}).permitted
    log = policy(
        perm(duty=[{"uid": "urn:duty:log", "action": "https://w3id.org/autospace/policy/log"}])
    )
    d = decide(log)
    assert d.permitted and d.events and d.events[0]["type"] == "policy.use"
    assert d.events[0]["assignee"] == "urn:party:alice"


def test_duty_whose_constraint_does_not_hold_is_not_in_force() -> None:
    pol = policy(
        perm(
            duty=[
                {
                    "uid": "urn:duty:pay",
                    "action": "compensate",
                    "constraint": [c("purpose", "eq", "commercial")],
                }
            ]
        )
    )
    assert decide(pol, req(context={"purpose": "research"})).permitted
    assert not decide(pol, req(context={"purpose": "commercial"})).permitted


def test_top_level_obligation_violated_denies() -> None:
    pol = policy(
        perm(), obligations=[{"uid": "urn:ob:1", "action": "delete", "assignee": "urn:party:alice"}]
    )
    assert decide(pol).permitted
    assert not decide(pol, state={"duties": {"urn:ob:1": "violated"}}).permitted


def test_scope_and_profile_errors_are_denials() -> None:
    pol = policy(perm())
    assert not decide(pol, scope="nowhere").permitted
    assert not evaluate(parse_policy(pol), req(), {"now": NOW}, profile="nope").permitted
    assert not evaluate(parse_policy(pol), {"action": 3}, {"now": NOW}).permitted


def test_explanation_tree_has_every_constraint() -> None:
    pol = policy(
        perm(
            constraint=[c("purpose", "eq", "research"), c("dateTime", "lt", "2030-01-01T00:00:00Z")]
        )
    )
    d = decide(pol, req(context={"purpose": "research"}))
    out = d.to_json()
    assert out["decision"] == "permit" and out["rules"][0]["state"] == "active"
    cons = out["rules"][0]["constraints"]
    assert [x["leftOperand"] for x in cons] == ["odrl:purpose", "odrl:dateTime"]
    assert cons[1]["leftValue"] == NOW and cons[1]["result"] == "satisfied"
    assert "PERMIT" in d.to_text()


def test_normalize_compares_offer_and_agreement_by_meaning() -> None:
    offer = {
        "@context": CTX,
        "@type": "Offer",
        "uid": "urn:offer:1",
        "assigner": "urn:p:prov",
        "permission": [
            {
                "target": "urn:asset:x",
                "action": "use",
                "constraint": [
                    {
                        "and": [
                            c("purpose", "isAnyOf", ["b", "a"]),
                            c("dateTime", "lt", "2030-01-01T00:00:00Z"),
                        ]
                    }
                ],
            }
        ],
    }
    agreement = {
        "@context": {"@vocab": "http://www.w3.org/ns/odrl/2/"},
        "@type": "Agreement",
        "@id": "urn:agreement:9",
        "assigner": {"@id": "urn:p:prov"},
        "assignee": {"@id": "urn:p:cons"},
        "permission": [
            {
                "target": {"@id": "urn:asset:x"},
                "action": {"@id": "http://www.w3.org/ns/odrl/2/use"},
                "constraint": [
                    {
                        "leftOperand": {"@id": "http://www.w3.org/ns/odrl/2/dateTime"},
                        "operator": {"@id": "http://www.w3.org/ns/odrl/2/lt"},
                        "rightOperand": {
                            "@value": "2030-01-01T01:00:00+01:00",
                            "@type": "http://www.w3.org/2001/XMLSchema#dateTime",
                        },
                    },
                    {
                        "leftOperand": {"@id": "http://www.w3.org/ns/odrl/2/purpose"},
                        "operator": {"@id": "http://www.w3.org/ns/odrl/2/isAnyOf"},
                        "rightOperand": ["a", "b"],
                    },
                ],
            }
        ],
    }
    assert normalize(parse_policy(offer)) == normalize(parse_policy(agreement))
    changed = dict(offer, permission=[dict(offer["permission"][0], action="read")])
    assert normalize(parse_policy(changed)) != normalize(parse_policy(agreement))


def test_violated_duty_is_made_good_by_its_consequences() -> None:
    pol = policy(
        perm(
            duty=[
                {
                    "uid": "urn:duty:attr",
                    "action": "attribute",
                    "consequence": [{"uid": "urn:duty:pay", "action": "compensate"}],
                }
            ]
        )
    )
    violated = {"duties": {"urn:duty:attr": "violated"}}
    d = decide(pol, state=violated)
    assert not d.permitted
    assert "urn:duty:pay" in d.to_json()["rules"][0]["duties"][0]["note"]
    fixed = {"duties": {"urn:duty:attr": "violated", "urn:duty:pay": "fulfilled"}}
    assert decide(pol, state=fixed).permitted


def test_unmet_names_the_constraints_that_kept_permissions_from_granting() -> None:
    until = c("dateTime", "lt", "2030-01-01T00:00:00Z")
    either = {"or": [c("spatial", "eq", "DE"), c("purpose", "eq", "ads")]}
    pol = policy(
        perm(constraint=[c("purpose", "eq", "research"), until]),
        perm(uid="urn:rule:q", constraint=either),
    )
    wrong = decide(pol, req(context={"purpose": "marketing"}))
    assert not wrong.permitted
    unmet = wrong.unmet()
    assert "purpose eq research does not hold (it is marketing)" in unmet
    assert "purpose eq ads does not hold (it is marketing)" in unmet
    assert any(u.startswith("spatial is not known") for u in unmet)
    assert not any("dateTime" in u for u in unmet)  # it held: not named
    assert decide(pol, req(context={"purpose": "research"})).unmet() == []
    count = policy(perm(constraint=c("count", "lteq", {"@value": "3", "@type": "xsd:integer"})))
    assert decide(count, state={"count": 3}).unmet() == ["count lteq 3 does not hold (it is 4)"]
