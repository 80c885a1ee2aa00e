"""The ledger exposed by real node processes on 127.0.0.1 (SQLite or PostgreSQL).

An OEM node anchors on a real anvil (``rpc`` backend, contract deployed with
``autospace ledger deploy``); a supplier (party to the events), an outsider (not a party)
and an auditor call its peer endpoints with real peer tokens. Auditor tooling runs as
the ``autospace`` CLI in its own processes. A second test runs a node on the embedded
(in-process, ephemeral) chain.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ledger_node.conftest import epcis_document
from tests.support.anvil import MISSING, anvil_path, running_anvil
from tests.support.databases import fresh_database_url
from tests.support.processes import DataSpace, create_node, run_cli

PROBLEM = "application/problem+json"
ANCHOR_TIMEOUT = 90.0

needs_anvil = pytest.mark.skipif(anvil_path() is None, reason=MISSING)


def capture(node: Any, doc: dict[str, Any]) -> list[dict[str, Any]]:
    with node.management() as client:
        resp = client.post("/management/epcis/capture", json=doc)
    assert resp.status_code == 201, resp.text
    return resp.json()["events"]


def wait_for_anchor(node: Any, size: int, timeout: float = ANCHOR_TIMEOUT) -> dict[str, Any]:
    """The node's newest confirmed anchor once it covers ``size`` leaves."""
    deadline = time.monotonic() + timeout
    with node.management() as client:
        while True:
            status = client.get("/management/ledger").json()
            anchor = status.get("latestAnchor")
            if anchor and anchor["treeSize"] >= size:
                return anchor
            if time.monotonic() > deadline:
                raise AssertionError(f"no anchor covering {size} leaves within {timeout}s: "
                                     f"{status}\n{node.process.logs()[-3000:]}")
            time.sleep(0.5)


def verify(path: Path, *args: str) -> Any:
    return run_cli("audit", "verify", str(path), *args, check=False)


def tampered(bundle: dict[str, Any], path: Path, change: Any) -> Path:
    copy = json.loads(json.dumps(bundle))
    change(copy)
    path.write_text(json.dumps(copy))
    return path


@pytest.fixture(scope="module")
def anvil():
    if anvil_path() is None:
        pytest.skip(MISSING)
    with running_anvil(extra_args=("--block-time", "1")) as node:
        yield node


@pytest.fixture(scope="module")
def space(tmp_path_factory, anvil):
    from ledger.evm import account_from_key

    base = tmp_path_factory.mktemp("ledger-space")
    ledger_env = {
        "AUTOSPACE_WORKER_EMBEDDED": "true",  # serve starts `autospace worker` (anchoring)
        "AUTOSPACE_LEDGER_BACKEND": "rpc",
        "AUTOSPACE_LEDGER_RPC_URL": anvil.url,
        "AUTOSPACE_LEDGER_CHAIN_ID": str(anvil.chain_id),
        "AUTOSPACE_LEDGER_ANCHOR_INTERVAL_SECONDS": "1",
        "AUTOSPACE_LEDGER_CONFIRMATIONS": "2",
    }
    with DataSpace(base) as ds:
        ds.add_nodes({"oem": "oem", "supplier": "supplier", "outsider": "supplier",
                      "auditor": "auditor"}, envs={"oem": ledger_env})
        oem = ds.nodes["oem"]
        anvil.fund(account_from_key(oem.keys().evm_private_key("anchor")).address)
        out = run_cli("ledger", "deploy", "--home", str(oem.home), env=oem.env).stdout
        contract = re.search(r"deployed at (0x[0-9a-fA-F]{40})", out).group(1)  # type: ignore[union-attr]
        # env overrides are TOML literals, and a bare 0x... would be a TOML integer
        oem.env["AUTOSPACE_LEDGER_CONTRACT"] = f'"{contract}"'
        ds.contract = contract  # type: ignore[attr-defined]
        ds.start()
        yield ds


@pytest.fixture(scope="module")
def parties_events(space) -> list[dict[str, Any]]:
    """Events captured on the OEM node whose parties are the OEM and the supplier."""
    oem, supplier = space.nodes["oem"], space.nodes["supplier"]
    return capture(oem, epcis_document(3, source=oem.did, destination=supplier.did))


@needs_anvil
def test_public_endpoints_answer_without_auth(space, parties_events):
    oem = space.nodes["oem"]
    info = httpx.get(oem.url + "/ledger").json()
    assert info["chain"] == {"backend": "rpc", "ephemeral": False, "chainId": 31337,
                             "contract": space.contract}
    resp = httpx.get(oem.url + "/ledger/checkpoint")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    from ledger.checkpoint import parse_and_verify

    cp = parse_and_verify(resp.text, info["verifierKey"])
    assert cp.size >= 3
    assert httpx.get(oem.url + f"/ledger/proof/inclusion?index=0&size={cp.size}").status_code \
        == 200
    assert httpx.get(oem.url + f"/ledger/proof/consistency?first=1&second={cp.size}") \
        .status_code == 200
    for url, status in ((f"/ledger/proof/inclusion?index=0&size={10**12}", 404),
                        ("/ledger/proof/inclusion?index=0&size=" + "9" * 30, 400),
                        ("/ledger/proof/consistency?first=x&second=1", 400)):
        resp = httpx.get(oem.url + url)
        assert resp.status_code == status
        assert resp.headers["content-type"] == PROBLEM
    assert oem.process.alive()


