"""``/management/v3`` catalog requests, contract negotiations, agreements, transfers.

The consumer side of the connector as an EDC operator drives it: ask a provider's catalog
(a signed DSP call), start a negotiation from an offer (an existing finalised agreement for
the same asset and terms is reused), follow it, start and steer transfers. The EDR calls
built on these are in :mod:`connectors.management.edrs`.
"""

from __future__ import annotations

from typing import Any

import httpx
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from connectors.delivery import UnknownPeerError
from connectors.dsp import messages as m
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.negotiation import ContractNegotiationEntity, ErrorDetail
from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import DSP_CONTEXT_URL, ErrorCode
from connectors.http.problem import ProblemError
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
from connectors.runtime import ACCEPTED_PROTOCOLS, PROTOCOL_ID, ConnectorRuntime

# ------------------------------------------------------------------------------ shapes


def negotiation_json(n: ContractNegotiationEntity) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@id": n.id, "@type": "ContractNegotiation", "type": n.role.value.upper(),
        "protocol": PROTOCOL_ID, "state": n.state.value, "counterPartyId": n.counter_party_id,
        "counterPartyAddress": n.counter_party_address, "callbackAddresses": [],
        "correlationId": n.provider_pid if n.role.value == "consumer" else n.consumer_pid,
        "assetId": n.dataset_id, "createdAt": edc.epoch_ms(n.created_at),
        "stateTimestamp": edc.epoch_ms(n.updated_at),
    }
    if n.agreement_id:
        doc["contractAgreementId"] = n.agreement_id
    if n.error is not None:
        doc["errorDetail"] = "; ".join([n.error.code, *n.error.reasons])
    return edc.with_context(doc)


def agreement_json(a: ContractAgreement) -> dict[str, Any]:
    return edc.with_context({
        "@id": a.id, "@type": "ContractAgreement", "assetId": a.asset_id,
        "providerId": a.provider_id, "consumerId": a.consumer_id,
        "contractSigningDate": int(a.signed_at.timestamp()),
        "negotiationId": a.negotiation_id, "policy": edc.policy_json(a.policy),
    })


def edr_json(address: dict[str, Any] | None) -> dict[str, Any] | None:
    """A DSP DataAddress as EDC's flat DataAddress (endpoint properties as members)."""
    if not address:
        return None
    out: dict[str, Any] = {"@type": "DataAddress", "type": address.get("endpointType"),
                           "endpointType": address.get("endpointType")}
    if address.get("endpoint") is not None:
        out["endpoint"] = address["endpoint"]
    for p in address.get("endpointProperties") or ():
        out[p.get("name")] = p.get("value")
    return edc.with_context(out)


def transfer_json(t: TransferProcessEntity) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@id": t.id, "@type": "TransferProcess", "type": t.role.value.upper(),
        "protocol": PROTOCOL_ID, "state": t.state.value, "assetId": t.dataset_id,
        "contractId": t.agreement_id, "transferType": t.format,
        "counterPartyId": t.counter_party_id, "counterPartyAddress": t.counter_party_address,
        "correlationId": t.provider_pid if t.role.value == "consumer" else t.consumer_pid,
        "createdAt": edc.epoch_ms(t.created_at), "stateTimestamp": edc.epoch_ms(t.updated_at),
        "callbackAddresses": [],
    }
    if t.role.value == "provider" and t.data_address:
        doc["dataDestination"] = edr_json(t.data_address)
    if t.error is not None:
        doc["errorDetail"] = "; ".join([t.error.code, *t.error.reasons])
    return edc.with_context(doc)


