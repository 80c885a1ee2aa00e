"""The policy checker on offers that permit only ``cn:federatedCompute``.

Negotiation asks for the action the offer grants, so a federated-compute offer can be agreed;
the round limits (cohort, secure aggregation, epsilon) are deferred to the owner's round
guard; nothing here lets the data be transferred.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.dsp.definitions import Asset, Classification
from connectors.dsp.policy import Caller
from connectors.dsp.store import ConnectorStore
from connectors.dsp.vocabulary import PolicyScope
from connectors.policy_checker import EnginePolicyChecker, offered_actions
from policies import parse_policy
from policies.vocab import CN
from tests.connector.test_wiring import peer

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
CALLER = Caller("BPN-oem", {"participantId": "BPN-oem", "membership": True, "region": "CN",
                            "role": ["oem"]})


def clock() -> datetime:
    return NOW


def fl_offer(action: str = "cn:federatedCompute", *, until: str = "2099-01-01T00:00:00Z",
             extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"@context": {"cn": CN}, "permission": [{"action": action, "constraint": [
        {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": 2},
        {"leftOperand": "cn:secureAggregation", "operator": "eq", "rightOperand": True},
        {"leftOperand": "cn:epsilon", "operator": "lteq", "rightOperand": 8.0},
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "predictive-quality"},
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": until},
        *(extra or []),
    ]}]}


@pytest.fixture(params=["odrl", "cn-auto"])
def checker(request, migrated_engine) -> EnginePolicyChecker:
    store = ConnectorStore(migrated_engine, clock=clock)
    with store.transaction() as tx:
        tx.create_asset(Asset(id="quality", classification=Classification.CORE,
                              home_region="CN"))
    return EnginePolicyChecker(store, profile=request.param, clock=clock)


def decide(checker: EnginePolicyChecker, policy: dict[str, Any], scope: PolicyScope) -> Any:
    return checker(policy, scope=scope, caller=CALLER, context={"dataset_id": "quality"})


def test_a_federated_compute_offer_can_be_negotiated(checker):
    decision = decide(checker, fl_offer(), PolicyScope.NEGOTIATION)
    assert decision.allowed, decision.reasons


def test_the_agreement_never_allows_a_transfer(checker):
    decision = checker(fl_offer(), scope=PolicyScope.TRANSFER, caller=CALLER,
                       context={"dataset_id": "quality"})
    assert not decision.allowed and decision.reasons


def test_negotiation_still_checks_what_it_can(checker):
    expired = decide(checker, fl_offer(until="2026-01-01T00:00:00Z"), PolicyScope.NEGOTIATION)
    assert not expired.allowed
    # an operand nobody knows is not deferred: it denies
    unknown = fl_offer(extra=[{"leftOperand": "cn:rounds", "operator": "lteq",
                               "rightOperand": 10}])
    assert not decide(checker, unknown, PolicyScope.NEGOTIATION).allowed
    # inside an "or" the round operands are not deferred either (fail closed)
    nested = {"@context": {"cn": CN}, "permission": [{"action": "cn:federatedCompute",
              "constraint": [{"or": [
                  {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": 2},
                  {"leftOperand": "cn:epsilon", "operator": "lteq", "rightOperand": 1}]}]}]}
    assert not decide(checker, nested, PolicyScope.NEGOTIATION).allowed


def test_negotiating_asks_for_every_action_the_offer_grants(checker):
    both = {"@context": {"cn": CN}, "permission": [
        {"action": "cn:federatedCompute"},
        {"action": "read", "assignee": "BPN-someone-else"}]}
    assert offered_actions(parse_policy(checker_doc(both))) == (
        CN + "federatedCompute", "http://www.w3.org/ns/odrl/2/read")
    assert not decide(checker, both, PolicyScope.NEGOTIATION).allowed


def test_use_offers_are_decided_on_use_as_before(migrated_engine):
    store = ConnectorStore(migrated_engine, clock=clock)
    with store.transaction() as tx:
        tx.create_asset(Asset(id="core", classification=Classification.CORE, home_region="CN"))
    cn = EnginePolicyChecker(store, profile="cn-auto", clock=clock)
    use = {"permission": [{"action": "use"}]}
    caller = Caller("BPN-oem", {"participantId": "BPN-oem", "region": peer().region})
    assert offered_actions(parse_policy(checker_doc(use))) == ("use",)
    # core data: a use offer is still refused (only federated computation may use it)
    assert not cn(use, scope=PolicyScope.NEGOTIATION, caller=caller,
                  context={"dataset_id": "core"}).allowed


def checker_doc(policy: dict[str, Any]) -> dict[str, Any]:
    from connectors.policy_checker import policy_document

    return policy_document(policy)
