"""The pieces the connector component wires together, against a real store.

Policy checker (verified claims -> policies.evaluate, fail closed), the ledger hook
(agreements and transfer events commit with the state, or not at all), and the EDC <-> DSP
data address conversions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from connectors import tables as t
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.definitions import Asset, Classification
from connectors.dsp.negotiation import ContractNegotiationEntity
from connectors.dsp.outcome import Outcome
from connectors.dsp.policy import Caller
from connectors.dsp.store import ConnectorStore
from connectors.dsp.vocabulary import NegotiationState, PolicyScope, Role
from connectors.identity.trust import PeerClaims
from connectors.ledger_hook import LedgerRecorder, policy_hash
from connectors.management.processes import data_address_from, edr_json
from connectors.policy_checker import EnginePolicyChecker, caller_of, claims_of

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def peer(participant: str = "BPN-oem", role: str = "oem", region: str = "CN") -> PeerClaims:
    from connectors.identity.credentials import Role as CredRole

    return PeerClaims(caller_did=f"did:web:{participant}", participant_id=participant,
                      name=participant, role=CredRole(role), region=region,
                      credential_id="urn:cred:1", credential_issuer="did:web:authority",
                      credential_valid_until=2_000_000_000, token_id="jti",
                      token_expires_at=2_000_000_000, audience="did:web:provider")


@pytest.fixture
def store(migrated_engine):
    return ConnectorStore(migrated_engine, clock=clock)


def test_claims_come_from_the_verified_credential():
    caller = caller_of(peer())
    assert caller.participant_id == "BPN-oem"
    assert caller.claims == claims_of(peer())
    assert caller.claims["membership"] is True and caller.claims["role"] == ["oem"]
    assert caller.claims["region"] == "CN"


def test_checker_permits_the_assignee_and_denies_everyone_else(store):
    checker = EnginePolicyChecker(store, clock=clock)
    policy = {"permission": [{"action": "use", "assignee": "BPN-oem"}]}
    ok = checker(policy, scope=PolicyScope.CATALOG, caller=caller_of(peer()), context={})
    no = checker(policy, scope=PolicyScope.CATALOG, caller=caller_of(peer("BPN-x")), context={})
    assert ok.allowed and not no.allowed and no.reasons


def test_checker_reads_time_from_the_node_clock(store):
    checker = EnginePolicyChecker(store, clock=clock)
    before = {"permission": [{"action": "use", "constraint": [
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2026-01-01T00:00:00Z"}]}]}
    decision = checker(before, scope=PolicyScope.NEGOTIATION, caller=caller_of(peer()),
                       context={"dataset_id": "a"})
    assert not decision.allowed


def test_checker_fails_closed_on_unreadable_policies(store):
    checker = EnginePolicyChecker(store, clock=clock)
    decision = checker({"permission": "nonsense", "@context": "https://unknown.example/ctx"},
                       scope=PolicyScope.CATALOG, caller=caller_of(peer()), context={})
    assert not decision.allowed
    assert any("unknown.example" in r or "unreadable" in r for r in decision.reasons)


def test_cn_auto_profile_sees_the_assets_classification(store):
    with store.transaction() as tx:
        tx.create_asset(Asset(id="core-asset", classification=Classification.CORE,
                              home_region="CN"))
        tx.create_asset(Asset(id="general-asset", home_region="CN"))
    checker = EnginePolicyChecker(store, profile="cn-auto", clock=clock)
    policy = {"permission": [{"action": "use"}]}
    caller = Caller("BPN-oem", claims_of(peer(region="CN")))
    core = checker(policy, scope=PolicyScope.NEGOTIATION, caller=caller,
                   context={"dataset_id": "core-asset"})
    general = checker(policy, scope=PolicyScope.NEGOTIATION, caller=caller,
                      context={"dataset_id": "general-asset"})
    assert general.allowed, general.reasons
    assert not core.allowed  # core data never leaves the node outside federated compute


def test_checker_uses_the_asset_the_caller_read_and_only_for_that_dataset(store):
    """The provider's resolver hands over the asset it read in its transaction; the
    checker then needs no read of its own, and never applies it to another dataset."""
    with store.transaction() as tx:
        tx.create_asset(Asset(id="core-asset", classification=Classification.CORE,
                              home_region="CN"))
        general = Asset(id="general-asset", home_region="CN")
        tx.create_asset(general)
    checker = EnginePolicyChecker(store, profile="cn-auto", clock=clock)
    caller = Caller("BPN-oem", claims_of(peer(region="CN")))
    given = checker.request_for(PolicyScope.NEGOTIATION, caller,
                                {"dataset_id": "general-asset", "asset": general})
    read = checker.request_for(PolicyScope.NEGOTIATION, caller, {"dataset_id": "general-asset"})
    assert given == read and given["asset"] == {"classification": "general", "homeRegion": "CN"}
    policy = {"permission": [{"action": "use"}]}
    mismatched = checker(policy, scope=PolicyScope.NEGOTIATION, caller=caller,
                         context={"dataset_id": "core-asset", "asset": general})
    assert not mismatched.allowed  # the core asset was read, not the general one passed


def _negotiation(pid: str) -> ContractNegotiationEntity:
    return ContractNegotiationEntity(id=pid, role=Role.PROVIDER, state=NegotiationState.AGREED,
                                     counter_party_id="BPN-oem",
                                     counter_party_address="http://oem/protocol",
                                     created_at=NOW, updated_at=NOW, consumer_pid="c",
                                     provider_pid=pid, dataset_id="a")


def _agreement(aid: str, pid: str) -> ContractAgreement:
    return ContractAgreement(id=aid, negotiation_id=pid, provider_id="BPN-p",
                             consumer_id="BPN-oem", asset_id="a",
                             policy={"@id": aid, "@type": "Agreement", "target": "a",
                                     "permission": [{"action": "use"}]},
                             signed_at=NOW - timedelta(seconds=1))


def test_agreement_and_ledger_record_commit_together(migrated_engine):
    from ledger.log import Log

    recorder = LedgerRecorder("node.example/ledger", clock=clock)
    store = ConnectorStore(migrated_engine, clock=clock, hooks=(recorder,))
    agreement = _agreement("urn:agreement:1", "p1")
    with store.transaction() as tx:
        tx.apply(Outcome(_negotiation("p1"), agreement=agreement))
    with migrated_engine.connect() as conn:
        log = Log.open(conn, "node.example/ledger", create=False)
        entry = log.entry_by_record_id(conn, "urn:agreement:1")
    assert entry.record_type == "contract-agreement"
    assert policy_hash(agreement.policy) in entry.record_json


def test_a_failing_ledger_append_rolls_the_step_back(migrated_engine):
    def broken(conn, outcome, saved):
        raise RuntimeError("ledger unavailable")

    store = ConnectorStore(migrated_engine, clock=clock, hooks=(broken,))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.apply(Outcome(_negotiation("p2"), agreement=_agreement("urn:agreement:2", "p2")))
    with migrated_engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(t.contract_agreements)).scalar()
        assert count == 0
        assert conn.execute(select(t.contract_negotiations)).first() is None


def test_recorder_keeps_the_log_id_only_after_the_log_row_committed(migrated_engine):
    """The recorder looks the log up once per database; a step that created the log row
    and then rolled back must not leave it believing in a row that does not exist."""
    from ledger.log import Log

    recorder = LedgerRecorder("node.example/ledger", clock=clock)

    def then_fail(conn, outcome, saved):
        raise RuntimeError("later hook failed")

    failing = ConnectorStore(migrated_engine, clock=clock, hooks=(recorder, then_fail))
    with pytest.raises(RuntimeError), failing.transaction() as tx:
        tx.apply(Outcome(_negotiation("p3"), agreement=_agreement("urn:agreement:3", "p3")))
    store = ConnectorStore(migrated_engine, clock=clock, hooks=(recorder,))
    for n in (4, 5):
        with store.transaction() as tx:
            tx.apply(Outcome(replace(_negotiation(f"p{n}"), consumer_pid=f"c{n}"),
                             agreement=_agreement(f"urn:agreement:{n}", f"p{n}")))
    with migrated_engine.connect() as conn:
        log = Log.open(conn, "node.example/ledger", create=False)
        assert log.size(conn) == 2
        assert [log.entry_by_record_id(conn, f"urn:agreement:{n}").leaf_index
                for n in (4, 5)] == [0, 1]
    assert recorder._log_ids[migrated_engine] == log.log_id


def test_edc_data_destination_round_trips_through_the_dsp_data_address():
    edc = {"@type": "DataAddress", "type": "HttpData", "baseUrl": "https://oem/inbox",
           "authKey": "Authorization", "authCode": "secret"}
    dsp = data_address_from(edc)
    assert dsp is not None and dsp.endpoint == "https://oem/inbox"
    assert dsp.property("authCode") == "secret"
    back = edr_json(dsp.to_json())
    assert back["type"] == "HttpData" and back["endpoint"] == "https://oem/inbox"
    assert back["authKey"] == "Authorization"
