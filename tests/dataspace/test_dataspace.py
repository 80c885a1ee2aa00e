"""`autospace dataspace up/down`: the README's run command, as real processes."""

from __future__ import annotations

import json
import random
import socket

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
    items = r.json().get("dataset", [])
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
    assert oem_view == {"sup1-quality-inspections", "sup1-delivery-forecast"}
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
