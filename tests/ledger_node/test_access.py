"""The entry access rule: parties per record type, auditors, and everything else refused."""

from __future__ import annotations

import pytest

from connectors.ledger_api.access import decide, record_parties

AGREEMENTS = {"agr-1": {"agreementId": "agr-1", "providerId": "BPN-P", "consumerId": "BPN-C"}}


def lookup(agreement_id: str):  # type: ignore[no-untyped-def]
    return AGREEMENTS.get(agreement_id)


@pytest.mark.parametrize(("record_type", "record", "expected"), [
    ("contract-agreement", {"agreementId": "agr-1", "providerId": "BPN-P",
                            "consumerId": "BPN-C"}, {"BPN-P", "BPN-C"}),
    ("transfer-event", {"transferId": "t", "agreementId": "agr-1"}, {"BPN-P", "BPN-C"}),
    ("transfer-event", {"transferId": "t", "agreementId": "agr-unknown"}, set()),
    ("data-use", {"agreementId": "agr-1", "consumerId": "BPN-X"}, {"BPN-P", "BPN-C", "BPN-X"}),
    ("fl-round", {"participants": ["BPN-A", "BPN-B", 7]}, {"BPN-A", "BPN-B"}),
    ("epcis-event", {"sourceList": [{"type": "owning_party", "source": "did:web:a"}],
                     "destinationList": [{"type": "owning_party", "destination": "did:web:b"},
                                         "junk"]}, {"did:web:a", "did:web:b"}),
    ("epcis-event", {"epcList": ["urn:epc:id:sgtin:1.2.3"]}, set()),
    ("some-future-type", {"providerId": "BPN-P"}, set()),
])
def test_parties_per_record_type(record_type, record, expected):
    assert record_parties(record_type, record, lookup) == frozenset(expected)


def test_party_by_participant_id_or_did():
    parties = frozenset({"BPN-C", "did:web:supplier"})
    assert decide(participant_id="BPN-C", did="did:web:x", role="supplier",
                  parties=parties).allowed
    assert decide(participant_id="BPN-Z", did="did:web:supplier", role="oem",
                  parties=parties).allowed


def test_non_party_is_refused_with_a_reason():
    d = decide(participant_id="BPN-Z", did="did:web:z", role="oem",
               parties=frozenset({"BPN-C"}))
    assert not d.allowed
    assert "parties" in d.reason


def test_nobody_but_auditors_for_records_without_parties():
    assert not decide(participant_id="", did="", role="supplier", parties=frozenset()).allowed
    assert decide(participant_id="BPN-AUD", did="did:web:aud", role="auditor",
                  parties=frozenset()).allowed


def test_unknown_role_grants_nothing():
    assert not decide(participant_id="BPN-Z", did="did:web:z", role="superuser",
                      parties=frozenset({"BPN-C"})).allowed
