"""Federated rounds between real node processes: an OEM coordinator and three suppliers.

Every supplier keeps the worked scenario's synthetic quality records as a local CSV behind a
``core`` asset whose agreement with the OEM permits only ``cn:federatedCompute`` under
constraints (cohort size, secure aggregation, purpose, epsilon). Rounds run over the signed
peer channel; the coordinator stores every round and logs it to its ledger. Agreements are
written into each supplier's connector store here (as a finalized negotiation would leave
them), so these tests can give owners limits a published offer would not carry; the DSP
negotiation itself is exercised in ``test_fl_negotiated.py``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from connectors import tables as ct
from connectors.dsp.agreement import ContractAgreement
from connectors.dsp.store import ConnectorStore
from federated.tables import privacy_budgets
from ledger.tables import entries as ledger_entries
from node.db import make_engine
from tests.fl_node.faults import add_relayed_node
from tests.support.processes import DataSpace, run_cli

pytestmark = pytest.mark.slow

EDC = {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "odrl": "http://www.w3.org/ns/odrl/2/"}
SUPPLIERS = ("s1", "s2", "s3")
FEATURES = '["temperature", "pressure", "line_speed", "humidity", "tool_wear", "hardness"]'


def fl_policy(aid: str, asset: str, provider: str, *, min_cohort: int = 2,
              max_epsilon: float | None = None) -> dict[str, Any]:
    constraints: list[dict[str, Any]] = [
        {"leftOperand": "cn:cohortSize", "operator": "gteq", "rightOperand": min_cohort},
        {"leftOperand": "cn:secureAggregation", "operator": "eq", "rightOperand": True},
        {"leftOperand": "purpose", "operator": "isAnyOf",
         "rightOperand": ["predictive-quality"]},
        {"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2099-01-01T00:00:00Z"},
    ]
    if max_epsilon is not None:
        constraints.append({"leftOperand": "cn:epsilon", "operator": "lteq",
                            "rightOperand": max_epsilon})
    return {"@id": aid, "@type": "Agreement", "target": asset, "assigner": provider,
            "assignee": "BPN-oem", "timestamp": "2026-01-01T00:00:00Z",
            "permission": [{"action": "cn:federatedCompute", "constraint": constraints}]}


def add_agreement(node, aid: str, asset: str, *, provider: str | None = None,
                  **limits: Any) -> None:
    """A finalized negotiation and its agreement in ``node``'s store: provider side, or the
    consumer (OEM) side when ``provider`` names the counter-party."""
    role = "CONSUMER" if provider else "PROVIDER"
    provider = provider or f"BPN-{node.name}"
    counter_party = provider if role == "CONSUMER" else "BPN-oem"
    engine = make_engine(node.database_url)
    now = datetime.now(UTC)
    try:
        with ConnectorStore(engine).transaction() as tx:
            tx.conn.execute(insert(ct.contract_negotiations).values(
                id=f"neg-{aid}", role=role, state="FINALIZED", counter_party_id=counter_party,
                counter_party_address="http://127.0.0.1:1/protocol", consumer_pid=f"c-{aid}",
                provider_pid=f"neg-{aid}", dataset_id=asset, offer=None,
                contract_definition_id=None, agreement_id=aid, error=None, extra={},
                created_at=now, updated_at=now, version=1))
            tx.insert_agreement(ContractAgreement(
                aid, f"neg-{aid}", provider, "BPN-oem", asset,
                fl_policy(aid, asset, provider, **limits), now))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    base = tmp_path_factory.mktemp("fl")
    with DataSpace(base) as ds:
        env = {"AUTOSPACE_FEDERATED_STAGE_TIMEOUT_SECONDS": "8"}
        ds.add_node("oem", role="oem", env=env)
        ds.relays = {s: add_relayed_node(ds, s, env=env)[1] for s in SUPPLIERS}
        for i, name in enumerate(SUPPLIERS):
            node = ds.nodes[name]
            run_cli("fl", "data", "--home", str(node.home), "--asset", f"{name}-quality",
                    "--supplier", str(i), env=node.env)
        ds.start()
        for name in SUPPLIERS:
            node = ds.nodes[name]
            csv_path = node.home / "fl-data" / f"{name}-quality.csv"
            with node.management() as m:
                r = m.post("/management/v3/assets", json={
                    "@context": EDC, "@id": f"{name}-quality",
                    "properties": {"name": "quality records", "classification": "core",
                                   "homeRegion": "CN"},
                    "dataAddress": {"@type": "DataAddress", "type": "File",
                                    "path": str(csv_path)}})
                assert r.status_code in (200, 201), r.text
            add_agreement(node, f"urn:agreement:{name}:fl", f"{name}-quality")
        add_agreement(ds.nodes["s3"], "urn:agreement:s3:strict", "s3-quality", min_cohort=5)
        add_agreement(ds.nodes["s2"], "urn:agreement:s2:dp", "s2-quality", max_epsilon=1.0)
        add_agreement(ds.nodes["s2"], "urn:agreement:s2:dp4", "s2-quality", max_epsilon=4.0)
        yield ds


def task_file(path: Path, task_id: str, *, rounds: int, agreements: dict[str, str],
              extra: str = "", min_participants: int = 2) -> Path:
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
min_participants = {min_participants}
max_dropout = 0.3

[secure_aggregation]
modulus_bits = 64
update_clip = 10.0
scale = 1048576
{extra}"""
    for name, aid in agreements.items():
        text += f'\n[[participants]]\nid = "BPN-{name}"\nasset = "{name}-quality"\n'
        text += f'agreement = "{aid}"\n' if aid else ""
    path.write_text(text)
    return path


