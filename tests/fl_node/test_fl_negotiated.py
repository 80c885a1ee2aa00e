"""Participation negotiated over DSP: owners offer ``cn:federatedCompute``-only terms.

Real node processes (cn-auto profile): two suppliers publish their quality records as
``core`` assets through the management API, with a contract policy that permits only
federated computation (secure aggregation on, cohort of at least 2, an epsilon budget, a
purpose). The OEM sees the offers in their catalogs; ``autospace fl run`` with a task naming
no agreements negotiates one with each owner over DSP before round one, then trains under
them. Asking for the same data with ``use`` terms is refused, and an owner offering nothing
negotiable stops the run before round one with its name and the reason.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ledger.tables import entries as ledger_entries
from node.db import make_engine
from tests.support.processes import DataSpace, run_cli

pytestmark = pytest.mark.slow

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/"}
ODRL = "http://www.w3.org/ns/odrl.jsonld"
CN = "https://w3id.org/autospace/cn-auto/"
PROTOCOL = "dataspace-protocol-http:2025-1"
SUPPLIERS = ("s1", "s2")
FEATURES = '["temperature", "pressure", "line_speed", "humidity", "tool_wear", "hardness"]'
ENV = {"AUTOSPACE_FEDERATED_STAGE_TIMEOUT_SECONDS": "8", "AUTOSPACE_CONNECTOR_PROFILE": "cn-auto"}


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 204), response.text
    return response.json() if response.content else None


def fl_terms(epsilon: float = 20.0) -> dict[str, Any]:
    return {"@context": [ODRL, {"cn": CN}], "@type": "Set", "permission": [{
        "action": "cn:federatedCompute", "constraint": [
            {"leftOperand": "cn:secureAggregation", "operator": "eq", "rightOperand": True},
            {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": 2},
            {"leftOperand": "cn:epsilon", "operator": "lteq", "rightOperand": epsilon},
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "predictive-quality"},
            {"leftOperand": "dateTime", "operator": "lt",
             "rightOperand": "2099-01-01T00:00:00Z"}]}]}


def publish(node, asset: str, csv_path: Path, *, offered: bool = True) -> None:
    with node.management() as m:
        ok(m.post("/management/v3/assets", json={
            "@context": EDC, "@id": asset,
            "properties": {"name": "quality records", "classification": "core",
                           "homeRegion": "CN"},
            "dataAddress": {"@type": "DataAddress", "type": "File", "path": str(csv_path)}}))
        if not offered:
            return
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "access-oem",
            "policy": {"@context": ODRL, "@type": "Set",
                       "permission": [{"action": "use", "assignee": "BPN-oem"}]}}))
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "federated-only", "policy": fl_terms()}))
        ok(m.post("/management/v3/contractdefinitions", json={
            "@context": EDC, "@id": f"cd-{asset}", "accessPolicyId": "access-oem",
            "contractPolicyId": "federated-only",
            "assetsSelector": [{"@type": "Criterion",
                                "operandLeft": "https://w3id.org/edc/v0.0.1/ns/id",
                                "operator": "=", "operandRight": asset}]}))


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("flneg")
    with DataSpace(base) as ds:
        ds.add_node("oem", role="oem", env=ENV)
        for i, name in enumerate((*SUPPLIERS, "s3")):
            node = ds.add_node(name, env=ENV)
            run_cli("fl", "data", "--home", str(node.home), "--asset", f"{name}-quality",
                    "--supplier", str(i), env=node.env)
        ds.start()
        for name in (*SUPPLIERS, "s3"):
            node = ds.nodes[name]
            # s3 keeps its data private without offering it to anyone
            publish(node, f"{name}-quality", node.home / "fl-data" / f"{name}-quality.csv",
                    offered=name != "s3")
        yield ds


def task_file(path: Path, task_id: str, names: tuple[str, ...], rounds: int = 3) -> Path:
    """A task with DP (the offers carry an epsilon budget: sigma 2 spends about 4.5 in three
    rounds at delta 1e-5, within the budget of 20)."""
    text = f"""[task]
id = "{task_id}"
purpose = "predictive-quality"
model = "logistic"
features = {FEATURES}
label = "defect"
rounds = {rounds}
local_epochs = 2
learning_rate = 0.2
strategy = "fedavg"
seed = 3

[cohort]
min_participants = 2
max_dropout = 0.3