def data_address_from(value: Any) -> m.DataAddress | None:
    """EDC ``dataDestination`` (flat properties) -> DSP DataAddress (endpoint properties)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        edc.bad_request("dataDestination must be an object", path="dataDestination")
    kind = value.get("type") or value.get("endpointType")
    if not isinstance(kind, str):
        edc.bad_request("dataDestination.type is required", path="dataDestination.type")
    endpoint = value.get("endpoint") or value.get("baseUrl")
    props = tuple(
        m.EndpointProperty(str(k), str(v)) for k, v in value.items()
        if k not in ("@type", "type", "endpointType", "endpoint", "baseUrl")
        and isinstance(v, str | int | float | bool)
    )
    return m.DataAddress(endpoint_type=kind,
                         endpoint=endpoint if isinstance(endpoint, str) else None,
                         endpoint_properties=props)


# ------------------------------------------------------------------------ peer requests


def _protocol_of(simple: dict[str, Any]) -> None:
    proto = simple.get("protocol", PROTOCOL_ID)
    if proto not in ACCEPTED_PROTOCOLS:
        edc.bad_request(f"protocol must be {PROTOCOL_ID}", path="protocol", invalid=proto)


def _address(simple: dict[str, Any]) -> str:
    address = simple.get("counterPartyAddress")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        edc.bad_request("counterPartyAddress must be the provider's DSP URL",
                        path="counterPartyAddress", invalid=address)
    return address.rstrip("/")


def _peer(rt: ConnectorRuntime, ident: Any) -> tuple[str, str]:
    """(participant id, DID) of a counter-party named by either."""
    if not isinstance(ident, str) or not ident:
        edc.bad_request("counterPartyId is required (participant id or DID)",
                        path="counterPartyId")
    try:
        return rt.directory.participant_of(ident), rt.directory.did_of(ident)
    except UnknownPeerError as exc:
        edc.bad_request(str(exc), path="counterPartyId", invalid=ident)


def peer_call(rt: ConnectorRuntime, method: str, url: str, did: str,
              payload: Any = None) -> Any:
    """A signed DSP call to a provider; its JSON answer or a 502 problem saying why."""
    if payload is not None:
        rt.messages.write("sent", url, payload)
    try:
        response = rt.peer_client.request(method, url, audience=did, json=payload)
    except httpx.HTTPError as exc:
        raise ProblemError(502, "Bad Gateway",
                           f"the counter-party did not answer: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    rt.messages.write("response", url, answer, response.status_code)
    if response.status_code >= 400:
        reasons = answer.get("reason") if isinstance(answer, dict) else None
        raise ProblemError(502 if response.status_code >= 500 else response.status_code,
                           "Counter-party refused",
                           f"{url} answered {response.status_code}: "
                           f"{reasons or response.text[:300]}",
                           counterPartyStatus=response.status_code, counterPartyBody=answer)
    return answer


def fetch_offer(rt: ConnectorRuntime, address: str, did: str, offer_id: str,
                target: str) -> dict[str, Any]:
    """The full offer ``offer_id`` from the provider's dataset (when a client sent only ids)."""
    from urllib.parse import quote

    dataset = peer_call(rt, "GET", f"{address}/catalog/datasets/{quote(target, safe='')}", did)
    offers = edc.as_list(dataset.get("hasPolicy") if isinstance(dataset, dict) else None)
    for offer in offers:
        if isinstance(offer, dict) and offer.get("@id") == offer_id:
            return {k: v for k, v in offer.items() if k != "@context"}
    edc.bad_request(f"the provider offers no {offer_id} on {target}", path="policy.@id",
                    invalid=offer_id)


def offer_from(rt: ConnectorRuntime, expanded: dict[str, Any], address: str, did: str,
               provider_id: str) -> dict[str, Any]:
    node = edc.expanded_member(expanded, "policy")
    if node is None:
        edc.bad_request("a contract request needs a policy (the offer)", path="policy")
    offer = edc.policy_from_expanded(node)
    offer_id, target = offer.get("@id"), offer.get("target")
    if not isinstance(offer_id, str) or not isinstance(target, str):
        edc.bad_request("the offer needs an @id and a target (the asset id)", path="policy")
    if not any(k in offer for k in ("permission", "prohibition", "obligation")):
        offer = fetch_offer(rt, address, did, offer_id, target)
        offer["target"] = target
    offer["@type"] = "Offer"
    offer["assigner"] = provider_id
    return offer


def start_negotiation(rt: ConnectorRuntime, doc: Any) -> tuple[ContractNegotiationEntity | None,
                                                               ContractAgreement | None]:
    """Start (or reuse) a negotiation from a ContractRequest body."""
    simple, expanded = edc.read(doc)
    _protocol_of(simple)
    address = _address(simple)
    provider_id, did = _peer(rt, simple.get("counterPartyId") or simple.get("providerId")
                             or _assigner(expanded))
    offer = offer_from(rt, expanded, address, did, provider_id)
    reusable = rt.protocol.reusable_agreement(provider_id=provider_id, offer=offer)
    if reusable is not None:
        return None, reusable
    entity = guarded(lambda: rt.protocol.start_negotiation(
        provider_id=provider_id, provider_address=address, offer=offer), what="negotiation")
    rt.dispatcher.kick()
    return entity, None


