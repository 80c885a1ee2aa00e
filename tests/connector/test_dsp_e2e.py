"""The connector end to end with real processes: an authority, a provider and two consumers.

The provider publishes through its EDC management API; consumers ask for its catalog,
negotiate and start transfers through theirs; the nodes talk DSP 2025-1 to each other over
signed peer calls. Every DSP message any node sent, received or answered is logged
(``AUTOSPACE_CONNECTOR_MESSAGE_LOG``) and validated against the official schemas at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from node.app import COMPONENTS
from tests.dsp.schemas import SCHEMA_FOR_TYPE, schema_errors
from tests.support.processes import DataSpace, run_cli

pytestmark = pytest.mark.slow

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/"}
ODRL_CTX = "http://www.w3.org/ns/odrl.jsonld"
DSP_CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]
PROTOCOL = "dataspace-protocol-http:2025-1"
#: With the data-plane component, transfers must start; without it they end with a reason.
HAS_DATA_PLANE = "connectors.dataplane.web" in COMPONENTS


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("connector")
    with DataSpace(base) as ds:
        roles = {"provider": "supplier", "oem": "oem", "other": "supplier"}
        for name, role in roles.items():
            ds.add_node(name, role=role,
                        env={"AUTOSPACE_CONNECTOR_MESSAGE_LOG": str(base / f"{name}.dsp.jsonl")})
        ds.start()
        yield ds


def mgmt(node) -> httpx.Client:
    return node.management()


def proto(node) -> str:
    return node.url + "/protocol"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def published(space):
    """Two assets: 'restricted' visible only to BPN-oem, 'open' to every member."""
    p = space.nodes["provider"]
    with mgmt(p) as m:
        for ident, cls in (("restricted", "important"), ("open", "general")):
            ok(m.post("/management/v3/assets", json={
                "@context": EDC, "@id": ident,
                "properties": {"name": f"{ident} inspection results", "classification": cls,
                               "homeRegion": "CN"},
                "dataAddress": {"@type": "DataAddress", "type": "HttpData",
                                "baseUrl": "http://127.0.0.1:9/data"}}))
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "only-oem",
            "policy": {"@context": ODRL_CTX, "@type": "Set",
                       "permission": [{"action": "use", "assignee": "BPN-oem"}]}}))
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "members",
            "policy": {"@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "until-2099",
            "policy": {"@context": ODRL_CTX, "@type": "Set", "permission": [{
                "action": "use", "constraint": [{"leftOperand": "dateTime", "operator": "lt",
                                                 "rightOperand": "2099-01-01T00:00:00Z"}]}]}}))
        for ident, access, asset in (("cd-restricted", "only-oem", "restricted"),
                                     ("cd-open", "members", "open")):
            ok(m.post("/management/v3/contractdefinitions", json={
                "@context": EDC, "@id": ident, "accessPolicyId": access,
                "contractPolicyId": "until-2099",
                "assetsSelector": [{"@type": "Criterion",
                                    "operandLeft": "https://w3id.org/edc/v0.0.1/ns/id",
                                    "operator": "=", "operandRight": asset}]}))
    return p


def catalog(consumer, provider) -> dict[str, Any]:
    with mgmt(consumer) as m:
        return ok(m.post("/management/v3/catalog/request", json={
            "@context": EDC, "@type": "CatalogRequest", "counterPartyAddress": proto(provider),
            "counterPartyId": "BPN-provider", "protocol": PROTOCOL}))


def datasets(cat: dict[str, Any], key: str = "dcat:dataset") -> dict[str, dict[str, Any]]:
    """Datasets of a management-API catalog (EDC's shape: ``dcat:dataset``), or of a DSP
    catalog with ``key="dataset"``."""
    items = cat.get(key, [])
    return {d["@id"]: d for d in (items if isinstance(items, list) else [items])}


def first_offer(dataset: dict[str, Any]) -> dict[str, Any]:
    """The first offer of a management-API dataset (``odrl:hasPolicy``, one or a list)."""
    offers = dataset["odrl:hasPolicy"]
    return offers[0] if isinstance(offers, list) else offers


def negotiate(consumer, provider, offer: dict[str, Any]) -> dict[str, Any]:
    with mgmt(consumer) as m:
        return ok(m.post("/management/v3/contractnegotiations", json={
            "@context": EDC, "@type": "ContractRequest", "counterPartyAddress": proto(provider),
            "counterPartyId": "BPN-provider", "protocol": PROTOCOL,
            "policy": {"@context": ODRL_CTX, **offer, "assigner": "BPN-provider"}}))


def wait_state(node, path: str, wanted: set[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with mgmt(node) as m:
        while True:
            doc = ok(m.get(path))
            if doc["state"] in wanted:
                return doc
            assert time.monotonic() < deadline, f"{path} stuck in {doc}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def finalized(space, published):
    oem = space.nodes["oem"]
    offer = first_offer(datasets(catalog(oem, published))["restricted"])
    offer = {**offer, "target": "restricted"}
    created = negotiate(oem, published, offer)
    neg = wait_state(oem, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"FINALIZED", "TERMINATED"})
    assert neg["state"] == "FINALIZED", neg
    return {"negotiation": neg, "offer": offer}


def test_version_document_is_public(space):
    body = ok(httpx.get(space.nodes["provider"].url + "/.well-known/dspace-version"))
    assert body["protocolVersions"][0]["version"] == "2025-1"
    assert body["protocolVersions"][0]["path"] == "/protocol"
    assert not schema_errors(body, "VersionResponse")


def test_catalog_shows_only_permitted_offers(space, published):
    seen_by_oem = datasets(catalog(space.nodes["oem"], published))
    seen_by_other = datasets(catalog(space.nodes["other"], published))
    assert set(seen_by_oem) == {"restricted", "open"}
    assert set(seen_by_other) == {"open"}
    offer = first_offer(seen_by_oem["restricted"])
    assert offer["@type"] == "odrl:Offer" and offer["odrl:permission"]


def test_management_catalog_has_edc_shape(space, published):
    """EDC clients read the prefixed keys EDC's management API answers with."""
    cat = catalog(space.nodes["oem"], published)
    assert cat["@type"] == "dcat:Catalog"
    ctx = cat["@context"]
    assert ctx["dcat"] == "http://www.w3.org/ns/dcat#"
    assert ctx["odrl"] == "http://www.w3.org/ns/odrl/2/"
    assert ctx["@vocab"] == "https://w3id.org/edc/v0.0.1/ns/"
    dataset = datasets(cat)["open"]
    assert dataset["@type"] == "dcat:Dataset"
    assert "dcat:distribution" in dataset
    permission = first_offer(dataset)["odrl:permission"]
    permission = permission[0] if isinstance(permission, list) else permission
    assert permission["odrl:action"] in ({"@id": "odrl:use"}, "odrl:use")
    service = cat["dcat:service"]
    service = service[0] if isinstance(service, list) else service
    assert service["dcat:endpointURL"] == proto(published)


def test_negotiation_finalizes_with_the_same_agreement_on_both_sides(space, finalized):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    neg = finalized["negotiation"]
    with mgmt(oem) as m:
        agreement = ok(m.get(f"/management/v3/contractnegotiations/{neg['@id']}/agreement"))
        assert ok(m.get(f"/management/v3/contractnegotiations/{neg['@id']}/state")) == {
            "@context": agreement["@context"], "@type": "NegotiationState", "state": "FINALIZED"}
    assert agreement["providerId"] == "BPN-provider" and agreement["consumerId"] == "BPN-oem"
    assert agreement["policy"]["assignee"] == "BPN-oem"
    with mgmt(provider) as m:
        theirs = ok(m.get(f"/management/v3/contractagreements/{agreement['@id']}"))
        provider_neg = ok(m.get(f"/management/v3/contractagreements/{agreement['@id']}"
                                "/negotiation"))
    assert theirs["policy"] == agreement["policy"]
    assert provider_neg["state"] == "FINALIZED" and provider_neg["type"] == "PROVIDER"


def test_existing_agreement_is_reused(space, published, finalized):
    again = negotiate(space.nodes["oem"], published, finalized["offer"])
    assert again.get("reused") is True
    assert again["contractAgreementId"] == finalized["negotiation"]["contractAgreementId"]
    with mgmt(space.nodes["provider"]) as m:
        agreements = ok(m.post("/management/v3/contractagreements/request", json={
            "@context": EDC, "@type": "QuerySpec", "filterExpression": [
                {"operandLeft": "assetId", "operator": "=", "operandRight": "restricted"}]}))
    assert len(agreements) == 1


def test_offer_hidden_from_a_participant_cannot_be_negotiated(space, published, finalized):
    other = space.nodes["other"]
    created = negotiate(other, published, finalized["offer"])
    neg = wait_state(other, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"TERMINATED", "FINALIZED"})
    assert neg["state"] == "TERMINATED"
    # the provider refuses an offer it never showed this participant, and says why
    assert "UNKNOWN_OFFER" in neg["errorDetail"] or "POLICY_DENIED" in neg["errorDetail"], neg


