"""``/management/v3/assets``, ``/policydefinitions``, ``/contractdefinitions`` (EDC v3).

What a provider publishes. Assets carry the cn-auto ``classification``
(``general``/``important``/``core``, or 一般/重要/核心) and ``homeRegion`` as ordinary
properties; they are kept in their own columns so asset selectors and the policy engine
can use them. Policies are stored as compact DSP ODRL terms and validated with
``policies.validate_policy`` for the node's profile: an access policy (referenced as
``accessPolicyId``) by the access rules, a contract policy by the usage rules.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

import policies
from connectors.dsp.definitions import Asset, Classification, ContractDefinition, PolicyDefinition
from connectors.management import edc
from connectors.management.common import (
    IdResponseSchema,
    JsonLdSchema,
    QuerySpecSchema,
    body,
    guarded,
    no_content,
    request_body,
    respond,
)
from connectors.runtime import ConnectorRuntime

CLASSIFICATION_NAMES = {"一般": "general", "重要": "important", "核心": "core"}
CN_NS = "https://w3id.org/autospace/cn-auto/"
_RESERVED_PROPS = ("id", "classification", "homeRegion", CN_NS + "classification",
                   CN_NS + "homeRegion")


# ------------------------------------------------------------------------------- assets


def asset_from_body(doc: Any, *, asset_id: str | None = None) -> Asset:
    simple, _ = edc.read(doc, "Asset")
    ident = simple.get("@id") or asset_id or str(uuid.uuid4())
    if asset_id is not None and ident != asset_id:
        edc.bad_request("the @id in the body differs from the id in the path", path="@id",
                        invalid=ident)
    props = simple.get("properties") or {}
    if not isinstance(props, dict):
        edc.bad_request("properties must be an object", path="properties", invalid=props)
    private = simple.get("privateProperties") or {}
    address = simple.get("dataAddress")
    if not isinstance(address, dict):
        edc.bad_request("an asset needs a dataAddress object with a type", path="dataAddress",
                        invalid=address)
    address = {k: v for k, v in address.items() if k != "@type"}
    if not isinstance(address.get("type"), str):
        edc.bad_request("dataAddress.type is required (e.g. HttpData)",
                        path="dataAddress.type", invalid=address.get("type"))
    raw_class = props.get("classification", props.get(CN_NS + "classification", "general"))
    raw_class = CLASSIFICATION_NAMES.get(str(raw_class), str(raw_class))
    try:
        classification = Classification(raw_class)
    except ValueError:
        edc.bad_request("classification must be general, important or core (一般/重要/核心)",
                        path="properties.classification", invalid=raw_class)
    region = props.get("homeRegion", props.get(CN_NS + "homeRegion"))
    if region is not None and not isinstance(region, str):
        edc.bad_request("homeRegion must be a string (e.g. CN)", path="properties.homeRegion",
                        invalid=region)
    public = {k: v for k, v in props.items() if k not in _RESERVED_PROPS}
    return Asset(id=str(ident), properties=public, data_address=address,
                 private_properties=private if isinstance(private, dict) else {},
                 classification=classification, home_region=region)


def asset_json(a: Asset) -> dict[str, Any]:
    props = {**a.properties, "id": a.id, "classification": a.classification.value}
    if a.home_region:
        props["homeRegion"] = a.home_region
    return edc.with_context({
        "@id": a.id, "@type": "Asset", "properties": props,
        "privateProperties": a.private_properties,
        "dataAddress": {"@type": "DataAddress", **a.data_address},
        "createdAt": edc.epoch_ms(a.created_at),
    })


# ------------------------------------------------------------------------------- policies


def policy_from_body(doc: Any, rt: ConnectorRuntime, *,
                     policy_id: str | None = None) -> PolicyDefinition:
    simple, expanded = edc.read(doc, "PolicyDefinition")
    ident = simple.get("@id") or policy_id or str(uuid.uuid4())
    if policy_id is not None and ident != policy_id:
        edc.bad_request("the @id in the body differs from the id in the path", path="@id")
    node = edc.expanded_member(expanded, "policy")
    if node is None:
        edc.bad_request("a policy definition needs a policy", path="policy")
    policy = edc.policy_from_expanded(node)
    policy.pop("@id", None)
    check_policy(policy, rt, kinds=("usage", "access"))
    private = simple.get("privateProperties") or {}
    return PolicyDefinition(id=str(ident), policy=policy,
                            private_properties=private if isinstance(private, dict) else {})


def check_policy(policy: dict[str, Any], rt: ConnectorRuntime, *,
                 kinds: tuple[str, ...]) -> None:
    """400 listing every problem unless the policy is valid as one of ``kinds``."""
    from connectors.policy_checker import policy_document

    doc = policy_document(policy)
    found: list[str] = []
    for kind in kinds:
        reasons = policies.validate_policy(doc, rt.profile, kind)
        if not reasons:
            return
        found.extend(f"{kind} policy ({rt.profile}): {r}" for r in reasons)
    edc.bad_request("the policy is not valid", path="policy", reasons=found)


def policy_definition_json(p: PolicyDefinition) -> dict[str, Any]:
    return edc.with_context({
        "@id": p.id, "@type": "PolicyDefinition", "policy": edc.policy_json(p.policy),
        "privateProperties": p.private_properties, "createdAt": edc.epoch_ms(p.created_at),
    })


# ------------------------------------------------------------------------ contract defs


def contract_from_body(doc: Any, rt: ConnectorRuntime, *,
                       cd_id: str | None = None) -> ContractDefinition:
    simple, _ = edc.read(doc, "ContractDefinition")
    ident = simple.get("@id") or cd_id or str(uuid.uuid4())
    if cd_id is not None and ident != cd_id:
        edc.bad_request("the @id in the body differs from the id in the path", path="@id")
    access, contract = simple.get("accessPolicyId"), simple.get("contractPolicyId")
    if not isinstance(access, str) or not isinstance(contract, str):
        edc.bad_request("accessPolicyId and contractPolicyId are required",
                        path="accessPolicyId")
    with rt.store.transaction() as tx:
        found = tx.get_policies([access, contract])
    for name, pid, kind in (("accessPolicyId", access, "access"),
                            ("contractPolicyId", contract, "usage")):
        if pid not in found:
            edc.bad_request(f"{name} names no policy definition", path=name, invalid=pid)
        check_policy(found[pid].policy, rt, kinds=(kind,))
    selector = edc.criteria(simple.get("assetsSelector"), "assetsSelector")
    return ContractDefinition(id=str(ident), access_policy_id=access,
                              contract_policy_id=contract, assets_selector=selector)


def contract_definition_json(cd: ContractDefinition) -> dict[str, Any]:
    return edc.with_context({
        "@id": cd.id, "@type": "ContractDefinition", "accessPolicyId": cd.access_policy_id,
        "contractPolicyId": cd.contract_policy_id,
        "assetsSelector": [{"@type": "Criterion", **c.to_json()} for c in cd.assets_selector],
        "createdAt": edc.epoch_ms(cd.created_at),
    })


# ------------------------------------------------------------------------------- routes


def blueprint(rt: ConnectorRuntime) -> Blueprint:
    bp = Blueprint("edc_definitions", __name__, url_prefix="/management/v3",
                   description="Assets, policy definitions and contract definitions (EDC v3)")
    store = rt.store

    @bp.route("/assets")
    class Assets(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Create an asset (properties incl. classification, homeRegion; dataAddress)."""
            asset = asset_from_body(body())
            saved = guarded(lambda: _tx(store, lambda tx: tx.create_asset(asset)),
                            what="asset", ident=asset.id)
            return respond(edc.id_response(saved.id, saved.created_at))

        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200)
        def put(self) -> Response:
            """Update an asset (EDC v3: the @id is in the body)."""
            return _update_asset(store, asset_from_body(body()))

    @bp.route("/assets/request")
    class AssetQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            """Query assets (QuerySpec: offset, limit, filterExpression)."""
            q = edc.QuerySpec(body())
            with store.transaction() as tx:
                found = tx.list_assets(offset=q.offset, limit=q.limit, selector=q.filters)
            return respond([asset_json(a) for a in found])

    @bp.route("/assets/<path:asset_id>")
    class AssetItem(MethodView):
        @bp.response(200)
        def get(self, asset_id: str) -> Response:
            with store.transaction() as tx:
                asset = tx.get_asset(asset_id)
            if asset is None:
                edc.not_found("Asset", asset_id)
            return respond(asset_json(asset))

        @bp.response(200)
        def put(self, asset_id: str) -> Response:
            return _update_asset(store, asset_from_body(body(), asset_id=asset_id))

        @bp.response(204)
        def delete(self, asset_id: str) -> Response:
            with store.transaction() as tx:
                if not tx.delete_asset(asset_id):
                    edc.not_found("Asset", asset_id)
            return no_content()

    @bp.route("/policydefinitions")
    class Policies(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Create a policy definition (400 lists every profile violation)."""
            p = policy_from_body(body(), rt)
            saved = guarded(lambda: _tx(store, lambda tx: tx.create_policy(p)),
                            what="policy definition", ident=p.id)
            return respond(edc.id_response(saved.id, saved.created_at))

    @bp.route("/policydefinitions/request")
    class PolicyQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            q = edc.QuerySpec(body())
            with store.transaction() as tx:
                found = tx.list_policies(offset=0, limit=100_000)
            return respond(q.apply([policy_definition_json(p) for p in found]))

    @bp.route("/policydefinitions/<path:policy_id>")
    class PolicyItem(MethodView):
        @bp.response(200)
        def get(self, policy_id: str) -> Response:
            with store.transaction() as tx:
                p = tx.get_policy(policy_id)
            if p is None:
                edc.not_found("PolicyDefinition", policy_id)
            return respond(policy_definition_json(p))

        @bp.response(204)
        def put(self, policy_id: str) -> Response:
            new = policy_from_body(body(), rt, policy_id=policy_id)

            def update(tx: Any) -> Any:
                old = tx.get_policy(policy_id)
                if old is None:
                    edc.not_found("PolicyDefinition", policy_id)
                return tx.update_policy(replace(new, version=old.version))

            guarded(lambda: _tx(store, update), what="policy definition", ident=policy_id)
            return no_content()

        @bp.response(204)
        def delete(self, policy_id: str) -> Response:
            def drop(tx: Any) -> bool:
                return tx.delete_policy(policy_id)

            if not guarded(lambda: _tx(store, drop), what="policy definition",
                           ident=policy_id):
                edc.not_found("PolicyDefinition", policy_id)
            return no_content()

    @bp.route("/contractdefinitions")
    class Contracts(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Create a contract definition (accessPolicyId, contractPolicyId, assetsSelector)."""
            cd = contract_from_body(body(), rt)
            saved = guarded(lambda: _tx(store, lambda tx: tx.create_contract_definition(cd)),
                            what="contract definition", ident=cd.id)
            return respond(edc.id_response(saved.id, saved.created_at))

        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(204)
        def put(self) -> Response:
            cd = contract_from_body(body(), rt)

            def update(tx: Any) -> Any:
                old = tx.get_contract_definition(cd.id)
                if old is None:
                    edc.not_found("ContractDefinition", cd.id)
                return tx.update_contract_definition(replace(cd, version=old.version))

            guarded(lambda: _tx(store, update), what="contract definition", ident=cd.id)
            return no_content()

    @bp.route("/contractdefinitions/request")
    class ContractQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            q = edc.QuerySpec(body())
            with store.transaction() as tx:
                found = tx.list_contract_definitions()
            return respond(q.apply([contract_definition_json(c) for c in found]))

    @bp.route("/contractdefinitions/<path:cd_id>")
    class ContractItem(MethodView):
        @bp.response(200)
        def get(self, cd_id: str) -> Response:
            with store.transaction() as tx:
                cd = tx.get_contract_definition(cd_id)
            if cd is None:
                edc.not_found("ContractDefinition", cd_id)
            return respond(contract_definition_json(cd))

        @bp.response(204)
        def delete(self, cd_id: str) -> Response:
            with store.transaction() as tx:
                if not tx.delete_contract_definition(cd_id):
                    edc.not_found("ContractDefinition", cd_id)
            return no_content()

    return bp


def _tx(store: Any, fn: Any) -> Any:
    with store.transaction() as tx:
        return fn(tx)


def _update_asset(store: Any, asset: Asset) -> Response:
    def update(tx: Any) -> Any:
        old = tx.get_asset(asset.id)
        if old is None:
            edc.not_found("Asset", asset.id)
        return tx.update_asset(replace(asset, version=old.version))

    guarded(lambda: _tx(store, update), what="asset", ident=asset.id)
    return no_content()