def _assigner(expanded: dict[str, Any]) -> str | None:
    node = edc.expanded_member(expanded, "policy")
    if node is None:
        return None
    value = edc.simplify(node).get("http://www.w3.org/ns/odrl/2/assigner")
    return value if isinstance(value, str) else None


def _detail(simple: dict[str, Any] | None, default: str) -> ErrorDetail:
    reason = (simple or {}).get("reason") or default
    return ErrorDetail(ErrorCode.OPERATOR, (str(reason),))


def get_process(rt: ConnectorRuntime, kind: str, pid: str) -> Any:
    with rt.store.transaction() as tx:
        found = tx.get_negotiation(pid) if kind == "negotiation" else tx.get_transfer(pid)
    if found is None:
        edc.not_found("ContractNegotiation" if kind == "negotiation" else "TransferProcess", pid)
    return found


def start_transfer(rt: ConnectorRuntime, simple: dict[str, Any],
                   agreement_id: str | None = None) -> TransferProcessEntity:
    _protocol_of(simple)
    address = _address(simple)
    contract = agreement_id or simple.get("contractId")
    if not isinstance(contract, str):
        edc.bad_request("contractId is required", path="contractId")
    ttype = simple.get("transferType") or "HttpData-PULL"
    if not isinstance(ttype, str):
        edc.bad_request("transferType must be a string (e.g. HttpData-PULL)", path="transferType")
    destination = data_address_from(simple.get("dataDestination"))
    entity = guarded(lambda: rt.protocol.start_transfer(
        agreement_id=contract, provider_address=address, format=ttype,
        data_address=destination), what="transfer", ident=contract)
    rt.dispatcher.kick()
    return entity


# ------------------------------------------------------------------------------ routes