@needs_anvil
def test_capture_anchor_bundle_verify_on_anvil(space, anvil, parties_events, tmp_path):
    oem = space.nodes["oem"]
    key = httpx.get(oem.url + "/ledger").json()["verifierKey"]
    event_id = parties_events[1]["eventID"]
    anchor = wait_for_anchor(oem, parties_events[-1]["ledger"]["leafIndex"] + 1)
    assert anchor["chainId"] == 31337 and anchor["txHash"].startswith("0x")

    cli_file = tmp_path / "cli-bundle.json"
    run_cli("audit", "bundle", "--home", str(oem.home), "--record", event_id,
            "-o", str(cli_file), env=oem.env)
    with oem.management() as client:
        resp = client.get(f"/management/ledger/records/{event_id}/bundle")
    assert resp.status_code == 200
    api_file = tmp_path / "api-bundle.json"
    api_file.write_text(resp.text)
    bundle = resp.json()
    assert bundle["anchor"] is not None and bundle["anchor"]["chain_id"] == 31337

    for path in (cli_file, api_file):
        proc = verify(path, "--rpc", anvil.url, "--trusted-key", key)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "VALID" in proc.stdout

    def edit_value(b: dict) -> None:
        b["record"]["value"]["bizStep"] = "receiving"

    def edit_salt(b: dict) -> None:
        b["record"]["salt"] = "00" * 16

    def edit_anchor_root(b: dict) -> None:
        b["anchor"]["root"] = b["inclusion_proof"][0] if b["inclusion_proof"] else "A" * 44

    for name, change in (("value", edit_value), ("salt", edit_salt),
                         ("anchor", edit_anchor_root)):
        proc = verify(tampered(bundle, tmp_path / f"{name}.json", change),
                      "--rpc", anvil.url, "--trusted-key", key)
        assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
        assert "INVALID" in proc.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not a bundle")
    assert verify(garbage).returncode == 2


@needs_anvil
def test_bundle_against_an_older_checkpoint(space, anvil, tmp_path):
    """``?size=N``: inclusion in an older checkpoint, tied to a later anchor by consistency."""
    oem = space.nodes["oem"]
    key = httpx.get(oem.url + "/ledger").json()["verifierKey"]
    first = capture(oem, epcis_document(2))
    from ledger.checkpoint import Checkpoint

    old_size = Checkpoint.from_note(httpx.get(oem.url + "/ledger/checkpoint").text).size
    more = capture(oem, epcis_document(2))
    wait_for_anchor(oem, more[-1]["ledger"]["leafIndex"] + 1)
    with oem.management() as client:
        resp = client.get(f"/management/ledger/records/{first[0]['eventID']}/bundle",
                          params={"size": old_size})
        assert resp.status_code == 200, resp.text
        bundle = resp.json()
        bad = client.get(f"/management/ledger/records/{first[0]['eventID']}/bundle",
                         params={"size": first[0]["ledger"]["leafIndex"]})
        assert bad.status_code == 404  # a tree that does not contain the record
    assert bundle["tree_size"] == old_size
    path = tmp_path / "older.json"
    path.write_text(json.dumps(bundle))
    proc = verify(path, "--rpc", anvil.url, "--trusted-key", key)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if bundle["anchor"]["tree_size"] > old_size:  # the usual case: anchored later
        assert bundle["anchor"]["consistency_proof"]
        stripped = tampered(bundle, tmp_path / "stripped.json",
                            lambda b: b["anchor"].pop("consistency_proof"))
        # without the proof in the bundle, the auditor fetches it from the public endpoint
        proc = verify(stripped, "--rpc", anvil.url, "--trusted-key", key,
                      "--from", oem.url + "/ledger")
        assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_anvil
