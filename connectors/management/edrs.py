"""``/management/v3/edrs``: negotiate and transfer in one call, read and refresh EDRs.

An EDR request is a contract request plus ``transferType``/``dataDestination``. When a
finalised agreement for the same asset and terms exists it is reused and the transfer
starts at once; otherwise the transfer request is remembered on the consumer negotiation
(``extra["edr"]``, durable) and started by :func:`continue_edr_requests` — run by the
outbox dispatcher and the worker job — once the negotiation is FINALIZED. The EDR itself
is the DataAddress of the provider's TransferStartMessage (see connectors.dataplane.edr:
``authorization``, ``refreshToken``, ``refreshEndpoint``, ``expiresIn``...).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from connectors.dsp.transfer import TransferProcessEntity
from connectors.dsp.vocabulary import NegotiationState
from connectors.http.problem import ProblemError
from connectors.management import edc
from connectors.management.common import (
    IdResponseSchema,
    JsonLdSchema,
    QuerySpecSchema,
    body,
    guarded,
    request_body,
    respond,
)
from connectors.management.processes import (
    edr_json,
    get_process,
    start_negotiation,
    start_transfer,
)
from connectors.runtime import ConnectorRuntime

EDR_KEY = "edr"  # negotiation.extra entry: the transfer to start once FINALIZED


def continue_edr_requests(rt: ConnectorRuntime) -> int:
    """Start the transfer of every EDR request whose negotiation is now FINALIZED (job).

    Reads only the negotiations marked by POST /edrs that have ended (an index), so the
    cost does not grow with the node's history; a TERMINATED one is just unmarked.
    """
    started = 0
    with rt.store.transaction() as tx:
        settled = tx.settled_edr_pending()
    for n in settled:
        edr = n.extra.get(EDR_KEY)
        startable = (
            n.state == NegotiationState.FINALIZED
            and isinstance(edr, dict)
            and not edr.get("transferId")
            and n.agreement_id
        )
        if not startable:
            with rt.store.transaction() as tx:
                tx.drop_edr_pending(n.id)
            continue
        transfer = start_transfer(rt, edr["request"], agreement_id=n.agreement_id)
        with rt.store.transaction() as tx:
            current = tx.get_negotiation(n.id)
            if current is not None:
                extra = {**current.extra, EDR_KEY: {**edr, "transferId": transfer.id}}
                tx.save_negotiation(replace(current, extra=extra))
            tx.drop_edr_pending(n.id)
        started += 1
    return started


def blueprint(rt: ConnectorRuntime) -> Blueprint:
    bp = Blueprint("edc_edrs", __name__, url_prefix="/management/v3",
                   description="Endpoint data references (EDC v3)")

    @bp.route("/edrs")
    class Edrs(MethodView):
        @bp.doc(requestBody=request_body(JsonLdSchema))
        @bp.response(200, IdResponseSchema)
        def post(self) -> Response:
            """Negotiate and start a transfer in one call (ContractRequest + transferType,
            dataDestination). Answers the negotiation id (an existing agreement is reused
            and its transfer started at once)."""
            doc = body()
            simple, _ = edc.read(doc)
            request = {k: simple.get(k) for k in ("counterPartyAddress", "protocol",
                                                   "transferType", "dataDestination")
                       if simple.get(k) is not None}
            entity, reused = start_negotiation(rt, doc)
            if reused is not None:
                t = start_transfer(rt, request, agreement_id=reused.id)
                out = edc.id_response(reused.negotiation_id, reused.signed_at)
                out.update(contractAgreementId=reused.id, transferProcessId=t.id)
                return respond(out)
            assert entity is not None

            def remember(tx: Any) -> None:
                current = tx.get_negotiation(entity.id)
                extra = {**current.extra, EDR_KEY: {"request": request}}
                tx.save_negotiation(replace(current, extra=extra))
                tx.add_edr_pending(entity.id)

            guarded(lambda: _in_tx(rt, remember), what="negotiation", ident=entity.id)
            return respond(edc.id_response(entity.id, entity.created_at))

    @bp.route("/edrs/request")
    class EdrQuery(MethodView):
        @bp.doc(requestBody=request_body(QuerySpecSchema))
        @bp.response(200)
        def post(self) -> Response:
            """Cached EDR entries: consumer transfers that hold an endpoint data reference."""
            q = edc.QuerySpec(body())
            with rt.store.transaction() as tx:
                found = [t for t in tx.list_transfers(limit=100_000)
                         if t.role.value == "consumer" and t.data_address]
            docs = [edc.with_context({
                "@id": t.id, "@type": "EndpointDataReferenceEntry", "transferProcessId": t.id,
                "agreementId": t.agreement_id, "assetId": t.dataset_id,
                "providerId": t.counter_party_id, "createdAt": edc.epoch_ms(t.created_at)})
                for t in found]
            return respond(q.apply(docs))

    @bp.get("/edrs/<path:pid>/dataaddress")
    @bp.response(200)
    def edr_address(pid: str) -> Response:
        """The endpoint data reference of a started pull transfer."""
        t = get_process(rt, "transfer", pid)
        doc = edr_json(t.data_address) if t.role.value == "consumer" else None
        if doc is None:
            edc.not_found("EndpointDataReference", pid)
        return respond(doc)

    @bp.post("/edrs/<path:pid>/refresh")
    @bp.response(200)
    def edr_refresh(pid: str) -> Response:
        """Refresh the EDR's token at the provider's refresh endpoint (OAuth2 refresh grant,
        as the EDR's ``refreshEndpoint`` / ``refreshToken`` say) and return the new EDR."""
        t = get_process(rt, "transfer", pid)
        doc = edr_json(t.data_address) if t.role.value == "consumer" else None
        if doc is None:
            edc.not_found("EndpointDataReference", pid)
        return respond(refresh_edr(rt, t, doc))

    return bp


def _in_tx(rt: ConnectorRuntime, fn: Any) -> Any:
    with rt.store.transaction() as tx:
        return fn(tx)


def refresh_edr(rt: ConnectorRuntime, t: TransferProcessEntity,
                doc: dict[str, Any]) -> dict[str, Any]:
    """POST ``grant_type=refresh_token`` to the EDR's refresh endpoint and store the result."""
    endpoint, token = doc.get("refreshEndpoint"), doc.get("refreshToken")
    if not isinstance(endpoint, str) or not isinstance(token, str):
        edc.bad_request("this EDR carries no refreshEndpoint/refreshToken; start a new "
                        "transfer instead", path="transferProcessId", invalid=t.id)
    auth = doc.get("authorization")
    try:
        response = rt.http.post(  # plain HTTP: the refresh token is the credential
            endpoint, data={"grant_type": "refresh_token", "refresh_token": token},
            headers={"Authorization": str(auth)} if auth else {})
    except httpx.HTTPError as exc:
        raise ProblemError(502, "Bad Gateway",
                           f"refresh endpoint unreachable: {exc}") from None
    if response.status_code != 200:
        raise ProblemError(502, "Bad Gateway",
                           f"refresh endpoint answered {response.status_code}: "
                           f"{response.text[:300]}")
    try:
        fresh = response.json()
    except ValueError:
        raise ProblemError(502, "Bad Gateway", "refresh endpoint answered no JSON") from None
    updates = {"authorization": fresh.get("access_token"),
               "refreshToken": fresh.get("refresh_token"),
               "expiresIn": fresh.get("expires_in")}
    props = {p["name"]: p["value"] for p in (t.data_address or {}).get("endpointProperties", [])}
    props.update({k: str(v) for k, v in updates.items() if v is not None})
    address = {**(t.data_address or {}), "endpointProperties": [
        {"@type": "EndpointProperty", "name": k, "value": v} for k, v in props.items()]}

    def save(tx: Any) -> None:
        current = tx.get_transfer(t.id)
        tx.save_transfer(replace(current, data_address=address))

    guarded(lambda: _in_tx(rt, save), what="transfer", ident=t.id)
    return edr_json(address) or {}
