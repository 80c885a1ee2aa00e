"""Contract agreements: built by the provider, checked by the consumer, stored by both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.dsp.policy import PolicyNormaliser, policy_terms, same_terms
from connectors.dsp.timestamps import format_xsd_datetime, parse_xsd_datetime
from connectors.dsp.vocabulary import OdrlType


@dataclass(frozen=True, slots=True)
class ContractAgreement:
    """A finalised (or finalising) agreement as both sides store it.

    ``policy`` is the full ODRL Agreement exactly as sent in the ContractAgreementMessage,
    so its hash is the same on both sides (the ledger records that hash).
    """

    id: str
    negotiation_id: str
    provider_id: str
    consumer_id: str
    asset_id: str
    policy: dict[str, Any]
    signed_at: datetime


def build_agreement(
    terms_from: Mapping[str, Any],
    *,
    agreement_id: str,
    target: str,
    assigner: str,
    assignee: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """An ODRL Agreement carrying the terms of ``terms_from`` (an offer), naming both parties."""
    doc: dict[str, Any] = {
        "@id": agreement_id,
        "@type": OdrlType.AGREEMENT.value,
        "target": target,
        "assigner": assigner,
        "assignee": assignee,
        "timestamp": format_xsd_datetime(timestamp),
    }
    doc.update(policy_terms(terms_from))
    return doc


def agreement_problems(
    agreement: Mapping[str, Any],
    *,
    offer: Mapping[str, Any] | None,
    expected_target: str | None,
    provider_id: str,
    consumer_id: str,
    normaliser: PolicyNormaliser,
) -> list[str]:
    """Why ``agreement`` is not the one the consumer asked for (empty list: it is).

    Checks the parties (assigner is the provider we negotiate with, assignee is us), the
    target, a parseable timestamp, and that the terms equal the offer after normalisation.
    """
    problems = []
    if agreement.get("assigner") != provider_id:
        problems.append(
            f"agreement assigner {agreement.get('assigner')!r} is not the provider {provider_id!r}"
        )
    if agreement.get("assignee") != consumer_id:
        problems.append(
            f"agreement assignee {agreement.get('assignee')!r} is not the consumer {consumer_id!r}"
        )
    if expected_target is not None and agreement.get("target") != expected_target:
        problems.append(
            f"agreement target {agreement.get('target')!r} is not the dataset {expected_target!r}"
        )
    if parse_xsd_datetime(str(agreement.get("timestamp", ""))) is None:
        problems.append("agreement timestamp is not an xsd:dateTime")
    if offer is None:
        problems.append("no offer on record to compare the agreement with")
    elif not same_terms(offer, agreement, normaliser):
        problems.append("agreement terms differ from the offer after normalisation")
    return problems


def agreement_record(agreement: Mapping[str, Any], *, negotiation_id: str) -> ContractAgreement:
    """The stored form of a (validated) ODRL Agreement."""
    signed = parse_xsd_datetime(str(agreement["timestamp"]))
    if signed is None:
        raise ValueError("agreement timestamp is not an xsd:dateTime")
    return ContractAgreement(
        id=str(agreement["@id"]),
        negotiation_id=negotiation_id,
        provider_id=str(agreement["assigner"]),
        consumer_id=str(agreement["assignee"]),
        asset_id=str(agreement["target"]),
        policy=dict(agreement),
        signed_at=signed,
    )