def fl_run(space, task: Path) -> str:
    oem = space.nodes["oem"]
    out = run_cli("fl", "run", "--home", str(oem.home), "--task", str(task), "--quiet",
                  env=oem.env, check=False, timeout=300)
    assert "run: " in out.stdout, out.stdout + out.stderr
    return out.stdout.split("run: ", 1)[1].split()[0]


def run_doc(space, run_id: str) -> dict[str, Any]:
    with space.nodes["oem"].management() as m:
        r = m.get(f"/management/v3/fl/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()


def default_agreements() -> dict[str, str]:
    return {s: f"urn:agreement:{s}:fl" for s in SUPPLIERS}


def test_three_owners_train_and_every_round_is_in_the_ledger(space, tmp_path):
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-basic", rounds=4,
                                     agreements=default_agreements()))
    run = run_doc(space, run_id)
    assert run["status"] == "completed"
    rounds = run["rounds"]
    assert [r["status"] for r in rounds] == ["completed"] * 4
    assert all(sorted(r["survivors"]) == ["BPN-s1", "BPN-s2", "BPN-s3"] for r in rounds)
    first, last = rounds[0]["metrics"], rounds[-1]["metrics"]
    # federated evaluation measures the model each round starts from: it must improve
    assert last["eval_loss"] < first["eval_loss"]
    assert last["eval_accuracy"] > first["eval_accuracy"]
    engine = make_engine(space.nodes["oem"].database_url)
    try:
        with engine.connect() as conn:
            logged = dict(conn.execute(select(ledger_entries.c.record_id,
                                              ledger_entries.c.record).where(
                ledger_entries.c.record_type == "fl-round")).all())
    finally:
        engine.dispose()
    for r in rounds:
        record = json.loads(logged[f"urn:autospace:fl:{run_id}:round:{r['round']}"])
        assert record["taskId"] == "pq-basic" and record["round"] == r["round"]
        assert record["modelHash"] == r["modelHash"]
        assert sorted(record["participants"]) == ["BPN-s1", "BPN-s2", "BPN-s3"]
        assert record["agreementIds"] == sorted(default_agreements().values())
        assert record["runId"] == run_id and record["status"] == "completed"
        assert record["metrics"]["eval_loss"] == r["metrics"]["eval_loss"]
    with space.nodes["oem"].management() as m:
        listed = m.get("/management/v3/fl/runs").json()
        per_round = m.get(f"/management/v3/fl/runs/{run_id}/rounds").json()
        spec = m.get("/management/openapi.json").json()
    assert run_id in [r["runId"] for r in listed]
    assert per_round == rounds
    assert "/management/v3/fl/runs/{run_id}/rounds" in spec["paths"]