def test_operator_cannot_terminate_a_finalized_negotiation(space, finalized):
    oem = space.nodes["oem"]
    pid = finalized["negotiation"]["@id"]
    with mgmt(oem) as m:
        refused = m.post(f"/management/v3/contractnegotiations/{pid}/terminate",
                         json={"@context": EDC, "@type": "TerminateNegotiation",
                               "reason": "changed my mind"})
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "INVALID_TRANSITION"
        assert ok(m.get(f"/management/v3/contractnegotiations/{pid}/state"))["state"] == \
            "FINALIZED"


def test_transfer_is_started_or_refused_with_a_reason(space, published, finalized):
    oem = space.nodes["oem"]
    with mgmt(oem) as m:
        created = ok(m.post("/management/v3/transferprocesses", json={
            "@context": EDC, "@type": "TransferRequest", "counterPartyAddress": proto(published),
            "contractId": finalized["negotiation"]["contractAgreementId"],
            "transferType": "HttpData-PULL", "protocol": PROTOCOL}))
    done = wait_state(oem, f"/management/v3/transferprocesses/{created['@id']}",
                      {"STARTED", "TERMINATED"})
    if done["state"] == "TERMINATED":  # a node without a data plane says so
        assert not HAS_DATA_PLANE, done
        assert "data plane" in done["errorDetail"], done
    else:
        with mgmt(oem) as m:
            edr = ok(m.get(f"/management/v3/edrs/{created['@id']}/dataaddress"))
            assert edr["endpoint"] and edr["authorization"]
            cached = ok(m.post("/management/v3/edrs/request", json={"@context": EDC}))
            assert created["@id"] in {e["transferProcessId"] for e in cached}
            assert "refreshEndpoint" in edr or not HAS_DATA_PLANE
            if "refreshEndpoint" in edr:
                fresh = ok(m.post(f"/management/v3/edrs/{created['@id']}/refresh"))
                assert fresh["authorization"] != edr["authorization"]
                stored = ok(m.get(f"/management/v3/edrs/{created['@id']}/dataaddress"))
                assert stored["authorization"] == fresh["authorization"]


