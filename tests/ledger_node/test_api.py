"""The ledger component in a whole node app (in process): routes, errors, atomic appends.

The same app `autospace serve` runs (every component of ``node.app.COMPONENTS``), on the
backend under test; real HTTP processes are in ``test_processes.py``.
"""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import text

from ledger import audit, rfc9162
from ledger.checkpoint import parse_and_verify
from ledger.errors import VerificationError
from node.app import create_app
from node.ledger_service import ledger_status, node_ledger
from tests.ledger_node.conftest import epcis_document

PROBLEM = "application/problem+json"


@pytest.fixture
def app(ledger_home):
    app = create_app(ledger_home.config())
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_key(ledger_home) -> dict[str, str]:
    return {"X-Api-Key": ledger_home.result.api_key}


def capture(client, api_key, doc):  # type: ignore[no-untyped-def]
    resp = client.post("/management/epcis/capture", json=doc, headers=api_key)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def test_checkpoint_and_proofs_are_public_and_verify(client, api_key):
    info = client.get("/ledger").get_json()
    key = info["verifierKey"]
    doc = epcis_document(5)
    captured = capture(client, api_key, doc)
    assert [e["ledger"]["leafIndex"] for e in captured["events"]] == [0, 1, 2, 3, 4]

    resp = client.get("/ledger/checkpoint")  # no API key, no token
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert resp.headers["Cache-Control"] == "no-store"
    cp5 = parse_and_verify(resp.get_data(as_text=True), key)
    assert cp5.size == 5

    entry = client.get(f"/management/ledger/records/{captured['events'][3]['eventID']}",
                       headers=api_key).get_json()
    proof = client.get("/ledger/proof/inclusion?index=3&size=5").get_json()
    assert proof["leaf_index"] == 3 and proof["tree_size"] == 5
    rfc9162.verify_inclusion(3, 5, base64.b64decode(entry["leafHash"]),
                             [base64.b64decode(h) for h in proof["proof"]], cp5.root)

    capture(client, api_key, epcis_document(4))
    cp9 = parse_and_verify(client.get("/ledger/checkpoint").get_data(as_text=True), key)
    assert cp9.size == 9
    # the old checkpoint stays retrievable, and the log proves it only grew
    assert client.get("/ledger/checkpoint?size=5").get_data(as_text=True) == cp5.note
    cons = client.get("/ledger/proof/consistency?first=5&second=9").get_json()
    rfc9162.verify_consistency(5, 9, cp5.root, cp9.root,
                               [base64.b64decode(h) for h in cons["proof"]])
    with pytest.raises(VerificationError):
        rfc9162.verify_consistency(5, 9, cp9.root, cp9.root,
                                   [base64.b64decode(h) for h in cons["proof"]])


@pytest.mark.parametrize(("url", "status"), [
    ("/ledger/proof/inclusion?index=0&size=4", 404),  # size beyond the tree (3)
    ("/ledger/proof/inclusion?index=3&size=3", 404),  # index outside the tree
    ("/ledger/proof/inclusion?index=9223372036854775807&size=3", 404),
    ("/ledger/proof/inclusion?index=99999999999999999999999&size=3", 400),  # > 2^63-1
    ("/ledger/proof/inclusion?index=-1&size=3", 400),
    ("/ledger/proof/inclusion?index=1.5&size=3", 400),
    ("/ledger/proof/inclusion?index=%EF%BC%91&size=3", 400),  # a full-width digit
    ("/ledger/proof/inclusion?size=3", 400),  # index missing
    ("/ledger/proof/inclusion?index=1&size=3&hash=x", 400),  # unknown parameter
    ("/ledger/proof/consistency?first=2&second=9223372036854775807", 404),
    ("/ledger/proof/consistency?first=3&second=2", 400),  # first beyond second
    ("/ledger/proof/consistency?first=4&second=5", 404),  # both beyond the tree
    ("/ledger/proof/consistency?first=a&second=2", 400),
    ("/ledger/proof/consistency?second=2", 400),
    ("/ledger/checkpoint?size=2", 404),  # never signed at that size
    ("/ledger/checkpoint?size=x", 400),
])
def test_bad_proof_requests_are_problems(client, api_key, url, status):
    capture(client, api_key, epcis_document(3))
    resp = client.get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM
    assert resp.get_json()["detail"]


def test_management_needs_the_api_key(client):
    resp = client.post("/management/epcis/capture", json=epcis_document(1))
    assert resp.status_code == 401
    assert client.get("/management/ledger/records/x/bundle").status_code == 401


