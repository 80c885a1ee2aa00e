"""Crash recovery with real processes: SIGKILL both nodes mid-negotiation, restart, finish.

The consumer commits its request to the outbox while the provider is down, then is killed
itself. After both restart, the outbox is delivered, the negotiation reaches FINALIZED, and
each side holds exactly one agreement (nothing duplicated, nothing lost).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.connector.test_dsp_e2e import (
    EDC,
    ODRL_CTX,
    PROTOCOL,
    catalog,
    datasets,
    first_offer,
    mgmt,
    ok,
    proto,
    wait_state,
)
from tests.support.processes import DataSpace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    with DataSpace(tmp_path_factory.mktemp("recovery")) as ds:
        ds.add_nodes({"provider": "supplier", "oem": "oem"})
        ds.start()
        yield ds


def kill(node) -> None:
    """SIGKILL the node's whole process group (gunicorn master and worker): no shutdown
    handler runs, whatever was in flight is lost."""
    os.killpg(node.process.popen.pid, signal.SIGKILL)
    node.process.popen.wait(10)


def add_asset(provider, ident: str, name: str) -> None:
    with mgmt(provider) as m:
        ok(m.post("/management/v3/assets", json={
            "@context": EDC, "@id": ident, "properties": {"name": name},
            "dataAddress": {"@type": "DataAddress", "type": "HttpData",
                            "baseUrl": "http://127.0.0.1:9/x"}}))


def request_contract(consumer, provider, offer: dict[str, Any], target: str) -> dict[str, Any]:
    with mgmt(consumer) as m:
        return ok(m.post("/management/v3/contractnegotiations", json={
            "@context": EDC, "@type": "ContractRequest", "counterPartyAddress": proto(provider),
            "counterPartyId": "BPN-provider", "protocol": PROTOCOL,
            "policy": {"@context": ODRL_CTX, **offer, "target": target}}))


def query(node, path: str, **filters: str) -> list[dict[str, Any]]:
    criteria = [{"operandLeft": k, "operator": "=", "operandRight": v}
                for k, v in filters.items()]
    with mgmt(node) as m:
        return ok(m.post(path, json={"@context": EDC, "filterExpression": criteria}))


def test_negotiation_survives_sigkill_of_both_nodes(space):
    provider, oem = space.nodes["provider"], space.nodes["oem"]
    add_asset(provider, "forecast", "delivery forecast")
    with mgmt(provider) as m:
        ok(m.post("/management/v3/policydefinitions", json={
            "@context": EDC, "@id": "use", "policy": {
                "@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
        ok(m.post("/management/v3/contractdefinitions", json={
            "@context": EDC, "@id": "cd", "accessPolicyId": "use", "contractPolicyId": "use"}))
    offer = first_offer(datasets(catalog(oem, provider))["forecast"])

    kill(provider)
    created = request_contract(oem, provider, offer, "forecast")
    time.sleep(1.0)  # a delivery attempt or two fail against the dead provider
    state = ok(mgmt(oem).get(f"/management/v3/contractnegotiations/{created['@id']}/state"))
    assert state["state"] == "REQUESTED"
    kill(oem)
    with pytest.raises(httpx.HTTPError):
        httpx.get(oem.url + "/health/live", timeout=1)

    provider.process = oem.process = None
    space.start("provider", "oem")  # both restart together
    neg = wait_state(oem, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"FINALIZED", "TERMINATED"}, timeout=40)
    assert neg["state"] == "FINALIZED", neg
    assert len(query(oem, "/management/v3/contractagreements/request", assetId="forecast")) == 1
    assert len(query(provider, "/management/v3/contractagreements/request",
                     assetId="forecast")) == 1
    provider_side = query(provider, "/management/v3/contractnegotiations/request")
    assert [n["state"] for n in provider_side] == ["FINALIZED"]


def test_restart_frees_the_leases_its_killed_process_held(space):
    """A node killed while delivering held the row's lease; its restart must not wait the
    lease out (set to 10 minutes here, so waiting it out would fail the test)."""
    import socket

    from sqlalchemy import text

    from connectors.dsp.outbox import epoch_ms, owner_id
    from node.db import make_engine

    provider, oem = space.nodes["provider"], space.nodes["oem"]
    add_asset(provider, "forecast-2", "forecast, week 2")
    offer = first_offer(datasets(catalog(oem, provider))["forecast-2"])
    kill(provider)
    created = request_contract(oem, provider, offer, "forecast-2")
    dead_pid = oem.process.popen.pid
    kill(oem)
    engine = make_engine(oem.database_url)
    try:
        with engine.begin() as conn:
            held = conn.execute(
                text("UPDATE dsp_outbox SET lease_owner = :o, leased_until = :u "
                     "WHERE status = 'pending'"),
                {"o": owner_id(socket.gethostname(), dead_pid, "killed"),
                 "u": epoch_ms(datetime.now(UTC)) + 600_000},
            ).rowcount
    finally:
        engine.dispose()
    assert held >= 1
    provider.process = oem.process = None
    space.start("provider", "oem")
    neg = wait_state(oem, f"/management/v3/contractnegotiations/{created['@id']}",
                     {"FINALIZED", "TERMINATED"}, timeout=25)
    assert neg["state"] == "FINALIZED", neg