def _peer_post(node, target, path: str, body: Any, *, raw: bytes | None = None):
    with node.peer_client() as client:
        kwargs = {"content": raw, "headers": {"Content-Type": "application/json"}} \
            if raw is not None else {"json": body}
        return client.post(proto(target) + path, audience=target.did, **kwargs)


def test_invalid_transition_answers_400_with_the_dsp_error(space, finalized):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    neg = finalized["negotiation"]
    provider_pid, consumer_pid = neg["correlationId"], neg["@id"]
    response = _peer_post(oem, provider, f"/negotiations/{provider_pid}/events", {
        "@context": DSP_CTX, "@type": "ContractNegotiationEventMessage",
        "providerPid": provider_pid, "consumerPid": consumer_pid, "eventType": "ACCEPTED"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["@type"] == "ContractNegotiationError" and body["code"] == "INVALID_TRANSITION"
    assert not schema_errors(body)


def test_a_duplicated_request_changes_nothing(space, published):
    """The same ContractRequestMessage twice: one negotiation, the same answer both times."""
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    with oem.peer_client() as client:  # the offer as DSP shows it, for a DSP message
        dataset = client.get(proto(provider) + "/catalog/datasets/open", audience=provider.did)
    offers = dataset.json()["hasPolicy"]
    offer = offers[0] if isinstance(offers, list) else offers
    consumer_pid = f"urn:uuid:{uuid.uuid4()}"
    msg = {"@context": DSP_CTX, "@type": "ContractRequestMessage", "consumerPid": consumer_pid,
           "offer": {**offer, "target": "open"}, "callbackAddress": proto(oem)}
    first = _peer_post(oem, provider, "/negotiations/request", msg)
    second = _peer_post(oem, provider, "/negotiations/request", msg)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json() == second.json()
    with mgmt(provider) as m:
        mine = ok(m.post("/management/v3/contractnegotiations/request", json={
            "@context": EDC, "filterExpression": [
                {"operandLeft": "correlationId", "operator": "=", "operandRight": consumer_pid}]}))
    assert len(mine) == 1 and mine[0]["@id"] == first.json()["providerPid"]


def test_unknown_and_foreign_ids_answer_404(space, finalized):
    oem, other, provider = space.nodes["oem"], space.nodes["other"], space.nodes["provider"]
    provider_pid = finalized["negotiation"]["correlationId"]
    with oem.peer_client() as client:
        mine = client.get(proto(provider) + f"/negotiations/{provider_pid}", audience=provider.did)
        unknown = client.get(proto(provider) + f"/negotiations/urn:uuid:{uuid.uuid4()}",
                             audience=provider.did)
    assert mine.status_code == 200 and mine.json()["state"] == "FINALIZED"
    assert not schema_errors(mine.json())
    with other.peer_client() as client:
        foreign = client.get(proto(provider) + f"/negotiations/{provider_pid}",
                             audience=provider.did)
    for response in (unknown, foreign):
        assert response.status_code == 404, response.text
        assert response.json()["@type"] == "ContractNegotiationError"
    with oem.peer_client() as client:
        no_transfer = client.get(proto(provider) + "/transfers/urn:uuid:none",
                                 audience=provider.did)
    assert no_transfer.status_code == 404 and no_transfer.json()["@type"] == "TransferError"
    with mgmt(oem) as m:
        missing = m.get("/management/v3/contractnegotiations/urn:uuid:nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_malformed_json_and_missing_token_answer_dsp_errors(space):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    bad = _peer_post(oem, provider, "/negotiations/request", None, raw=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["@type"] == "ContractNegotiationError"
    assert not schema_errors(bad.json())
    nowhere = _peer_post(oem, provider, "/transfers/urn:x/explode", {})
    assert nowhere.status_code == 404 and nowhere.json()["@type"] == "TransferError"
    anonymous = httpx.post(proto(provider) + "/transfers/request", json={})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/json")
    assert anonymous.json()["@type"] == "TransferError"


def test_invalid_policy_definition_lists_every_reason(space):
    with mgmt(space.nodes["provider"]) as m:
        response = m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "broken",
            "policy": {"@context": ODRL_CTX, "@type": "Set", "permission": [{
                "action": "use", "constraint": [
                    {"leftOperand": "dateTime", "operator": "frobnicates", "rightOperand": "x"},
                    {"leftOperand": "dateTime", "operator": "wobbles", "rightOperand": "y"}]}]}})
    assert response.status_code == 400
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any("frobnicates" in e["message"] for e in body["errors"])
    assert any("wobbles" in e["message"] for e in body["errors"])


def test_management_openapi_lists_the_edc_routes(space):
    spec = ok(httpx.get(space.nodes["oem"].url + "/management/openapi.json"))
    for path in ("/management/v3/assets", "/management/v3/contractnegotiations",
                 "/management/v3/transferprocesses/{pid}/suspend", "/management/v3/edrs"):
        assert path in spec["paths"]


def test_catalog_pages_carry_link_headers(space, published):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    msg = {"@context": DSP_CTX, "@type": "CatalogRequestMessage"}
    with oem.peer_client() as client:
        first = client.post(proto(provider) + "/catalog/request?limit=1", audience=provider.did,
                            json=msg)
        assert first.status_code == 200, first.text
        assert not schema_errors(first.json())
        links = first.headers.get_list("Link")
        nxt = [link for link in links if 'rel="next"' in link]
        assert nxt, links
        url = nxt[0].split(">")[0].lstrip("<")
        second = client.post(url, audience=provider.did, json=msg)
    assert second.status_code == 200
    ids = [datasets(first.json(), "dataset"), datasets(second.json(), "dataset")]
    assert all(len(page) == 1 for page in ids)
    assert set(ids[0]) | set(ids[1]) == {"open", "restricted"}
    assert 'rel="prev"' in " ".join(second.headers.get_list("Link"))


def test_edr_call_negotiates_and_starts_the_transfer(space, published):
    oem = space.nodes["oem"]
    offer_id = first_offer(datasets(catalog(oem, published))["open"])["@id"]
    with mgmt(oem) as m:
        created = ok(m.post("/management/v3/edrs", json={
            "@context": EDC, "@type": "ContractRequest", "counterPartyAddress": proto(published),
            "counterPartyId": "BPN-provider", "protocol": PROTOCOL,
            "transferType": "HttpData-PULL",
            "policy": {"@context": ODRL_CTX, "@id": offer_id, "@type": "Offer",
                       "assigner": "BPN-provider", "target": "open"}}))
    neg = wait_state(oem, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"FINALIZED", "TERMINATED"})
    assert neg["state"] == "FINALIZED", neg
    deadline = time.monotonic() + 20
    with mgmt(oem) as m:
        while True:
            found = ok(m.post("/management/v3/transferprocesses/request", json={
                "@context": EDC, "filterExpression": [{
                    "operandLeft": "contractId", "operator": "=",
                    "operandRight": neg["contractAgreementId"]}]}))
            if found and found[0]["state"] in ("STARTED", "TERMINATED"):
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
    assert len(found) == 1 and found[0]["transferType"] == "HttpData-PULL"