def test_entries_need_a_verified_peer(client, api_key):
    captured = capture(client, api_key, epcis_document(1))
    event_id = captured["events"][0]["eventID"]
    for url in ("/ledger/entries/0", f"/ledger/records/{event_id}",
                f"/ledger/records/{event_id}/bundle"):
        resp = client.get(url, headers=api_key)  # an API key is not a peer token
        assert resp.status_code in (401, 503), url
        assert resp.mimetype == PROBLEM
        assert "salt" not in resp.get_data(as_text=True)


def test_capture_lists_every_problem_and_captures_nothing(client, api_key):
    doc = epcis_document(3)
    doc["epcisBody"]["eventList"][0]["action"] = "EXPLODE"
    del doc["epcisBody"]["eventList"][2]["eventTime"]
    resp = client.post("/management/epcis/capture", json=doc, headers=api_key)
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    body = resp.get_json()
    assert [e["where"] for e in body["errors"]] == ["eventList[0]", "eventList[2]"]
    assert "action" in body["errors"][0]["error"]
    assert client.get("/ledger").get_json()["treeSize"] == 0


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"{not json", "application/json", 400),
    (b"[]", "application/json", 400),
    (json.dumps({"type": "EPCISDocument"}).encode(), "application/ld+json", 400),
    (json.dumps(epcis_document(1)).encode(), "text/plain", 415),
])
def test_capture_refuses_malformed_bodies(client, api_key, body, content_type, status):
    resp = client.post("/management/epcis/capture", data=body,
                       headers={**api_key, "Content-Type": content_type})
    assert resp.status_code == status
    assert resp.mimetype == PROBLEM


def test_capturing_an_event_twice_is_refused(client, api_key):
    doc = epcis_document(2)
    capture(client, api_key, doc)
    resp = client.post("/management/epcis/capture", json=doc, headers=api_key)
    assert resp.status_code == 400
    assert "already captured" in resp.get_json()["errors"][0]["error"]
    assert client.get("/ledger").get_json()["treeSize"] == 2


def test_get_and_query_events(client, api_key):
    a = capture(client, api_key, epcis_document(2, epc="urn:epc:id:sgtin:1.1.A", day=1))
    b = capture(client, api_key, epcis_document(3, epc="urn:epc:id:sgtin:1.1.B", day=2))
    first = a["events"][0]
    got = client.get(f"/management/epcis/events/{first['eventID']}", headers=api_key)
    assert got.status_code == 200
    assert got.get_json()["event"] == first["event"]
    assert got.get_json()["ledger"]["leafIndex"] == 0

    def query(qs: str) -> list[str]:
        resp = client.get(f"/management/epcis/events?{qs}", headers=api_key)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        assert body["type"] == "EPCISQueryDocument"
        events = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert [e["eventID"] for e in events] == [e["eventID"] for e in body["ledgerEntries"]]
        return [e["eventID"] for e in events]

    ids_b = [e["eventID"] for e in b["events"]]
    assert query("MATCH_anyEPC=urn:epc:id:sgtin:1.1.B") == ids_b
    assert query("epc=urn:epc:id:sgtin:1.1.A") == [e["eventID"] for e in a["events"]]
    # B's events are 08:00, 09:00, 10:00 +08:00 on 2 March = 00:00, 01:00, 02:00Z
    assert query("GE_eventTime=2026-03-02T01:00:00Z&LT_eventTime=2026-03-02T02:00:00Z") == \
        ids_b[1:2]
    assert query("GE_eventTime=2026-03-02T09:00:00+08:00") == ids_b[1:]  # '+' unencoded
    assert query("eventType=AggregationEvent") == []
    assert len(query("perPage=2")) == 2
    assert query("identifier=urn:epc:id:sgtin:nothing") == []


@pytest.mark.parametrize("qs", [
    "eventType=FooEvent", "GE_eventTime=yesterday", "GE_eventTime=2026-03-02T01:00:00",
    "perPage=0", "perPage=1001", "MATCH_epc=urn:x", "nextPageToken=abc",
    "epc=urn:a&MATCH_anyEPC=urn:b",
])
def test_bad_queries_are_problems(client, api_key, qs):
    resp = client.get(f"/management/epcis/events?{qs}", headers=api_key)
    assert resp.status_code == 400
    assert resp.mimetype == PROBLEM


def test_unknown_event_and_record_are_404(client, api_key):
    for url in ("/management/epcis/events/urn:uuid:nope",
                "/management/ledger/records/urn:uuid:nope",
                "/management/ledger/records/urn:uuid:nope/bundle"):
        resp = client.get(url, headers=api_key)
        assert resp.status_code == 404 and resp.mimetype == PROBLEM


