"""`autospace dataspace up/down`: the README's run command, as real processes."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import httpx
import pytest

from tests.support.processes import run_cli

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}
PROTOCOL = "dataspace-protocol-http:2025-1"


def _free_block(size: int = 4) -> int:
    """A base port with ``size`` consecutive free ports above it."""
    for _ in range(50):
        base = random.randint(20000, 60000)
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ds") / "dataspace"
    run_cli("dataspace", "up", str(folder), "--base-port", str(_free_block()), timeout=240)
    try:
        yield folder, json.loads((folder / "dataspace.json").read_text())
    finally:
        out = run_cli("dataspace", "down", str(folder)).stdout
        assert "stopped" in out


def _catalog(consumer: dict, provider: dict) -> list[dict]:
    with httpx.Client(base_url=consumer["url"], headers={"X-Api-Key": consumer["api_key"]},
                      timeout=30) as m:
        r = m.post("/management/v3/catalog/request", json={
            "@context": EDC, "@type": "CatalogRequest",
            "counterPartyAddress": provider["protocol_url"],
            "counterPartyId": provider["participant_id"], "protocol": PROTOCOL})
    assert r.status_code == 200, r.text
    items = r.json().get("dcat:dataset", [])
    return items if isinstance(items, list) else [items]


def test_layout_names_every_participant(space):
    folder, layout = space
    assert set(layout["participants"]) == {"oem", "supplier-brakes", "supplier-cells"}
    assert (folder / "dataspace.json").stat().st_mode & 0o077 == 0  # holds API keys
    for p in layout["participants"].values():
        assert p["did"].startswith("did:web:127.0.0.1")
        doc = httpx.get(p["url"] + "/.well-known/did.json", timeout=10).json()
        assert doc["id"] == p["did"]
        assert httpx.get(p["protocol_url"].rsplit("/", 1)[0]
                         + "/.well-known/dspace-version", timeout=10).status_code == 200


def test_catalog_shows_each_member_what_its_access_policy_allows(space):
    _, layout = space
    parts = layout["participants"]
    oem_view = {d["@id"] for d in _catalog(parts["oem"], parts["supplier-brakes"])}
    peer_view = {d["@id"] for d in _catalog(parts["supplier-cells"], parts["supplier-brakes"])}
    assert oem_view == {"sup1-quality-inspections", "sup1-delivery-forecast",
                        "sup1-quality-records"}
    assert peer_view == {"sup1-delivery-forecast"}  # quality data is for the OEM only


def test_traceability_events_are_in_the_oem_ledger(space):
    _, layout = space
    oem = layout["participants"]["oem"]
    with httpx.Client(base_url=oem["url"], headers={"X-Api-Key": oem["api_key"]},
                      timeout=30) as m:
        r = m.get("/management/epcis/events", params={"eventType": "ObjectEvent"})
        assert r.status_code == 200, r.text
        body = r.json()
    assert len(body["ledgerEntries"]) == 2
    assert httpx.get(oem["url"] + "/ledger", timeout=10).json()["treeSize"] >= 4


def test_up_refuses_a_running_space_and_status_reports_it(space):
    folder, _ = space
    again = run_cli("dataspace", "up", str(folder), check=False)
    assert again.returncode != 0 and "already running" in again.stderr
    status = json.loads(run_cli("dataspace", "status", str(folder), "--json").stdout)
    assert all(row["running"] for row in status)


def test_the_oem_trains_with_the_suppliers_and_beats_each_local_model(space):
    """The README's worked scenario: ``autospace fl run`` with the task file ``up`` wrote
    negotiates a federated-compute agreement with each supplier over DSP, trains with secure
    aggregation, and the model beats what each supplier could learn alone (on a
    held-out set of parts from both suppliers)."""
    import numpy as np
    from sqlalchemy import select

    from federated import scenario
    from federated.data import read_csv
    from federated.models import build_model
    from federated.tables import runs
    from node.config import NodeConfig
    from node.db import make_engine

    folder, layout = space
    oem = layout["participants"]["oem"]
    task = folder / "fl-task.toml"
    assert "[[participants]]" in task.read_text()
    out = run_cli("fl", "run", "--home", oem["home"], "--task", str(task), "--quiet",
                  check=False, timeout=600)
    assert "status: completed" in out.stdout, out.stdout + out.stderr
    run_id = out.stdout.split("run: ", 1)[1].split()[0]
    with httpx.Client(base_url=oem["url"], headers={"X-Api-Key": oem["api_key"]},
                      timeout=30) as m:
        run = m.get(f"/management/v3/fl/runs/{run_id}").json()
        held = m.post("/management/v3/contractagreements/request",
                      json={"@context": EDC, "@type": "QuerySpec"}).json()
    assert len(run["rounds"]) == 10
    assert all(r["status"] == "completed" and len(r["survivors"]) == 2 for r in run["rounds"])
    assert {a["providerId"] for a in held} >= {"BPNL00000000SUP1", "BPNL00000000SUP2"}
    engine = make_engine(NodeConfig.load(Path(oem["home"])).db_url)
    try:
        with engine.connect() as conn:
            raw = conn.execute(select(runs.c.weights).where(runs.c.id == run_id)).scalar_one()
    finally:
        engine.dispose()
    test = scenario.test_set(2)

    def accuracy(weights: np.ndarray) -> float:
        model = build_model("logistic", len(scenario.FEATURES))
        model.set_weights(weights)
        return model.evaluate(test.x, test.y).accuracy

    federated = accuracy(np.frombuffer(raw, dtype="<f8"))
    for key in ("supplier-brakes", "supplier-cells"):
        home = Path(layout["participants"][key]["home"])
        (path,) = (home / "fl-data").glob("*-quality-records.csv")
        own = read_csv(path, scenario.LABEL)
        local = build_model("logistic", len(scenario.FEATURES))
        # as many passes over its own data as the federated run made (10 rounds x 2 epochs)
        local.fit(own.x, own.y, epochs=20, learning_rate=0.1, rng=np.random.default_rng(0))
        assert federated > accuracy(local.get_weights()), key