def blueprint(rt: ConnectorRuntime) -> Blueprint:
    bp = Blueprint("edc_processes", __name__, url_prefix="/management/v3",
                   description="Catalog, negotiations, agreements, transfers (EDC v3)")
    proto = rt.protocol

    @bp.route("/catalog/request")
    class CatalogRequest(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200)
        def post(self) -> Response:
            """Ask a provider for its catalog (counterPartyAddress, counterPartyId)."""
            simple, _ = edc.read(body(), "CatalogRequest")
            _protocol_of(simple)
            address = _address(simple)
            _, did = _peer(rt, simple.get("counterPartyId"))
            q = simple.get("querySpec") or {}
            msg: dict[str, Any] = {"@context": [DSP_CONTEXT_URL], "@type": "CatalogRequestMessage"}
            filters = edc.as_list(q.get("filterExpression")) if isinstance(q, dict) else []
            if filters:
                msg["filter"] = filters
            answer = peer_call(rt, "POST", f"{address}/catalog/request", did, msg)
            return respond(edc.catalog_view(answer))

    @bp.route("/catalog/dataset/request")
    class DatasetRequest(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200)
        def post(self) -> Response:
            """Ask a provider for one dataset (@id, counterPartyAddress, counterPartyId)."""
            from urllib.parse import quote

            simple, _ = edc.read(body(), "DatasetRequest")
            _protocol_of(simple)
            address = _address(simple)
            _, did = _peer(rt, simple.get("counterPartyId"))
            ident = simple.get("@id")
            if not isinstance(ident, str):
                edc.bad_request("@id (the dataset id) is required", path="@id")
            url = f"{address}/catalog/datasets/{quote(ident, safe='')}"
            return respond(edc.catalog_view(peer_call(rt, "GET", url, did)))

    @bp.route("/contractnegotiations")
    class Negotiations(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Start a negotiation (ContractRequest); reuses a valid agreement if one exists."""
            entity, reused = start_negotiation(rt, body())
            if entity is None and reused is not None:
                doc = edc.id_response(reused.negotiation_id, reused.signed_at)
                doc["contractAgreementId"] = reused.id
                doc["reused"] = True
                return respond(doc)
            assert entity is not None
            return respond(edc.id_response(entity.id, entity.created_at))

    @bp.route("/contractnegotiations/request")
    class NegotiationQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            q = edc.QuerySpec(body())
            with rt.store.transaction() as tx:
                found = tx.list_negotiations(limit=100_000)
            return respond(q.apply([negotiation_json(n) for n in found]))

    @bp.route("/contractnegotiations/<path:pid>")
    class NegotiationItem(MethodView):
        @bp.response(200)
        def get(self, pid: str) -> Response:
            return respond(negotiation_json(get_process(rt, "negotiation", pid)))

    @bp.get("/contractnegotiations/<path:pid>/state")
    @bp.response(200)
    def negotiation_state(pid: str) -> Response:
        n = get_process(rt, "negotiation", pid)
        return respond(edc.with_context({"@type": "NegotiationState", "state": n.state.value}))

    @bp.get("/contractnegotiations/<path:pid>/agreement")
    @bp.response(200)
    def negotiation_agreement(pid: str) -> Response:
        n = get_process(rt, "negotiation", pid)
        with rt.store.transaction() as tx:
            a = tx.get_agreement(n.agreement_id) if n.agreement_id else None
        if a is None:
            edc.not_found("ContractAgreement", f"of negotiation {pid}")
        return respond(agreement_json(a))

    @bp.post("/contractnegotiations/<path:pid>/terminate")
    @bp.response(204)
    def negotiation_terminate(pid: str) -> Response:
        get_process(rt, "negotiation", pid)
        detail = _detail(body(), "terminated by the operator")
        guarded(lambda: proto.terminate_negotiation(pid, detail), what="negotiation", ident=pid)
        rt.dispatcher.kick()
        return no_content()

    @bp.route("/contractagreements/request")
    class AgreementQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            q = edc.QuerySpec(body())
            with rt.store.transaction() as tx:
                found = tx.list_agreements(limit=100_000)
            return respond(q.apply([agreement_json(a) for a in found]))

    @bp.get("/contractagreements/<path:aid>")
    @bp.response(200)
    def agreement(aid: str) -> Response:
        with rt.store.transaction() as tx:
            a = tx.get_agreement(aid)
        if a is None:
            edc.not_found("ContractAgreement", aid)
        return respond(agreement_json(a))

    @bp.get("/contractagreements/<path:aid>/negotiation")
    @bp.response(200)
    def agreement_negotiation(aid: str) -> Response:
        with rt.store.transaction() as tx:
            a = tx.get_agreement(aid)
            n = tx.get_negotiation(a.negotiation_id) if a is not None else None
        if n is None:
            edc.not_found("ContractAgreement", aid)
        return respond(negotiation_json(n))

    @bp.route("/transferprocesses")
    class Transfers(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Start a transfer (TransferRequest: counterPartyAddress, contractId,
            transferType, dataDestination)."""
            simple, _ = edc.read(body(), "TransferRequest")
            t = start_transfer(rt, simple)
            return respond(edc.id_response(t.id, t.created_at))

    @bp.route("/transferprocesses/request")
    class TransferQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            q = edc.QuerySpec(body())
            with rt.store.transaction() as tx:
                found = tx.list_transfers(limit=100_000)
            return respond(q.apply([transfer_json(t) for t in found]))

    @bp.get("/transferprocesses/<path:pid>")
    @bp.response(200)
    def transfer(pid: str) -> Response:
        return respond(transfer_json(get_process(rt, "transfer", pid)))

    @bp.get("/transferprocesses/<path:pid>/state")
    @bp.response(200)
    def transfer_state(pid: str) -> Response:
        t = get_process(rt, "transfer", pid)
        return respond(edc.with_context({"@type": "TransferState", "state": t.state.value}))

    def command(pid: str, run: Any) -> Response:
        get_process(rt, "transfer", pid)
        guarded(run, what="transfer", ident=pid)
        rt.dispatcher.kick()
        return no_content()

    @bp.post("/transferprocesses/<path:pid>/suspend")
    @bp.response(204)
    def transfer_suspend(pid: str) -> Response:
        detail = _detail(body(), "suspended by the operator")
        return command(pid, lambda: proto.suspend_transfer(pid, detail))

    @bp.post("/transferprocesses/<path:pid>/resume")
    @bp.response(204)
    def transfer_resume(pid: str) -> Response:
        return command(pid, lambda: proto.resume_transfer(pid))

    @bp.post("/transferprocesses/<path:pid>/complete")
    @bp.response(204)
    def transfer_complete(pid: str) -> Response:
        return command(pid, lambda: proto.complete_transfer(pid))

    @bp.post("/transferprocesses/<path:pid>/terminate")
    @bp.response(204)
    def transfer_terminate(pid: str) -> Response:
        detail = _detail(body(), "terminated by the operator")
        return command(pid, lambda: proto.terminate_transfer(pid, detail))

    return bp


