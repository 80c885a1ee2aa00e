"""The parse cache keyed by a policy's terms: bound target and parties are exactly what a
full parse gives, different terms never share an entry, unsafe values are parsed whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import policies
from connectors.dsp.vocabulary import PolicyScope
from connectors.policy_checker import EnginePolicyChecker, policy_document
from connectors.policy_templates import PolicyTemplates
from policies.vocab import ODRL

CX = "https://w3id.org/catenax/2025/9/policy/context.jsonld"

POLICIES = [
    {"@id": "offer-1", "@type": "Offer", "permission": [{"action": "use"}]},
    {"@id": "offer-2", "@type": "Offer", "permission": [{"action": "use", "constraint": [
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2027-01-01T00:00:00Z"}]}],
     "prohibition": [{"action": "use", "constraint": [
         {"leftOperand": "spatial", "operator": "eq", "rightOperand": "US"}]}]},
    # a rule with its own target keeps it; its duty inherits the rule's
    {"@id": "offer-3", "@type": "Offer", "permission": [
        {"action": "use", "target": "other-asset",
         "duty": [{"action": "compensate"}]},
        {"action": "use", "duty": [{"action": "delete"}]}]},
    # the W3C ODRL context embedded, as EDC clients send it
    {"@context": "http://www.w3.org/ns/odrl.jsonld", "@id": "offer-4", "@type": "Offer",
     "permission": [{"action": "use", "constraint": [
         {"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"}]}]},
    # Catena-X context
    {"@context": CX, "@id": "offer-5", "@type": "Offer",
     "permission": [{"action": "use", "constraint": {"and": [
         {"leftOperand": "FrameworkAgreement", "operator": "eq",
          "rightOperand": "DataExchangeGovernance:1.0"},
         {"leftOperand": "UsagePurpose", "operator": "isAnyOf",
          "rightOperand": "cx.core.industrycore:1"}]}}]},
    {"@id": "agreement-1", "@type": "Agreement", "permission": [{"action": "use"}],
     "obligation": [{"action": "delete"}]},
]
VALUES = ["b-neg-00001", "asset-7", "urn:uuid:7f0c8c5e-1b2d-4c1a-9a57-0f2b5c1d3e4f",
          "did:web:supplier.example", "BPNL000000000001", "https://example.com/assets/7"]


def full(policy: dict) -> policies.Policy:
    return policies.parse_policy(policy_document(policy))


@pytest.mark.parametrize("terms", POLICIES, ids=lambda p: p["@id"])
def test_bound_policies_equal_a_full_parse(terms):
    templates = PolicyTemplates(policy_document)
    for i, value in enumerate(VALUES):
        policy = {**terms, "@id": f"urn:autospace:offer:Y2Q:{i}", "target": value,
                  "assigner": f"BPN-provider-{i}", "assignee": VALUES[-1 - i]}
        assert templates(policy) == full(policy), value
        partial = {**terms, "target": value}
        assert templates(partial) == full(partial), value
    assert templates.misses == 2  # one template per shape (with / without the parties)
    assert templates.hits == 2 * len(VALUES) - 2
    assert templates.bound == 2 * len(VALUES)  # every use was bound, none parsed whole


def test_a_cached_template_binds_each_uses_target_and_parties():
    templates = PolicyTemplates(policy_document)
    base = POLICIES[2]
    a = templates({**base, "target": "asset-a", "assigner": "BPN-p", "assignee": "BPN-c"})
    b = templates({**base, "target": "asset-b", "assigner": "BPN-q", "assignee": "BPN-d"})
    assert templates.hits == 1
    assert [t.iri for r in a.permissions for t in r.targets] == ["other-asset", "asset-a"]
    assert [t.iri for r in b.permissions for t in r.targets] == ["other-asset", "asset-b"]
    # the duty of the second permission inherits that permission's (bound) target
    assert b.permissions[1].duties[0].targets[0].iri == "asset-b"
    assert [p.iri for p in b.assigner] == ["BPN-q"] and [p.iri for p in b.assignee] == ["BPN-d"]
    assert [p.iri for p in b.permissions[1].assignees] == ["BPN-d"]
    c = templates({**base, "@id": "offer-c", "target": "asset-c"})
    assert c.uid == "offer-c" and c.permissions[1].targets[0].iri == "asset-c"
    assert a.compiled is not b.compiled  # compiled forms are per bound policy


def test_different_rules_never_share_an_entry():
    templates = PolicyTemplates(policy_document)
    eu = {"@id": "o", "@type": "Offer", "target": "x", "permission": [{"action": "use",
          "constraint": [{"leftOperand": "spatial", "operator": "eq", "rightOperand": "EU"}]}]}
    us = {**eu, "permission": [{"action": "use",
          "constraint": [{"leftOperand": "spatial", "operator": "eq", "rightOperand": "US"}]}]}
    prohibited = {**eu, "prohibition": eu["permission"], "permission": [{"action": "use"}]}
    agreement = {**eu, "@type": "Agreement"}
    context = {**eu, "@context": "http://www.w3.org/ns/odrl.jsonld"}
    variants = (eu, us, prohibited, agreement, context)
    got = [templates(p) for p in variants]
    assert templates.misses == len(variants) and templates.hits == 0
    assert all(g == full(p) for g, p in zip(got, variants, strict=True))
    assert len({repr(g) for g in got[:4]}) == 4  # (the ODRL context says the same as eu)
    # the same terms for another asset: one entry, bound to the new id and target
    again = templates({**us, "@id": "o2", "target": "y"})
    assert templates.hits == 1 and again.uid == "o2"
    assert again.permissions[0].targets[0].iri == "y"
    assert again.permissions[0].constraints == got[1].permissions[0].constraints


@pytest.mark.parametrize("value", [
    "use",            # a term of the DSP ODRL profile context
    "odrl:foo",       # a compact IRI: expanded by the context's prefix
    "offer-1",        # the policy's own @id: the node it names
    "@foo",           # keyword-like: JSON-LD drops it
    "",
    "two words",
    "_:b0",
    "BPN-p",          # the same as another bound value
])
def test_values_json_ld_would_rewrite_are_parsed_whole(value):
    templates = PolicyTemplates(policy_document)
    templates({**POLICIES[0], "target": "warm-up"})
    assert templates.bound == 1
    policy = {**POLICIES[0], "target": value, "assigner": "BPN-p"}
    try:
        expected = full(policy)
    except policies.PolicyError:
        with pytest.raises(policies.PolicyError):
            templates(policy)
        return
    assert templates(policy) == expected
    assert templates.bound == 1  # parsed whole, not bound


def test_odrl_compact_iri_target_keeps_its_expansion():
    templates = PolicyTemplates(policy_document)
    templates({**POLICIES[0], "target": "warm-up"})
    got = templates({**POLICIES[0], "target": "odrl:foo"})
    assert got.permissions[0].targets[0].iri == ODRL + "foo"


def test_a_context_that_rewrites_the_keys_is_never_bound():
    templates = PolicyTemplates(policy_document)
    vocab = {"@context": {"@vocab": "https://vocab.example/",
                          "target": {"@id": "odrl:target", "@type": "@vocab"}},
             "@id": "o", "@type": "Offer", "permission": [{"action": "use"}]}
    for value in ("a", "b"):
        policy = {**vocab, "target": value}
        got = templates(policy)
        assert got == full(policy)
        assert got.permissions[0].targets[0].iri == "https://vocab.example/" + value
    assert templates.bound == 0


def test_lists_and_objects_are_parsed_whole():
    templates = PolicyTemplates(policy_document)
    for policy in ({**POLICIES[0], "target": ["a", "b"]},
                   {**POLICIES[0], "target": {"@id": "a", "@type": "AssetCollection"}}):
        assert templates(policy) == full(policy)
    assert templates.misses == templates.hits == templates.bound == 0


def test_the_checker_decides_with_the_bound_assignee():
    from connectors.dsp.policy import Caller

    checker = EnginePolicyChecker(store=None, clock=lambda: datetime(2026, 5, 1, tzinfo=UTC))
    policy = {"@id": "o", "@type": "Offer", "permission": [{"action": "use"}]}
    for who in ("BPN-a", "BPN-b"):
        bound = {**policy, "assignee": who}
        ok = checker(bound, scope=PolicyScope.CATALOG, caller=Caller(who), context={})
        no = checker(bound, scope=PolicyScope.CATALOG, caller=Caller("BPN-x"), context={})
        assert ok.allowed and not no.allowed
    assert checker.templates.hits == 1
