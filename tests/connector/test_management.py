"""The EDC v3 management API in process: publishing, queries, validation, errors.

Runs the real app (every node component) against the backend under test; calls that
need a counter-party are covered end to end in test_dsp_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.dsp.definitions import EDC_NS
from tests.connector.conftest import EDC, ODRL_CTX

PROBLEM = "application/problem+json"


def asset(ident: str, **props: Any) -> dict[str, Any]:
    return {"@context": EDC, "@id": ident, "@type": "Asset",
            "properties": {"name": ident, **props},
            "dataAddress": {"@type": "DataAddress", "type": "HttpData",
                            "baseUrl": f"https://backend.example/{ident}"}}


def policy(ident: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"@context": EDC, "@id": ident, "@type": "PolicyDefinition",
            "policy": {"@context": ODRL_CTX, "@type": "Set",
                       "permission": list(rules) or [{"action": "use"}]}}


def test_asset_lifecycle(node_app):
    created = node_app.post("/management/v3/assets",
                            asset("a1", classification="重要", homeRegion="CN"))
    assert created.status_code == 200, created.text
    body = created.json
    assert body["@type"] == "IdResponse" and body["@id"] == "a1"
    assert isinstance(body["createdAt"], int)
    got = node_app.get("/management/v3/assets/a1").json
    assert got["properties"]["classification"] == "important"
    assert got["properties"]["homeRegion"] == "CN"
    assert got["dataAddress"] == {"@type": "DataAddress", "type": "HttpData",
                                  "baseUrl": "https://backend.example/a1"}
    assert got["@context"]["@vocab"] == EDC_NS
    again = node_app.post("/management/v3/assets", asset("a1"))
    assert again.status_code == 409 and again.content_type.startswith(PROBLEM)
    updated = node_app.put("/management/v3/assets", asset("a1", classification="core"))
    assert updated.status_code == 204, updated.text
    assert node_app.get("/management/v3/assets/a1").json["properties"]["classification"] == "core"
    assert node_app.delete("/management/v3/assets/a1").status_code == 204
    missing = node_app.get("/management/v3/assets/a1")
    assert missing.status_code == 404 and missing.content_type.startswith(PROBLEM)
    assert missing.json["errors"][0]["type"] == "ObjectNotFound"


def test_asset_accepts_prefixed_and_full_iri_spellings(node_app):
    body = {"@context": {"edc": EDC_NS}, "@id": "a2", "@type": "edc:Asset",
            "edc:properties": {"edc:name": "two", f"{EDC_NS}homeRegion": "DE"},
            "edc:dataAddress": {"@type": "edc:DataAddress", "edc:type": "HttpData"}}
    assert node_app.post("/management/v3/assets", body).status_code == 200
    got = node_app.get("/management/v3/assets/a2").json
    assert got["properties"]["name"] == "two" and got["properties"]["homeRegion"] == "DE"


@pytest.mark.parametrize("broken,path", [
    ({"dataAddress": None}, "dataAddress"),
    ({"properties": {"classification": "secret"}}, "properties.classification"),
])
def test_invalid_assets_are_refused(node_app, broken, path):
    body = {**asset("bad"), **broken}
    if broken.get("dataAddress", "") is None:
        del body["dataAddress"]
    response = node_app.post("/management/v3/assets", body)
    assert response.status_code == 400 and response.content_type.startswith(PROBLEM)
    assert response.json["errors"][0]["path"] == path


def test_asset_query_pages_and_filters(node_app):
    for i in range(5):
        cls = "important" if i % 2 else "general"
        assert node_app.post("/management/v3/assets",
                             asset(f"q{i}", classification=cls)).status_code == 200
    page = node_app.post("/management/v3/assets/request",
                         {"@context": EDC, "@type": "QuerySpec", "offset": 1, "limit": 2}).json
    assert [a["@id"] for a in page] == ["q1", "q2"]
    important = node_app.post("/management/v3/assets/request", {
        "@context": EDC, "@type": "QuerySpec", "filterExpression": [
            {"operandLeft": "classification", "operator": "=", "operandRight": "important"}]})
    assert [a["@id"] for a in important.json] == ["q1", "q3"]
    by_name = node_app.post("/management/v3/assets/request", {
        "@context": EDC, "filterExpression": [
            {"operandLeft": "name", "operator": "in", "operandRight": ["q0", "q4"]}]})
    assert [a["@id"] for a in by_name.json] == ["q0", "q4"]
    everything = node_app.post("/management/v3/assets/request")
    assert len(everything.json) == 5
    bad = node_app.post("/management/v3/assets/request", {"@context": EDC, "limit": 0})
    assert bad.status_code == 400


def test_policy_definitions_are_validated_and_stored_as_dsp_terms(node_app):
    ok = node_app.post("/management/v3/policydefinitions", policy("p1", {
        "action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt",
                                         "rightOperand": "2099-01-01T00:00:00Z"}]}))
    assert ok.status_code == 200, ok.text
    stored = node_app.get("/management/v3/policydefinitions/p1").json["policy"]
    assert stored["permission"][0]["action"] == "use"
    assert stored["permission"][0]["constraint"][0]["operator"] == "lt"
    bad = node_app.post("/management/v3/policydefinitions", policy("p2", {
        "action": "use", "constraint": [
            {"leftOperand": "dateTime", "operator": "before", "rightOperand": "x"},
            {"leftOperand": "dateTime", "operator": "after", "rightOperand": "y"}]}))
    assert bad.status_code == 400 and bad.content_type.startswith(PROBLEM)
    messages = " ".join(e["message"] for e in bad.json["errors"])
    assert "before" in messages and "after" in messages
    assert node_app.get("/management/v3/policydefinitions/p2").status_code == 404
    listed = node_app.post("/management/v3/policydefinitions/request", {"@context": EDC}).json
    assert [p["@id"] for p in listed] == ["p1"]


def test_contract_definitions_reference_existing_policies(node_app):
    node_app.post("/management/v3/policydefinitions", policy("open"))
    cd = {"@context": EDC, "@id": "cd1", "accessPolicyId": "open", "contractPolicyId": "open",
          "assetsSelector": [{"operandLeft": f"{EDC_NS}id", "operator": "=",
                              "operandRight": "a1"}]}
    assert node_app.post("/management/v3/contractdefinitions", cd).status_code == 200
    got = node_app.get("/management/v3/contractdefinitions/cd1").json
    assert got["assetsSelector"][0]["operandRight"] == "a1"
    dangling = node_app.post("/management/v3/contractdefinitions",
                             {**cd, "@id": "cd2", "accessPolicyId": "nope"})
    assert dangling.status_code == 400
    assert dangling.json["errors"][0]["path"] == "accessPolicyId"
    in_use = node_app.delete("/management/v3/policydefinitions/open")
    assert in_use.status_code == 409
    assert node_app.delete("/management/v3/contractdefinitions/cd1").status_code == 204
    assert node_app.delete("/management/v3/policydefinitions/open").status_code == 204


def test_unknown_processes_answer_404_problems(node_app):
    for path in ("/management/v3/contractnegotiations/urn:uuid:x",
                 "/management/v3/contractnegotiations/urn:uuid:x/state",
                 "/management/v3/contractagreements/urn:uuid:x",
                 "/management/v3/transferprocesses/urn:uuid:x",
                 "/management/v3/edrs/urn:uuid:x/dataaddress"):
        response = node_app.get(path)
        assert response.status_code == 404, path
        assert response.content_type.startswith(PROBLEM)
    stop = node_app.post("/management/v3/transferprocesses/urn:uuid:x/suspend")
    assert stop.status_code == 404


def test_requests_to_unknown_counter_parties_are_refused(node_app):
    response = node_app.post("/management/v3/catalog/request", {
        "@context": EDC, "@type": "CatalogRequest",
        "counterPartyAddress": "http://127.0.0.1:9/protocol", "counterPartyId": "BPN-ghost",
        "protocol": "dataspace-protocol-http:2025-1"})
    assert response.status_code == 400
    assert "BPN-ghost" in response.json["detail"]
    wrong = node_app.post("/management/v3/catalog/request", {
        "@context": EDC, "counterPartyAddress": "http://127.0.0.1:9/protocol",
        "counterPartyId": "did:web:x", "protocol": "ids-multipart"})
    assert wrong.status_code == 400 and wrong.json["errors"][0]["path"] == "protocol"


def test_management_needs_the_api_key(node_app):
    response = node_app.app.test_client().get("/management/v3/assets/a1")
    assert response.status_code == 401


def test_version_document_and_protocol_errors(node_app):
    client = node_app.app.test_client()
    version = client.get("/.well-known/dspace-version").json
    assert version["protocolVersions"][0]["path"] == "/protocol"
    refused = client.post("/protocol/negotiations/request", data=b"{")
    assert refused.content_type == "application/json"
    assert refused.json["@type"] == "ContractNegotiationError"


def test_unknown_protocol_paths_answer_dsp_errors_after_authentication(node_app):
    client = node_app.app.test_client()
    response = client.post("/protocol/transfers/x/explode", json={})
    # no trust anchor is configured in this app: the caller is refused first, DSP-shaped
    assert response.content_type == "application/json"
    assert response.json["@type"] == "TransferError"
    assert response.status_code in (401, 503)


def test_outbox_delivery_is_a_worker_job(node_app):
    from node.context import node_context
    from node.worker import build_registry

    names = [job.name for job in build_registry(node_context(node_app.app)).jobs]
    assert "connector.outbox" in names


def test_the_edc_management_context_is_known_offline(node_app):
    body = {"@context": ["https://w3id.org/edc/connector/management/v0.0.1"], "@id": "ctx",
            "@type": "Asset", "properties": {"name": "by context URL"},
            "dataAddress": {"@type": "DataAddress", "type": "HttpData"}}
    assert node_app.post("/management/v3/assets", body).status_code == 200
    assert node_app.get("/management/v3/assets/ctx").json["properties"]["name"] == "by context URL"
    unknown = node_app.post("/management/v3/assets", {**body, "@context": "https://nope.example/c"})
    assert unknown.status_code == 400 and "nope.example" in unknown.json["detail"]