[secure_aggregation]
modulus_bits = 64
update_clip = 10.0
scale = 1048576

[privacy]
clip_norm = 1.0
noise_multiplier = 2.0
delta = 1e-5
"""
    for name in names:
        text += f'\n[[participants]]\nid = "BPN-{name}"\nasset = "{name}-quality"\n'
    path.write_text(text)
    return path


def catalog_offer(oem, supplier) -> dict[str, Any] | None:
    with oem.management() as m:
        cat = ok(m.post("/management/v3/catalog/request", json={
            "@context": EDC, "@type": "CatalogRequest",
            "counterPartyAddress": supplier.url + "/protocol",
            "counterPartyId": f"BPN-{supplier.name}", "protocol": PROTOCOL}))
    items = cat.get("dcat:dataset", [])
    for d in items if isinstance(items, list) else [items]:
        if d["@id"] == f"{supplier.name}-quality":
            offers = d["odrl:hasPolicy"]
            return offers[0] if isinstance(offers, list) else offers
    return None


def agreements(node, role: str) -> list[dict[str, Any]]:
    with node.management() as m:
        found = ok(m.post("/management/v3/contractagreements/request", json={
            "@context": EDC, "@type": "QuerySpec"}))
    return [a for a in found if (a["consumerId"] if role == "consumer" else a["providerId"])
            == f"BPN-{node.name}"]


def test_the_oem_sees_the_federated_offers(space):
    oem = space.nodes["oem"]
    for name in SUPPLIERS:
        offer = catalog_offer(oem, space.nodes[name])
        assert offer is not None, f"{name}'s federated offer is not in the OEM's catalog"
        assert "federatedCompute" in json.dumps(offer["odrl:permission"])
    assert catalog_offer(oem, space.nodes["s3"]) is None  # nothing offered


def test_fl_run_negotiates_over_dsp_then_trains(space, tmp_path):
    oem = space.nodes["oem"]
    out = run_cli("fl", "run", "--home", str(oem.home), "--task",
                  str(task_file(tmp_path / "t.toml", "pq-negotiated", SUPPLIERS)),
                  "--quiet", env=oem.env, check=False, timeout=300)
    assert "run: " in out.stdout, out.stdout + out.stderr
    run_id = out.stdout.split("run: ", 1)[1].split()[0]
    with oem.management() as m:
        run = ok(m.get(f"/management/v3/fl/runs/{run_id}"))
    assert run["status"] == "completed", run["rounds"]
    assert all(r["status"] == "completed" and sorted(r["survivors"]) == ["BPN-s1", "BPN-s2"]
               for r in run["rounds"])
    # one agreement per owner, concluded over DSP (both sides hold it)
    held = {a["providerId"]: a for a in agreements(oem, "consumer")}
    assert set(held) == {"BPN-s1", "BPN-s2"}
    for name in SUPPLIERS:
        theirs = {a["@id"] for a in agreements(space.nodes[name], "provider")}
        assert held[f"BPN-{name}"]["@id"] in theirs
        assert "federatedCompute" in json.dumps(held[f"BPN-{name}"]["policy"])
    # every round's ledger record names the agreements, the run and the round's status
    engine = make_engine(oem.database_url)
    try:
        with engine.connect() as conn:
            logged = [json.loads(r) for r in conn.execute(select(ledger_entries.c.record).where(
                ledger_entries.c.record_type == "fl-round")).scalars()]
    finally:
        engine.dispose()
    mine = [r for r in logged if r.get("runId") == run_id]
    assert len(mine) == len(run["rounds"]) == 3
    ids = sorted(a["@id"] for a in held.values())
    assert all(sorted(r["agreementIds"]) == ids and r["status"] == "completed" for r in mine)
    # a second run reuses the agreements instead of negotiating again
    again = run_cli("fl", "run", "--home", str(oem.home), "--task",
                    str(task_file(tmp_path / "t2.toml", "pq-again", SUPPLIERS, rounds=1)),
                    "--quiet", env=oem.env, check=False, timeout=300)
    assert "status: completed" in again.stdout, again.stdout + again.stderr
    assert len(agreements(oem, "consumer")) == 2


def test_use_terms_for_the_same_data_are_refused(space):
    oem, s1 = space.nodes["oem"], space.nodes["s1"]
    offer = catalog_offer(oem, s1)
    assert offer is not None
    use = json.loads(json.dumps(offer).replace("cn:federatedCompute", "use")
                     .replace(CN + "federatedCompute", "use"))
    assert "federatedCompute" not in json.dumps(use)
    with oem.management() as m:
        created = ok(m.post("/management/v3/contractnegotiations", json={
            "@context": EDC, "@type": "ContractRequest",
            "counterPartyAddress": s1.url + "/protocol", "counterPartyId": "BPN-s1",
            "protocol": PROTOCOL,
            "policy": {"@context": ODRL, **use, "target": "s1-quality",
                       "assigner": "BPN-s1"}}))
        deadline = time.monotonic() + 20
        while (neg := ok(m.get(f"/management/v3/contractnegotiations/{created['@id']}"))
               )["state"] not in ("FINALIZED", "TERMINATED"):
            assert time.monotonic() < deadline, neg
            time.sleep(0.1)
    assert neg["state"] == "TERMINATED", neg
    # and the federated agreement does not let the OEM transfer the data
    (agreement,) = [a for a in agreements(oem, "consumer") if a["providerId"] == "BPN-s1"]
    with oem.management() as m:
        started = ok(m.post("/management/v3/transferprocesses", json={
            "@context": EDC, "@type": "TransferRequest",
            "counterPartyAddress": s1.url + "/protocol", "contractId": agreement["@id"],
            "protocol": PROTOCOL, "transferType": "HttpData-PULL"}))
        deadline = time.monotonic() + 20
        while (t := ok(m.get(f"/management/v3/transferprocesses/{started['@id']}"))
               )["state"] not in ("STARTED", "TERMINATED", "COMPLETED"):
            assert time.monotonic() < deadline, t
            time.sleep(0.1)
    assert t["state"] == "TERMINATED", t


def test_an_owner_without_a_federated_offer_stops_the_run_before_round_one(space, tmp_path):
    oem = space.nodes["oem"]
    before = run_cli("fl", "status", "--home", str(oem.home), "--json", env=oem.env).stdout
    out = run_cli("fl", "run", "--home", str(oem.home), "--task",
                  str(task_file(tmp_path / "t.toml", "pq-s3", (*SUPPLIERS, "s3"))),
                  "--quiet", env=oem.env, check=False, timeout=300)
    assert out.returncode != 0
    assert "BPN-s3" in out.stderr and "s3-quality" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    after = run_cli("fl", "status", "--home", str(oem.home), "--json", env=oem.env).stdout
    assert json.loads(after) == json.loads(before)  # nothing stored


def test_a_run_started_through_the_management_api_negotiates_too(space, tmp_path):
    """The server's own connector negotiates for runs it starts (s1 offers a second asset
    the OEM holds no agreement for; s2's agreement from the CLI run is reused)."""
    oem, s1 = space.nodes["oem"], space.nodes["s1"]
    with s1.management() as m:
        ok(m.post("/management/v3/assets", json={
            "@context": EDC, "@id": "s1-quality-2",
            "properties": {"name": "more quality records", "classification": "core",
                           "homeRegion": "CN"},
            "dataAddress": {"@type": "DataAddress", "type": "File",
                            "path": str(s1.home / "fl-data" / "s1-quality.csv")}}))
        ok(m.post("/management/v3/contractdefinitions", json={
            "@context": EDC, "@id": "cd-s1-quality-2", "accessPolicyId": "access-oem",
            "contractPolicyId": "federated-only",
            "assetsSelector": [{"@type": "Criterion",
                                "operandLeft": "https://w3id.org/edc/v0.0.1/ns/id",
                                "operator": "=", "operandRight": "s1-quality-2"}]}))
    text = task_file(tmp_path / "t.toml", "pq-api-neg", SUPPLIERS, rounds=1).read_text()
    text = text.replace('asset = "s1-quality"', 'asset = "s1-quality-2"')
    with oem.management() as m:
        started = m.post("/management/v3/fl/runs", json={"task": text})
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        deadline = time.monotonic() + 120
        while True:
            r = m.get(f"/management/v3/fl/runs/{run_id}")
            if r.status_code == 200 and r.json()["status"] != "running":
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
    assert r.json()["status"] == "completed", r.json()
    assets = {a["assetId"] for a in agreements(oem, "consumer")}
    assert "s1-quality-2" in assets