def test_consistency_between_checkpoints_fetched_over_time(space, parties_events, tmp_path):
    oem = space.nodes["oem"]
    key = httpx.get(oem.url + "/ledger").json()["verifierKey"]
    old = tmp_path / "old.checkpoint"
    old.write_text(httpx.get(oem.url + "/ledger/checkpoint").text)
    capture(oem, epcis_document(5))
    new = tmp_path / "new.checkpoint"
    new.write_text(httpx.get(oem.url + "/ledger/checkpoint").text)
    assert old.read_text() != new.read_text()

    base = oem.url + "/ledger"
    proc = run_cli("audit", "consistency", str(old), str(new), "--trusted-key", key,
                   "--from", base, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CONSISTENT" in proc.stdout
    # the other way round the "new" log is smaller: truncation is reported
    proc = run_cli("audit", "consistency", str(new), str(old), "--trusted-key", key,
                   "--from", base, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr


@needs_anvil
def test_entries_only_for_parties_and_auditors(space, parties_events):
    oem = space.nodes["oem"]
    event = parties_events[0]
    index = event["ledger"]["leafIndex"]
    url = oem.url + f"/ledger/records/{event['eventID']}"

    with space.nodes["supplier"].peer_client() as client:  # destination of the events
        resp = client.get(url, audience=oem.did)
        assert resp.status_code == 200, resp.text
        entry = resp.json()
        assert entry["record"] == event["event"] and len(entry["salt"]) == 32
        assert client.get(oem.url + f"/ledger/entries/{index}",
                          audience=oem.did).json()["salt"] == entry["salt"]
    with space.nodes["auditor"].peer_client() as client:
        resp = client.get(url, audience=oem.did)
        assert resp.status_code == 200 and resp.json()["salt"] == entry["salt"]
        bundle = client.get(url + "/bundle", audience=oem.did)
        assert bundle.status_code == 200 and bundle.json()["record"]["salt"] == entry["salt"]
    with space.nodes["outsider"].peer_client() as client:
        by_id = client.get(url, audience=oem.did)
        assert by_id.status_code == 404 and "salt" not in by_id.text
        unknown = client.get(oem.url + "/ledger/records/urn:uuid:none", audience=oem.did)
        assert unknown.json()["detail"] == by_id.json()["detail"]  # no existence oracle
        by_index = client.get(oem.url + f"/ledger/entries/{index}", audience=oem.did)
        assert by_index.status_code == 403 and "salt" not in by_index.text
        assert client.get(url + "/bundle", audience=oem.did).status_code == 404
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM


@needs_anvil
def test_agreement_parties_read_their_agreement(space):
    """A contract agreement another component logged: provider and consumer may read it."""
    from ledger.log import Log
    from ledger.settings import default_origin
    from node.db import make_engine

    oem = space.nodes["oem"]
    engine = make_engine(oem.database_url)
    try:
        with engine.begin() as conn:
            log = Log.open(conn, default_origin(oem.url))
            log.append(conn, "contract-agreement", {
                "agreementId": "agr-ledger-node-1", "assetId": "asset-1",
                "providerId": "BPN-oem", "consumerId": "BPN-supplier",
                "signedAt": "2026-03-01T00:00:00Z"}, record_id="agr-ledger-node-1")
    finally:
        engine.dispose()
    url = oem.url + "/ledger/records/agr-ledger-node-1"
    with space.nodes["supplier"].peer_client() as client:
        resp = client.get(url, audience=oem.did)
        assert resp.status_code == 200 and resp.json()["record"]["consumerId"] == "BPN-supplier"
    with space.nodes["outsider"].peer_client() as client:
        assert client.get(url, audience=oem.did).status_code == 404


def test_embedded_backend_anchors_and_bundle_verifies_offline(tmp_path):
    """The default backend: an in-process EVM in the node's worker (ephemeral)."""
    with ExitStack() as stack:
        db = stack.enter_context(fresh_database_url(tmp_path))
        node = create_node(tmp_path, "solo", database_url=db, env={
            "AUTOSPACE_WORKER_EMBEDDED": "true",
            "AUTOSPACE_LEDGER_ANCHOR_INTERVAL_SECONDS": "1",
        })
        node.start(tmp_path / "logs")
        stack.callback(node.process.stop)
        events = capture(node, epcis_document(4))
        anchor = wait_for_anchor(node, 4)
        assert anchor["treeSize"] >= 4

        with node.management() as client:
            status = client.get("/management/ledger").json()
            bundle = client.get(
                f"/management/ledger/records/{events[2]['eventID']}/bundle").json()
        assert status["chain"]["ephemeral"] is True
        assert bundle["anchor"]["tree_size"] >= 4
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(bundle))
        proc = verify(path, "--trusted-key", status["verifierKey"])
        assert proc.returncode == 0, proc.stdout + proc.stderr

        def edit(b: dict) -> None:
            b["record"]["value"]["epcList"] = ["urn:epc:id:sgtin:4012345.011111.9999"]

        assert verify(tampered(bundle, tmp_path / "bad.json", edit)).returncode == 1

        proc = run_cli("status", "--home", str(node.home), "--json", env=node.env)
        ledger = json.loads(proc.stdout)["ledger"]
        assert ledger["ephemeral"] is True and ledger["treeSize"] >= 4
        assert ledger["lastAnchor"]["treeSize"] >= 4
        text = run_cli("status", "--home", str(node.home), env=node.env).stdout
        assert "EPHEMERAL" in " ".join(text.split())