def test_agreements_come_from_the_coordinators_store(space, tmp_path):
    """A task naming no agreements uses those this node holds as consumer (what DSP
    negotiations leave behind); for a participant without one the coordinator negotiates
    before round one, and one that offers nothing stops the run, named, before any round."""
    oem = space.nodes["oem"]
    for name in ("s1", "s2"):
        add_agreement(oem, f"urn:agreement:{name}:fl", f"{name}-quality",
                      provider=f"BPN-{name}")
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-store", rounds=1,
                                     agreements={s: None for s in ("s1", "s2")}))
    (only,) = run_doc(space, run_id)["rounds"]
    assert only["status"] == "completed"
    assert sorted(only["survivors"]) == ["BPN-s1", "BPN-s2"]
    out = run_cli("fl", "run", "--home", str(oem.home), "--task",
                  str(task_file(tmp_path / "t3.toml", "pq-store3", rounds=1,
                                agreements={s: None for s in SUPPLIERS})),
                  "--quiet", env=oem.env, check=False, timeout=120)
    assert out.returncode != 0 and "run: " not in out.stdout
    assert "no agreement for federated computation with BPN-s3" in out.stderr, out.stderr


def test_owner_refuses_a_round_its_agreement_forbids(space, tmp_path):
    agreements = {**default_agreements(), "s3": "urn:agreement:s3:strict"}
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-strict", rounds=2,
                                     agreements=agreements))
    run = run_doc(space, run_id)
    for r in run["rounds"]:
        assert r["status"] == "completed"  # the two others are enough (minimum 2)
        assert "below the agreed minimum of 5" in r["refusals"]["BPN-s3"]
        assert sorted(r["survivors"]) == ["BPN-s1", "BPN-s2"]
    status = run_cli("fl", "status", "--home", str(space.nodes["oem"].home), run_id,
                     env=space.nodes["oem"].env).stdout
    assert "refused by BPN-s3" in status and "agreed minimum of 5" in status


def test_epsilon_budget_is_enforced_per_agreement(space, tmp_path):
    agreements = {"s1": "urn:agreement:s1:fl", "s2": "urn:agreement:s2:dp"}
    dp = "\n[privacy]\nclip_norm = 1.0\nnoise_multiplier = 2.0\ndelta = 1e-5\n"
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-dp", rounds=2,
                                     agreements=agreements, extra=dp))
    run = run_doc(space, run_id)
    # one round at sigma 2 costs more than epsilon 1 at delta 1e-5: s2 refuses every round
    for r in run["rounds"]:
        assert r["status"] == "aborted"
        assert "epsilon budget exhausted" in r["refusals"]["BPN-s2"]
        assert "BPN-s2 refused" in r["abortReason"]


def test_epsilon_budget_is_spent_round_by_round_and_persisted(space, tmp_path):
    """sigma 2, delta 1e-5: epsilon 2.53 after one round, 3.64 after two, 4.54 after three;
    the agreement allows 4.0, so s2 contributes twice and then refuses."""
    agreements = {"s1": "urn:agreement:s1:fl", "s2": "urn:agreement:s2:dp4"}
    dp = "\n[privacy]\nclip_norm = 1.0\nnoise_multiplier = 2.0\ndelta = 1e-5\n"
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-dp4", rounds=3,
                                     agreements=agreements, extra=dp))
    rounds = run_doc(space, run_id)["rounds"]
    assert [r["status"] for r in rounds] == ["completed", "completed", "aborted"]
    # the round's epsilon is the largest of its participants' (s1's agreement has spent more,
    # in earlier tests: budgets are per agreement, across tasks)
    assert rounds[1]["epsilon"] >= 3.6447 - 1e-3
    assert "epsilon budget exhausted: 3.64 spent" in rounds[2]["refusals"]["BPN-s2"]
    engine = make_engine(space.nodes["s2"].database_url)
    try:
        with engine.connect() as conn:
            budget = conn.execute(select(privacy_budgets).where(
                privacy_budgets.c.agreement_id == "urn:agreement:s2:dp4")).mappings().one()
    finally:
        engine.dispose()
    assert budget["steps"] == 2 and budget["epsilon_spent"] == pytest.approx(3.6447, abs=1e-3)


