"""Who may read a logged record (its value and salt): the parties to it, and auditors.

Checkpoints and proofs are public; the entries behind them are not, because a record plus
its salt lets anyone confirm the leaf. The rule, decided from the record's own fields:

| record type | parties |
|---|---|
| ``contract-agreement`` | ``providerId``, ``consumerId`` |
| ``data-use`` | ``consumerId``, plus the parties of the agreement ``agreementId`` |
| ``transfer-event`` | the parties of the agreement ``agreementId`` |
| ``fl-round`` | every id in ``participants`` |
| ``epcis-event`` | every ``source`` / ``destination`` of ``sourceList`` / ``destinationList`` |

"The agreement" is the ``contract-agreement`` entry logged with record id = its
``agreementId`` (the convention every appender follows); when it is not in this log,
the record has no agreement parties. A caller matches a party when its verified
participant id or DID equals the party value. Peers holding the ``auditor`` role may
read every entry. Anything else — unknown record types included — is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.identity.credentials import Role
from ledger.records import CONTRACT_AGREEMENT, DATA_USE, EPCIS_EVENT, FL_ROUND, TRANSFER_EVENT

#: Looks up the value of the contract-agreement record with this agreement id (or None).
AgreementLookup = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class AccessDecision:
    """Whether a caller may read an entry, and why (for the problem document and logs)."""

    allowed: bool
    reason: str


def _strings(values: Any) -> set[str]:
    if not isinstance(values, list):
        return set()
    return {v for v in values if isinstance(v, str) and v}


def _agreement_parties(agreement_id: Any, lookup: AgreementLookup) -> set[str]:
    if not isinstance(agreement_id, str):
        return set()
    agreement = lookup(agreement_id)
    if agreement is None:
        return set()
    return {v for v in (agreement.get("providerId"), agreement.get("consumerId"))
            if isinstance(v, str) and v}


def record_parties(record_type: str, record: Mapping[str, Any],
                   lookup: AgreementLookup) -> frozenset[str]:
    """Participant ids / DIDs that are party to ``record`` (empty: nobody but auditors)."""
    parties: set[str] = set()
    if record_type == CONTRACT_AGREEMENT:
        parties |= {v for v in (record.get("providerId"), record.get("consumerId"))
                    if isinstance(v, str) and v}
    elif record_type == DATA_USE:
        if isinstance(record.get("consumerId"), str) and record["consumerId"]:
            parties.add(record["consumerId"])
        parties |= _agreement_parties(record.get("agreementId"), lookup)
    elif record_type == TRANSFER_EVENT:
        parties |= _agreement_parties(record.get("agreementId"), lookup)
    elif record_type == FL_ROUND:
        parties |= _strings(record.get("participants"))
    elif record_type == EPCIS_EVENT:
        for key, member in (("sourceList", "source"), ("destinationList", "destination")):
            items = record.get(key)
            for item in items if isinstance(items, list) else ():
                value = item.get(member) if isinstance(item, Mapping) else None
                if isinstance(value, str) and value:
                    parties.add(value)
    return frozenset(parties)


def decide(*, participant_id: str, did: str, role: Role | str,
           parties: frozenset[str]) -> AccessDecision:
    """May this verified caller read an entry whose parties are ``parties``? Fails closed."""
    try:
        auditor = Role(role) is Role.AUDITOR
    except ValueError:  # an unknown role grants nothing
        auditor = False
    if auditor:
        return AccessDecision(True, "caller holds the auditor role")
    if participant_id and participant_id in parties:
        return AccessDecision(True, f"caller {participant_id} is a party to the record")
    if did and did in parties:
        return AccessDecision(True, f"caller {did} is a party to the record")
    return AccessDecision(False, "only the parties to a record and auditors may read its entry")
