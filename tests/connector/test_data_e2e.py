"""Data moves end to end between real node processes, under the agreed usage policy.

An authority, a provider and a consumer run as separate processes (the provider with its
embedded worker, so push transfers go out). The provider publishes files through its EDC
management API; the consumer negotiates and starts transfers through its own; data is
pulled from the provider's data plane with the EDR the consumer received, or pushed by the
provider to a receiver this test runs on 127.0.0.1. Every access is decided by the usage
policy (count, purpose, time window, transfer state) and recorded in the provider's ledger;
the agreement's proof verifies with ``autospace audit verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import create_engine

from connectors.dataplane.recorder import SqlAccessRecorder
from tests.connector.test_dsp_e2e import (
    EDC,
    ODRL_CTX,
    PROTOCOL,
    catalog,
    datasets,
    first_offer,
    mgmt,
    negotiate,
    ok,
    proto,
    wait_state,
)
from tests.support.processes import DataSpace, run_cli

pytestmark = pytest.mark.slow

PURPOSE = "https://w3id.org/autospace/purpose/quality-analysis"
WINDOW_SECONDS = 12  # the short agreement's window closes this long after publication
DATA = os.urandom(1 << 20) + b"lot,inspected,ok\n" * 1000  # ~1 MiB, not a multiple of 64 KiB


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    with DataSpace(tmp_path_factory.mktemp("data")) as ds:
        ds.add_nodes({"provider": "supplier", "consumer": "oem"},
                     envs={"provider": {"AUTOSPACE_WORKER_EMBEDDED": "true"}})
        ds.start()
        yield ds


def _publish(m: httpx.Client, asset_id: str, path: str, policy_id: str,
             constraints: list[dict[str, Any]]) -> None:
    ok(m.post("/management/v3/assets", json={
        "@context": EDC, "@id": asset_id,
        "properties": {"name": f"{asset_id} inspection results", "classification": "general",
                       "homeRegion": "CN"},
        "dataAddress": {"@type": "DataAddress", "type": "File", "path": path,
                        "contentType": "text/csv"}}))
    rule: dict[str, Any] = {"action": "use"}
    if constraints:
        rule["constraint"] = constraints
    ok(m.post("/management/v3/policydefinitions", json={
        "@context": EDC, "@id": policy_id,
        "policy": {"@context": ODRL_CTX, "@type": "Set", "permission": [rule]}}))
    ok(m.post("/management/v3/contractdefinitions", json={
        "@context": EDC, "@id": f"cd-{asset_id}", "accessPolicyId": "members",
        "contractPolicyId": policy_id,
        "assetsSelector": [{"@type": "Criterion",
                            "operandLeft": "https://w3id.org/edc/v0.0.1/ns/id",
                            "operator": "=", "operandRight": asset_id}]}))


@pytest.fixture(scope="module")
def published(space):
    """Three file assets: 'results' (count <= 2, purpose, open window), 'window' (closes
    soon), 'pushed' (plain use)."""
    provider = space.nodes["provider"]
    source = provider.home / "results.csv"
    source.write_bytes(DATA)
    now = datetime.now(UTC)
    with mgmt(provider) as m:
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "members",
            "policy": {"@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
        _publish(m, "results", str(source), "count-purpose-window", [
            {"leftOperand": "count", "operator": "lteq", "rightOperand": 2},
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": PURPOSE},
            {"leftOperand": "dateTime", "operator": "gteq",
             "rightOperand": _iso(now - timedelta(days=1))},
            {"leftOperand": "dateTime", "operator": "lt",
             "rightOperand": _iso(now + timedelta(days=30))}])
        _publish(m, "window", str(source), "short-window", [
            {"leftOperand": "dateTime", "operator": "lt",
             "rightOperand": _iso(now + timedelta(seconds=WINDOW_SECONDS))}])
        _publish(m, "pushed", str(source), "plain-use", [])
    return {"closes_at": time.time() + WINDOW_SECONDS}


def _agree(space, asset_id: str) -> dict[str, Any]:
    consumer, provider = space.nodes["consumer"], space.nodes["provider"]
    offer = first_offer(datasets(catalog(consumer, provider))[asset_id])
    created = negotiate(consumer, provider, {**offer, "target": asset_id})
    neg = wait_state(consumer, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"FINALIZED", "TERMINATED"})
    assert neg["state"] == "FINALIZED", neg.get("errorDetail", neg)
    return neg


def _transfer(space, agreement_id: str, transfer_type: str = "HttpData-PULL",
              destination: dict[str, Any] | None = None) -> dict[str, Any]:
    consumer, provider = space.nodes["consumer"], space.nodes["provider"]
    body: dict[str, Any] = {"@context": EDC, "@type": "TransferRequest",
                            "counterPartyAddress": proto(provider), "contractId": agreement_id,
                            "transferType": transfer_type, "protocol": PROTOCOL}
    if destination is not None:
        body["dataDestination"] = destination
    with mgmt(consumer) as m:
        created = ok(m.post("/management/v3/transferprocesses", json=body))
    return wait_state(consumer, f"/management/v3/transferprocesses/{created['@id']}",
                      {"STARTED", "TERMINATED", "COMPLETED"})


def _edr(space, transfer_id: str) -> dict[str, Any]:
    with mgmt(space.nodes["consumer"]) as m:
        return ok(m.get(f"/management/v3/edrs/{transfer_id}/dataaddress"))


def _pull(edr: dict[str, Any], purpose: str | None = PURPOSE, *,
          by_header: bool = False) -> httpx.Response:
    headers = {"Authorization": edr["authorization"]}
    params = {}
    if purpose is not None:
        if by_header:
            headers["X-Purpose"] = purpose
        else:
            params["purpose"] = purpose
    return httpx.get(edr["endpoint"], headers=headers, params=params, timeout=30)


def _denied(response: httpx.Response, *words: str) -> dict[str, Any]:
    assert response.status_code == 403, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["reasons"], body
    text = " ".join(body["reasons"]).lower()
    for word in words:
        assert word.lower() in text, body
    return body


@pytest.fixture(scope="module")
def pull_transfer(space, published):
    neg = _agree(space, "results")
    started = _transfer(space, neg["contractAgreementId"])
    assert started["state"] == "STARTED", started
    edr = _edr(space, started["@id"])
    first = _pull(edr)  # the first of the two agreed uses
    return {"negotiation": neg, "transfer": started, "edr": edr, "first": first}


def test_edr_has_the_data_plane_endpoint_and_a_token(space, pull_transfer):
    edr = pull_transfer["edr"]
    assert edr["endpoint"] == space.nodes["provider"].url + "/dataplane/public"
    assert edr["authorization"] and edr["refreshEndpoint"].endswith("/dataplane/token")


def test_pull_counts_purpose_suspension_and_exhaustion(space, pull_transfer):
    provider = space.nodes["provider"]
    edr = pull_transfer["edr"]
    first = pull_transfer["first"]
    assert first.status_code == 200, first.text[:500]
    assert first.content == DATA  # exactly the file's bytes

    # the reason names the term that failed, not just "no permission grants this request"
    _denied(_pull(edr, "https://w3id.org/autospace/purpose/marketing"), "purpose", "marketing")
    _denied(_pull(edr, None), "purpose")  # no purpose given: the agreed one is not assumed
    anonymous = httpx.get(edr["endpoint"], timeout=10)
    assert anonymous.status_code == 401

    provider_pid = pull_transfer["transfer"]["correlationId"]
    path = f"/management/v3/transferprocesses/{provider_pid}"
    with mgmt(provider) as m:
        ok(m.post(path + "/suspend", json={"@context": EDC, "reason": "quality audit"}), 204)
    assert wait_state(provider, path, {"SUSPENDED"})["state"] == "SUSPENDED"
    _denied(_pull(edr), "SUSPENDED")  # at once: the provider's own state decides
    wait_state(space.nodes["consumer"],
               f"/management/v3/transferprocesses/{pull_transfer['transfer']['@id']}",
               {"SUSPENDED"})

    with mgmt(provider) as m:
        ok(m.post(path + "/resume"), 204)
    wait_state(provider, path, {"STARTED"})
    wait_state(space.nodes["consumer"],
               f"/management/v3/transferprocesses/{pull_transfer['transfer']['@id']}",
               {"STARTED"})
    second = _pull(_edr(space, pull_transfer["transfer"]["@id"]), by_header=True)
    assert second.status_code == 200, second.text[:500]
    assert second.content == DATA

    _denied(_pull(edr), "count lteq 2")  # two uses agreed, two used


def test_refreshed_token_is_also_bound_by_the_count(space, pull_transfer):
    """A refresh gives a new token but not new uses."""
    edr = pull_transfer["edr"]
    fresh = httpx.post(edr["refreshEndpoint"], data={
        "grant_type": "refresh_token", "refresh_token": edr["refreshToken"]}, timeout=10)
    assert fresh.status_code == 200, fresh.text
    token = fresh.json()["access_token"]
    assert token != edr["authorization"]
    _denied(_pull({**edr, "authorization": token}))


def test_access_after_the_window_closes_is_denied(space, published):
    neg = _agree(space, "window")
    started = _transfer(space, neg["contractAgreementId"])
    assert started["state"] == "STARTED", started
    edr = _edr(space, started["@id"])
    assert time.time() < published["closes_at"] - 1, "set-up too slow for the window"
    inside = _pull(edr, None)
    assert inside.status_code == 200 and inside.content == DATA
    time.sleep(max(0.0, published["closes_at"] - time.time()) + 1.5)
    _denied(_pull(edr, None))


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str | None, bytes]]] = []

    def _take(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(length)
        self.received.append((self.command, self.path, self.headers.get("Authorization"), body))
        self.send_response(204)
        self.end_headers()

    do_POST = do_PUT = _take

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


def test_push_delivers_the_bytes_and_completes_on_both_sides(space, published, receiver):
    url, received = receiver
    neg = _agree(space, "pushed")
    done = _transfer(space, neg["contractAgreementId"], "HttpData-PUSH", destination={
        "type": "HttpData", "baseUrl": url + "/inbox/lot-42",
        "authorization": "consumer-secret", "authType": "bearer"})
    consumer_path = f"/management/v3/transferprocesses/{done['@id']}"
    final = wait_state(space.nodes["consumer"], consumer_path, {"COMPLETED", "TERMINATED"},
                       timeout=30)
    assert final["state"] == "COMPLETED", final
    provider_side = wait_state(space.nodes["provider"],
                               f"/management/v3/transferprocesses/{final['correlationId']}",
                               {"COMPLETED", "TERMINATED"})
    assert provider_side["state"] == "COMPLETED", provider_side
    assert len(received) == 1
    method, path, auth, body = received[0]
    assert method in ("POST", "PUT") and path == "/inbox/lot-42"
    assert auth == "Bearer consumer-secret"
    assert body == DATA


def test_agreement_proof_verifies_and_the_pull_is_in_the_ledger(space, pull_transfer,
                                                                 tmp_path):
    provider = space.nodes["provider"]
    agreement_id = pull_transfer["negotiation"]["contractAgreementId"]
    _denied(_pull(pull_transfer["edr"], "https://w3id.org/autospace/purpose/resale"))
    for node in (provider, space.nodes["consumer"]):
        run_cli("ledger", "checkpoint", "--home", str(node.home), env=node.env)
        bundle = tmp_path / f"{node.name}.bundle.json"
        run_cli("audit", "bundle", "--home", str(node.home), "--record", agreement_id,
                "-o", str(bundle), env=node.env)
        doc = json.loads(bundle.read_text())
        assert doc["record"]["type"] == "contract-agreement"
        out = run_cli("audit", "verify", str(bundle), env=node.env).stdout
        assert out.startswith("VALID") and agreement_id in out, out

    engine = create_engine(provider.database_url)
    try:
        accesses = SqlAccessRecorder(engine).entries(
            transfer_id=pull_transfer["transfer"]["correlationId"])
    finally:
        engine.dispose()
    complete = [a for a in accesses if a["status"] == "complete"]
    assert len(complete) >= 1, accesses  # the fixture's pull (two after the pull test)
    assert all(a["ledger_record_id"] for a in accesses)
    with mgmt(provider) as m:
        entry = ok(m.get(f"/management/ledger/records/{complete[0]['ledger_record_id']}"))
    assert entry["recordType"] == "data-use", entry
    value = entry["record"]
    assert value["agreementId"] == agreement_id and value["purpose"] == PURPOSE
    assert value["bytes"] == len(DATA)
    assert value["contentHash"] == hashlib.sha256(DATA).hexdigest()
    denied = [a for a in accesses if a["decision"] == "deny"]
    assert denied  # refusals are recorded too


def test_use_bound_constraints_wait_for_the_use_but_only_as_conjuncts():
    """Negotiation and transfer-request checks leave out count/purpose conjuncts (the data
    plane decides them at each use); inside ``or`` they stay, so the check still fails closed."""
    from connectors.policy_checker import without_use_constraints

    window = {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2099-01-01"}
    count = {"leftOperand": "odrl:count", "operator": "lteq", "rightOperand": 2}
    purpose = {"leftOperand": {"@id": "https://w3id.org/catenax/policy/UsagePurpose"},
               "operator": "eq", "rightOperand": "quality"}
    either = {"or": [count, window]}
    policy = {"@type": "Offer", "permission": [
        {"action": "use", "constraint": [count, purpose, window, either]},
        {"action": "use", "constraint": count}]}
    out = without_use_constraints(policy)
    assert out["permission"][0]["constraint"] == [window, either]
    assert "constraint" not in out["permission"][1]
    assert policy["permission"][0]["constraint"] == [count, purpose, window, either]  # untouched
