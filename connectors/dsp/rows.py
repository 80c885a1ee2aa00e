"""Row <-> entity conversion for the connector tables (kept apart so the store reads as CRUD)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.definitions import (
    Asset,
    Classification,
    ContractDefinition,
    Criterion,
    PolicyDefinition,
)
from connectors.dsp.negotiation import ContractNegotiationEntity, ErrorDetail
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import NegotiationState, Role, TransferState


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def asset_values(a: Asset) -> dict[str, Any]:
    return {
        "id": a.id,
        "properties": a.properties,
        "private_properties": a.private_properties,
        "data_address": a.data_address,
        "classification": a.classification.value,
        "home_region": a.home_region,
    }


def asset_from_row(r: Any) -> Asset:
    return Asset(
        id=r.id,
        properties=r.properties,
        data_address=r.data_address,
        private_properties=r.private_properties,
        classification=Classification(r.classification),
        home_region=r.home_region,
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
        version=r.version,
    )


def policy_values(p: PolicyDefinition) -> dict[str, Any]:
    return {"id": p.id, "policy": p.policy, "private_properties": p.private_properties}


def policy_from_row(r: Any) -> PolicyDefinition:
    return PolicyDefinition(
        id=r.id,
        policy=r.policy,
        private_properties=r.private_properties,
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
        version=r.version,
    )


def contract_values(c: ContractDefinition) -> dict[str, Any]:
    return {
        "id": c.id,
        "access_policy_id": c.access_policy_id,
        "contract_policy_id": c.contract_policy_id,
        "assets_selector": [x.to_json() for x in c.assets_selector],
    }


def contract_from_row(r: Any) -> ContractDefinition:
    return ContractDefinition(
        id=r.id,
        access_policy_id=r.access_policy_id,
        contract_policy_id=r.contract_policy_id,
        assets_selector=tuple(Criterion.from_json(x) for x in r.assets_selector),
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),
        version=r.version,
    )


def negotiation_values(e: ContractNegotiationEntity) -> dict[str, Any]:
    return {
        "id": e.id,
        "role": e.role.value,
        "state": e.state.value,
        "counter_party_id": e.counter_party_id,
        "counter_party_address": e.counter_party_address,
        "consumer_pid": e.consumer_pid,
        "provider_pid": e.provider_pid,
        "dataset_id": e.dataset_id,
        "offer": e.offer,
        "contract_definition_id": e.contract_definition_id,
        "agreement_id": e.agreement_id,
        "error": None if e.error is None else e.error.to_json(),
        "extra": e.extra,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


def negotiation_from_row(r: Any) -> ContractNegotiationEntity:
    return ContractNegotiationEntity(
        id=r.id,
        role=Role(r.role),
        state=NegotiationState(r.state),
        counter_party_id=r.counter_party_id,
        counter_party_address=r.counter_party_address,
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),  # type: ignore[arg-type]
        consumer_pid=r.consumer_pid,
        provider_pid=r.provider_pid,
        dataset_id=r.dataset_id,
        offer=r.offer,
        contract_definition_id=r.contract_definition_id,
        agreement_id=r.agreement_id,
        error=ErrorDetail.from_json(r.error),
        version=r.version,
        extra=r.extra or {},
    )


def transfer_values(e: TransferProcessEntity) -> dict[str, Any]:
    return {
        "id": e.id,
        "role": e.role.value,
        "state": e.state.value,
        "counter_party_id": e.counter_party_id,
        "counter_party_address": e.counter_party_address,
        "consumer_pid": e.consumer_pid,
        "provider_pid": e.provider_pid,
        "agreement_id": e.agreement_id,
        "dataset_id": e.dataset_id,
        "format": e.format,
        "data_address": e.data_address,
        "error": None if e.error is None else e.error.to_json(),
        "extra": e.extra,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


def transfer_from_row(r: Any) -> TransferProcessEntity:
    return TransferProcessEntity(
        id=r.id,
        role=Role(r.role),
        state=TransferState(r.state),
        counter_party_id=r.counter_party_id,
        counter_party_address=r.counter_party_address,
        agreement_id=r.agreement_id,
        format=r.format,
        created_at=aware(r.created_at),
        updated_at=aware(r.updated_at),  # type: ignore[arg-type]
        consumer_pid=r.consumer_pid,
        provider_pid=r.provider_pid,
        dataset_id=r.dataset_id,
        data_address=r.data_address,
        error=ErrorDetail.from_json(r.error),
        version=r.version,
        extra=r.extra or {},
    )


def agreement_values(a: ContractAgreement) -> dict[str, Any]:
    return {
        "id": a.id,
        "negotiation_id": a.negotiation_id,
        "provider_id": a.provider_id,
        "consumer_id": a.consumer_id,
        "asset_id": a.asset_id,
        "policy": a.policy,
        "signed_at": a.signed_at,
    }


def agreement_from_row(r: Any) -> ContractAgreement:
    return ContractAgreement(
        id=r.id,
        negotiation_id=r.negotiation_id,
        provider_id=r.provider_id,
        consumer_id=r.consumer_id,
        asset_id=r.asset_id,
        policy=r.policy,
        signed_at=aware(r.signed_at),
    )  # type: ignore[arg-type]
