"""Catena-X 2025-9: validation agrees with the profile's JSON Schemas; evaluation fails closed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft201909Validator
from referencing import Registry, Resource

from policies import evaluate, parse_policy, validate_policy
from policies.jsonld import CX_ODRL_CONTEXT_URL, CX_POLICY_CONTEXT_URL

CTX = [CX_ODRL_CONTEXT_URL, CX_POLICY_CONTEXT_URL]
BPN = "BPNL000000000001"
NOW = "2025-06-01T00:00:00Z"

USAGE = {
    "@context": CTX,
    "@type": "Set",
    "@id": "urn:cx:usage:1",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "and": [
                        {
                            "leftOperand": "FrameworkAgreement",
                            "operator": "eq",
                            "rightOperand": "DataExchangeGovernance:1.0",
                        },
                        {
                            "leftOperand": "UsagePurpose",
                            "operator": "isAnyOf",
                            "rightOperand": ["cx.pcf.base:1"],
                        },
                        {
                            "leftOperand": "DataUsageEndDurationDays",
                            "operator": "eq",
                            "rightOperand": "30",
                        },
                    ]
                }
            ],
        }
    ],
    "prohibition": [
        {
            "action": "use",
            "constraint": [
                {
                    "and": [
                        {
                            "leftOperand": "UsageRestriction",
                            "operator": "isAllOf",
                            "rightOperand": ["cx.thirdParty.forbidden:1"],
                        },
                    ]
                }
            ],
        }
    ],
}
ACCESS = {
    "@context": CTX,
    "@type": "Set",
    "@id": "urn:cx:access:1",
    "permission": [
        {
            "action": "access",
            "constraint": [
                {
                    "and": [
                        {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"},
                        {
                            "leftOperand": "BusinessPartnerNumber",
                            "operator": "isAnyOf",
                            "rightOperand": [BPN],
                        },
                    ]
                }
            ],
        }
    ],
}


def _and(doc: dict, rule: str = "permission") -> list:
    return doc[rule][0]["constraint"][0]["and"]


def _mutations() -> list[tuple[str, str, dict]]:
    out = []

    def mutate(name: str, kind: str, base: dict, fn) -> None:  # type: ignore[no-untyped-def]
        doc = copy.deepcopy(base)
        fn(doc)
        out.append((name, kind, doc))

    mutate(
        "wrong FrameworkAgreement value",
        "usage",
        USAGE,
        lambda d: _and(d)[0].update(rightOperand="DataExchangeGovernance:2.0"),
    )
    mutate("wrong operator", "usage", USAGE, lambda d: _and(d)[1].update(operator="eq"))
    mutate("empty purpose list", "usage", USAGE, lambda d: _and(d)[1].update(rightOperand=[]))
    mutate(
        "two usage ends",
        "usage",
        USAGE,
        lambda d: _and(d).append(
            {
                "leftOperand": "DataUsageEndDate",
                "operator": "eq",
                "rightOperand": "2026-01-01T00:00:00Z",
            }
        ),
    )
    mutate("days not a number", "usage", USAGE, lambda d: _and(d)[2].update(rightOperand="thirty"))
    mutate(
        "or instead of and",
        "usage",
        USAGE,
        lambda d: d["permission"][0]["constraint"][0].update(
            {"or": d["permission"][0]["constraint"][0].pop("and")}
        ),
    )
    mutate(
        "access operand in prohibition",
        "usage",
        USAGE,
        lambda d: _and(d, "prohibition").append(
            {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"}
        ),
    )
    mutate(
        "bad restriction",
        "usage",
        USAGE,
        lambda d: _and(d, "prohibition")[0].update(rightOperand=["cx.everything.allowed:1"]),
    )
    mutate("wrong action", "usage", USAGE, lambda d: d["permission"][0].update(action="access"))
    mutate("bad BPNL", "access", ACCESS, lambda d: _and(d)[1].update(rightOperand=["BPN123"]))
    mutate(
        "membership inactive",
        "access",
        ACCESS,
        lambda d: _and(d)[0].update(rightOperand="inactive"),
    )
    mutate(
        "usage operand in access policy",
        "access",
        ACCESS,
        lambda d: _and(d).append(
            {
                "leftOperand": "UsagePurpose",
                "operator": "isAnyOf",
                "rightOperand": ["cx.pcf.base:1"],
            }
        ),
    )
    mutate(
        "prohibition in access policy",
        "access",
        ACCESS,
        lambda d: d.update(
            prohibition=[
                {
                    "action": "use",
                    "constraint": [
                        {"leftOperand": "Membership", "operator": "eq", "rightOperand": "active"}
                    ],
                }
            ]
        ),
    )
    # rules only the profile text states (not expressible in the schema), so not compared there
    mutate("no FrameworkAgreement", "usage", USAGE, lambda d: _and(d).pop(0))
    return out


@pytest.fixture(scope="module")
def policy_schema(shared_dir: Path) -> Draft201909Validator:
    base = shared_dir / "spec" / "catenax-policy"
    resources = []
    for p in [*(base / "cx-policy").rglob("*.json"), base / "dspace" / "contract-schema.json"]:
        doc = json.loads(p.read_text())
        if "$id" in doc:
            resources.append((doc["$id"], Resource.from_contents(doc)))
    schema = json.loads((base / "cx-policy" / "schema" / "policy-schema.json").read_text())
    return Draft201909Validator(schema, registry=Registry().with_resources(resources))


def test_valid_policies_pass_schema_and_profile(policy_schema: Draft201909Validator) -> None:
    for doc, kind in ((USAGE, "usage"), (ACCESS, "access")):
        assert list(policy_schema.iter_errors(doc)) == []
        assert validate_policy(doc, "catenax", kind) == []


@pytest.mark.parametrize(("name", "kind", "doc"), _mutations(), ids=[m[0] for m in _mutations()])
def test_we_reject_whatever_the_schema_rejects(policy_schema, name, kind, doc) -> None:
    ours = validate_policy(doc, "catenax", kind)
    schema_errors = list(policy_schema.iter_errors(doc))
    assert ours, f"{name}: accepted by us"
    if name != "no FrameworkAgreement":
        assert schema_errors, f"{name}: the schema accepts it, so the mutation tests nothing"


def test_samples_agree_with_schema(shared_dir: Path, policy_schema) -> None:
    folder = shared_dir / "spec" / "catenax-policy" / "cx-odrl-profile" / "schema" / "samples"
    for sample in sorted(folder.glob("*policy*.json")):
        doc = json.loads(sample.read_text())
        kind = "access" if "access" in sample.name else "usage"
        schema_ok = not list(policy_schema.iter_errors(doc))
        ours_ok = not validate_policy(doc, "catenax", kind)
        assert ours_ok <= schema_ok, sample.name  # never laxer than the schema


def test_every_violation_is_listed() -> None:
    doc = copy.deepcopy(USAGE)
    _and(doc)[1].update(operator="eq")
    _and(doc)[2].update(rightOperand="0")
    problems = validate_policy(doc, "catenax", "usage")
    assert any("UsagePurpose allows operator isAnyOf" in p for p in problems)
    assert any("DataUsageEndDurationDays value '0'" in p for p in problems)


def _claims(**more) -> dict:
    return {
        "participantId": BPN,
        "membership": True,
        "frameworkAgreements": ["DataExchangeGovernance:1.0"],
        **more,
    }


def test_access_policy_in_catalog_scope() -> None:
    pol = parse_policy(ACCESS)
    ok = evaluate(
        pol,
        {"action": "use", "claims": _claims()},
        {"now": NOW},
        scope="catalog",
        profile="catenax",
    )
    assert ok.permitted
    other = evaluate(
        pol,
        {"action": "use", "claims": _claims(participantId="BPNL999999999999")},
        {"now": NOW},
        scope="catalog",
        profile="catenax",
    )
    assert not other.permitted
    no_claims = evaluate(pol, {"action": "use"}, {"now": NOW}, scope="catalog", profile="catenax")
    assert not no_claims.permitted


def test_usage_policy_permits_only_with_every_fact_known() -> None:
    pol = parse_policy(USAGE)
    request = {
        "assignee": BPN,
        "action": "use",
        "target": "urn:asset:1",
        "claims": _claims(),
        "context": {"UsagePurpose": ["cx.pcf.base:1"], "UsageRestriction": []},
    }
    state = {"now": NOW, "agreementStart": "2025-05-20T00:00:00Z"}
    assert evaluate(pol, request, state, profile="catenax").permitted
    late = dict(state, agreementStart="2025-04-01T00:00:00Z")  # the 30 days are over
    assert not evaluate(pol, request, late, profile="catenax").permitted
    no_start = {"now": NOW}
    assert not evaluate(pol, request, no_start, profile="catenax").permitted
    wrong_purpose = dict(
        request, context={"UsagePurpose": ["cx.quality.base:1"], "UsageRestriction": []}
    )
    assert not evaluate(pol, wrong_purpose, state, profile="catenax").permitted
    # the consumer did not say whether the use is restricted: the prohibition may apply
    silent = dict(request, context={"UsagePurpose": ["cx.pcf.base:1"]})
    assert not evaluate(pol, silent, state, profile="catenax").permitted
    third_party = dict(
        request,
        context={
            "UsagePurpose": ["cx.pcf.base:1"],
            "UsageRestriction": ["cx.thirdParty.forbidden:1"],
        },
    )
    assert not evaluate(pol, third_party, state, profile="catenax").permitted


def test_usage_operands_are_unknown_in_catalog_scope() -> None:
    d = evaluate(
        parse_policy(USAGE),
        {"action": "use", "claims": _claims(), "context": {"UsagePurpose": ["cx.pcf.base:1"]}},
        {"now": NOW},
        scope="catalog",
        profile="catenax",
    )
    assert not d.permitted
    assert "cannot be evaluated in scope catalog" in json.dumps(d.to_json())


def test_operand_outside_the_profile_is_never_satisfied() -> None:
    doc = copy.deepcopy(USAGE)
    _and(doc).append(
        {"leftOperand": "https://example.com/Mystery", "operator": "eq", "rightOperand": "x"}
    )
    request = {
        "action": "use",
        "claims": _claims(),
        "context": {
            "UsagePurpose": ["cx.pcf.base:1"],
            "UsageRestriction": [],
            "https://example.com/Mystery": "x",
        },
    }
    d = evaluate(parse_policy(doc), request, {"now": NOW, "agreementStart": NOW}, profile="catenax")
    assert not d.permitted and "not part of the catenax profile" in json.dumps(d.to_json())