def test_report_writes_csv_and_png(space, tmp_path):
    oem = space.nodes["oem"]
    listed = json.loads(run_cli("fl", "status", "--home", str(oem.home), "--json",
                                env=oem.env).stdout)
    run_id = next(r["runId"] for r in listed if r["taskId"] == "pq-basic")
    out = tmp_path / "report"
    run_cli("fl", "report", run_id, "--home", str(oem.home), "-o", str(out), env=oem.env)
    rows = (out / f"{run_id}-rounds.csv").read_text().splitlines()
    assert rows[0].startswith("round,status") and len(rows) == 5
    png = (out / f"{run_id}-curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_peer_endpoint_checks_caller_and_message(space):
    s1, s2, oem = space.nodes["s1"], space.nodes["s2"], space.nodes["oem"]
    url = s2.url + "/peer/fl/messages"
    forged = {"type": "AdvertiseRequest", "protocol": "autospace-secagg+/1",
              "header": {"task_id": "t", "round": 1, "stage": "advertise-keys",
                         "sender": oem.did, "recipient": "BPN-s2"},
              "config": {"cohort": ["BPN-s1", "BPN-s2"], "vector_length": 3,
                         "modulus_bits": 64, "degree": 1, "threshold": 2,
                         "round_seed": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}
    assert httpx.post(url, json=forged, timeout=10).status_code == 401
    with s1.peer_client() as client:  # s1 pretends to be the OEM coordinator
        reply = client.post(url, audience=s2.did, json=forged, idempotent=False)
        assert reply.status_code == 200, reply.text
        assert reply.json()["type"] == "Refusal"
        assert "is not the authenticated caller" in reply.json()["reason"]
        bad = client.post(url, audience=s2.did, json={"type": "Nope"}, idempotent=False)
        assert bad.status_code == 400 and "Traceback" not in bad.text
    with oem.peer_client() as client:  # the real coordinator, but no round was offered
        reply = client.post(url, audience=s2.did, json=forged, idempotent=False).json()
        assert reply["type"] == "Refusal" and "no open round" in reply["reason"]


def test_management_api_starts_a_run(space, tmp_path):
    task = task_file(tmp_path / "t.toml", "pq-api", rounds=2, agreements=default_agreements())
    with space.nodes["oem"].management() as m:
        bad = m.post("/management/v3/fl/runs", json={"task": "[task]\nid = 1\n"})
        assert bad.status_code == 400 and bad.json()["errors"], bad.text
        started = m.post("/management/v3/fl/runs", json={"task": task.read_text()})
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        deadline = time.monotonic() + 120
        while (doc := run_doc(space, run_id))["status"] == "running":
            assert time.monotonic() < deadline, doc
            time.sleep(0.2)
    assert doc["status"] == "completed" and len(doc["rounds"]) == 2


def test_participant_killed_mid_round(space, tmp_path):
    """s3 dies after sharing its keys in round 2 (before its masked input): the round completes
    from s1 and s2 (threshold 2 of 3), s3's mask key rebuilt from their shares. In round 3 s3
    is gone and s2 dies at the same step: one survivor is below the threshold of 2, and the
    round aborts cleanly (model unchanged)."""
    space.relays["s3"].arm("pq-kill", 2, "MaskedInputRequest")
    space.relays["s2"].arm("pq-kill", 3, "MaskedInputRequest")
    run_id = fl_run(space, task_file(tmp_path / "t.toml", "pq-kill", rounds=3,
                                     agreements=default_agreements()))
    assert space.relays["s3"].fired.is_set() and space.relays["s2"].fired.is_set()
    rounds = run_doc(space, run_id)["rounds"]
    assert rounds[0]["status"] == "completed" and len(rounds[0]["survivors"]) == 3
    assert rounds[1]["status"] == "completed", rounds[1]
    assert "BPN-s3" in rounds[1]["accepted"]  # it was in the round when it died
    assert sorted(rounds[1]["survivors"]) == ["BPN-s1", "BPN-s2"]
    assert "BPN-s3" in rounds[1]["dropped"]
    assert rounds[2]["status"] == "aborted" and rounds[2]["abortReason"], rounds[2]
    assert sorted(rounds[2]["accepted"]) == ["BPN-s1", "BPN-s2"]
    assert "dropped: BPN-s2" in rounds[2]["abortReason"]  # why, as the coordinator saw it
    assert rounds[2]["modelHash"] == rounds[1]["modelHash"]  # the model did not move
    assert httpx.get(space.nodes["oem"].url + "/health/live").status_code == 200