def test_bundle_from_the_api_verifies_offline(client, api_key):
    captured = capture(client, api_key, epcis_document(4))
    key = client.get("/ledger").get_json()["verifierKey"]
    event_id = captured["events"][2]["eventID"]
    resp = client.get(f"/management/ledger/records/{event_id}/bundle", headers=api_key)
    assert resp.status_code == 200
    bundle = resp.get_json()
    assert bundle["record"]["id"] == event_id and bundle["leaf_index"] == 2
    report = audit.verify_bundle(audit.load_bundle(bundle), trusted_key=key)
    assert any("anchor" in w for w in report.warnings)  # nothing anchored in this test
    bundle["record"]["value"]["bizStep"] = "receiving"
    with pytest.raises(VerificationError):
        audit.verify_bundle(audit.load_bundle(bundle), trusted_key=key)


def test_other_components_append_atomically(app, ledger_home):
    ledger = node_ledger(app)
    record = {"agreementId": "agr-1", "assetId": "asset-1", "providerId": "BPNL-OEM",
              "consumerId": "BPNL-SUP", "signedAt": "2026-03-01T00:00:00Z"}
    engine = ledger.engine

    class Boom(Exception):
        pass

    with pytest.raises(Boom), engine.begin() as conn:
        ledger.append(conn, "contract-agreement", record, record_id="agr-1")
        raise Boom  # the business change failed: its log entry must go too
    with engine.connect() as conn:
        assert ledger.log.size(conn) == 0
    with engine.begin() as conn:
        entry = ledger.append(conn, "contract-agreement", record, record_id="agr-1")
        conn.execute(text("SELECT 1"))
    assert entry.leaf_index == 0
    status = ledger_status(ledger_home.config(), engine)
    assert status["treeSize"] == 1 and status["ephemeral"] is True
    assert status["lastAnchor"] is None


def test_node_ledger_without_the_component(ledger_home):
    from node.app import COMPONENTS

    other = create_app(ledger_home.config(),
                       components=[c for c in COMPONENTS if c != "node.ledger_service"])
    with pytest.raises(RuntimeError, match="not enabled"):
        node_ledger(other)


def test_bad_ledger_settings_stop_start_up(ledger_home):
    from node.config import ConfigError

    with pytest.raises(ConfigError, match="backend"):
        create_app(ledger_home.config(ledger_backend="quantum"),
                   components=["node.ledger_service"])


def test_status_shows_the_ledger(app, ledger_home, client, api_key):
    from click.testing import CliRunner

    from node.cli.status import status_command

    capture(client, api_key, epcis_document(2))
    runner = CliRunner()
    result = runner.invoke(status_command, ["--home", str(ledger_home.path)],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "2 records" in result.output and "not anchored yet" in result.output
    assert "EPHEMERAL" in result.output and "[ledger] backend" in result.output
    result = runner.invoke(status_command, ["--home", str(ledger_home.path), "--json"])
    assert json.loads(result.output)["ledger"]["treeSize"] == 2


def test_worker_runs_the_anchoring_job_on_the_embedded_chain(ledger_home, api_key):
    from node.context import node_context
    from node.worker import build_registry

    # a batch is due as soon as one record is unanchored
    app = create_app(ledger_home.config(ledger_anchor_max_records="1"))
    client = app.test_client()
    jobs = {j.name: j for j in build_registry(node_context(app)).jobs}
    job = jobs["ledger.anchor"]
    assert job.interval <= 5.0
    capture(client, api_key, epcis_document(3))
    reports = [job.func() for _ in range(4)]  # create + send, then blocks for confirmations
    assert any(r.sent for r in reports), reports
    assert not any(r.error for r in reports), reports
    anchor = client.get("/ledger").get_json()["latestAnchor"]
    assert anchor is not None and anchor["treeSize"] == 3


def test_rpc_without_contract_runs_no_anchoring_job(ledger_home):
    from node.context import node_context
    from node.worker import build_registry

    app = create_app(ledger_home.config(ledger_backend="rpc",
                                        ledger_rpc_url="http://127.0.0.1:9"),
                     components=["node.ledger_service"])
    assert "ledger.anchor" not in [j.name for j in build_registry(node_context(app)).jobs]


def test_one_anchorer_per_log(db_url):
    import uuid

    from node.db import make_engine
    from node.ledger_service import anchoring_lease

    engine = make_engine(db_url)
    origin, other_origin = f"{uuid.uuid4()}.example/ledger", f"{uuid.uuid4()}.example/ledger"
    try:
        with (anchoring_lease(engine, origin) as first,
              anchoring_lease(engine, origin) as second,
              anchoring_lease(engine, other_origin) as other):
            pass
        with anchoring_lease(engine, origin) as again:
            pass
    finally:
        engine.dispose()
    assert first and other and again
    # PostgreSQL: a second worker is kept out while the first anchors; SQLite: one machine
    assert second is (engine.dialect.name != "postgresql")