def test_transfer_commands_follow_the_state_machine(space, published, finalized):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    with mgmt(oem) as m:
        created = ok(m.post("/management/v3/transferprocesses", json={
            "@context": EDC, "@type": "TransferRequest", "counterPartyAddress": proto(published),
            "contractId": finalized["negotiation"]["contractAgreementId"],
            "transferType": "HttpData-PULL", "protocol": PROTOCOL}))
    tid = created["@id"]
    path = f"/management/v3/transferprocesses/{tid}"
    state = wait_state(oem, path + "/state", {"STARTED", "TERMINATED"})["state"]
    with mgmt(oem) as m:
        if state == "TERMINATED":  # no data plane on this node: nothing left to steer
            assert not HAS_DATA_PLANE
            refused = m.post(path + "/suspend", json={"@context": EDC, "reason": "pause"})
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "INVALID_TRANSITION"
            return
        ok(m.post(path + "/suspend", json={"@context": EDC, "reason": "pause"}), 204)
        correlation = wait_state(oem, path, {"SUSPENDED"})["correlationId"]
        wait_state(provider, f"/management/v3/transferprocesses/{correlation}", {"SUSPENDED"})
        ok(m.post(path + "/resume"), 204)
        wait_state(oem, path, {"STARTED"})
        ok(m.post(path + "/terminate", json={"@context": EDC, "reason": "done"}), 204)
        wait_state(provider, f"/management/v3/transferprocesses/{correlation}", {"TERMINATED"})
    late = _peer_post(oem, provider, f"/transfers/{correlation}/suspension", {
        "@context": DSP_CTX, "@type": "TransferSuspensionMessage", "providerPid": correlation,
        "consumerPid": tid, "code": "PAUSE", "reason": ["too late"]})
    assert late.status_code == 400, late.text
    assert late.json()["@type"] == "TransferError"
    assert late.json()["code"] == "INVALID_TRANSITION"
    assert not schema_errors(late.json())


def test_every_exchanged_message_validates_against_the_dsp_schemas(space, finalized):
    """Runs last in this module: every message logged by every node so far."""
    checked = 0
    types: set[str] = set()
    for name in space.nodes:
        path = space.base / f"{name}.dsp.jsonl"
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            doc = entry["body"]
            if not isinstance(doc, dict) or doc.get("@type") not in SCHEMA_FOR_TYPE:
                continue
            errors = schema_errors(doc)
            assert not errors, f"{name} {entry['direction']} {entry['endpoint']}: {errors}"
            checked += 1
            types.add(doc["@type"])
    assert checked > 10
    for expected in ("CatalogRequestMessage", "Catalog", "ContractRequestMessage",
                     "ContractNegotiation", "ContractAgreementMessage",
                     "ContractAgreementVerificationMessage", "ContractNegotiationEventMessage",
                     "TransferRequestMessage", "TransferProcess",
                     *(("TransferStartMessage", "TransferSuspensionMessage",
                        "TransferTerminationMessage") if HAS_DATA_PLANE else ())):
        assert expected in types, f"no {expected} was exchanged ({sorted(types)})"


def test_agreement_is_in_both_ledgers_and_its_proof_verifies(space, finalized, tmp_path):
    """Checkpoint and bundle in process (the node's own ledger code), verify with the CLI."""
    from ledger.audit import build_bundle
    from node.cli.ledger import open_ledger

    agreement_id = finalized["negotiation"]["contractAgreementId"]
    hashes = set()
    for side in ("provider", "oem"):
        node = space.nodes[side]
        with open_ledger(node.home) as (engine, log, keys, _), engine.begin() as conn:
            log.sign_checkpoint(conn, keys)
            doc = build_bundle(conn, log, agreement_id, keys)
        record = doc["record"]
        assert record["type"] == "contract-agreement" and record["id"] == agreement_id
        assert record["value"]["consumerId"] == "BPN-oem"
        hashes.add(record["value"]["policyHash"])
        bundle = tmp_path / f"{side}.bundle.json"
        bundle.write_text(json.dumps(doc))
        out = run_cli("audit", "verify", str(bundle), env=node.env).stdout
        assert out.startswith("VALID") and agreement_id in out
    assert len(hashes) == 1  # both parties logged the hash of the same agreement
