"""Crash recovery at several stages of a negotiation and of a transfer request, real processes.

Each test brings one node to a chosen point of the exchange and SIGKILLs it (or both) there:
SIGSTOP freezes a node so that the other side's message is in flight or waiting (a frozen
node accepts connections but answers nothing), the test waits until the other side has
committed the state of the stage, then SIGKILL ends the frozen node without any shutdown
handler. After a restart both sides must finish (FINALIZED / STARTED) with exactly one
agreement (or transfer) each: nothing duplicated, nothing lost. Stages:

* the consumer's request committed to its outbox, the provider killed before answering;
* the provider has agreed, the consumer killed before it verifies;
* the provider killed while a transfer request is in flight;
* the consumer killed right after its transfer request was committed.

A node killed while delivering holds its outbox lease until it expires (30 s,
``connectors.dsp.outbox.DEFAULT_LEASE_MS``), so the second stage takes about that long.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from connectors import tables as ct
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
from tests.connector.test_recovery import query
from tests.support.processes import DataSpace

pytestmark = pytest.mark.slow
RECOVERY_TIMEOUT = 60.0  # a lease held by the killed process expires after 30 s


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    with DataSpace(tmp_path_factory.mktemp("stages")) as ds:
        ds.add_nodes({"provider": "supplier", "oem": "oem"})
        ds.start()
        provider = ds.nodes["provider"]
        with mgmt(provider) as m:
            ok(m.post("/management/v3/policydefinitions", json={
                "@context": EDC, "@id": "use", "policy": {
                    "@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
            for n in range(4):
                ok(m.post("/management/v3/assets", json={
                    "@context": EDC, "@id": f"lot-{n}", "properties": {"name": f"lot {n}"},
                    "dataAddress": {"@type": "DataAddress", "type": "HttpData",
                                    "baseUrl": "http://127.0.0.1:9/x"}}))
            ok(m.post("/management/v3/contractdefinitions", json={
                "@context": EDC, "@id": "cd", "accessPolicyId": "use",
                "contractPolicyId": "use"}))
        ds.offers = datasets(catalog(ds.nodes["oem"], provider))  # type: ignore[attr-defined]
        ds.engines = {name: create_engine(n.database_url)  # type: ignore[attr-defined]
                      for name, n in ds.nodes.items()}
        try:
            yield ds
        finally:
            for engine in ds.engines.values():  # type: ignore[attr-defined]
                engine.dispose()


def signal_node(node, sig: signal.Signals) -> None:
    """Signal the node's whole process group (gunicorn master and worker)."""
    os.killpg(node.process.popen.pid, sig)


def kill(node) -> None:
    """SIGKILL (works on a stopped process too): nothing in flight survives."""
    signal_node(node, signal.SIGKILL)
    node.process.popen.wait(10)
    node.process = None


def restart(space, *names: str) -> None:
    space.start(*names)


def row_state(space, name: str, table: Any, consumer_pid: str) -> str | None:
    """The state of the process a node holds for ``consumer_pid``, read from its database."""
    with space.engines[name].connect() as conn:
        row = conn.execute(select(table.c.state).where(
            (table.c.consumer_pid == consumer_pid) | (table.c.id == consumer_pid))).first()
    return None if row is None else row.state


def wait_row(space, name: str, table: Any, consumer_pid: str, wanted: set[str] | None = None,
             timeout: float = 15.0) -> str:
    """Poll the node's database (a few ms per look) until the process is in ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        state = row_state(space, name, table, consumer_pid)
        if state is not None and (wanted is None or state in wanted):
            return state
        assert time.monotonic() < deadline, f"{name}: {consumer_pid} is {state}"
        time.sleep(0.002)


def start_negotiation(space, asset_id: str) -> str:
    offer = first_offer(space.offers[asset_id])
    with mgmt(space.nodes["oem"]) as m:
        created = ok(m.post("/management/v3/contractnegotiations", json={
            "@context": EDC, "@type": "ContractRequest",
            "counterPartyAddress": proto(space.nodes["provider"]),
            "counterPartyId": "BPN-provider", "protocol": PROTOCOL,
            "policy": {"@context": ODRL_CTX, **offer, "target": asset_id}}))
    return created["@id"]


def assert_finalized_once(space, consumer_pid: str, asset_id: str) -> dict[str, Any]:
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    neg = wait_state(oem, f"/management/v3/contractnegotiations/{consumer_pid}",
                     {"FINALIZED", "TERMINATED"}, timeout=RECOVERY_TIMEOUT)
    assert neg["state"] == "FINALIZED", neg
    theirs = wait_state(provider, f"/management/v3/contractnegotiations/{neg['correlationId']}",
                        {"FINALIZED", "TERMINATED"}, timeout=RECOVERY_TIMEOUT)
    assert theirs["state"] == "FINALIZED", theirs
    for node in (oem, provider):
        agreements = query(node, "/management/v3/contractagreements/request", assetId=asset_id)
        assert [a["@id"] for a in agreements] == [neg["contractAgreementId"]], agreements
    assert len(query(provider, "/management/v3/contractnegotiations/request",
                     correlationId=consumer_pid)) == 1
    return neg


def test_provider_killed_before_answering_the_committed_request(space):
    provider = space.nodes["provider"]
    signal_node(provider, signal.SIGSTOP)  # the request will reach a node that never answers
    pid = start_negotiation(space, "lot-0")
    assert row_state(space, "oem", ct.contract_negotiations, pid) == "REQUESTED"
    time.sleep(0.3)  # the consumer's delivery is now waiting on the frozen provider
    kill(provider)
    assert row_state(space, "provider", ct.contract_negotiations, pid) is None  # never seen
    restart(space, "provider")
    assert_finalized_once(space, pid, "lot-0")


def test_consumer_killed_after_the_provider_agreed(space):
    oem = space.nodes["oem"]
    pid = start_negotiation(space, "lot-1")
    wait_row(space, "provider", ct.contract_negotiations, pid)  # the provider has the request
    signal_node(oem, signal.SIGSTOP)
    seen = row_state(space, "oem", ct.contract_negotiations, pid)
    wait_row(space, "provider", ct.contract_negotiations, pid, {"AGREED"})
    kill(oem)
    assert seen in ("REQUESTED", "AGREED"), f"the consumer was already {seen}"
    assert row_state(space, "oem", ct.contract_negotiations, pid) in ("REQUESTED", "AGREED")
    restart(space, "oem")
    assert_finalized_once(space, pid, "lot-1")


def _agreement(space, asset_id: str) -> str:
    pid = start_negotiation(space, asset_id)
    return assert_finalized_once(space, pid, asset_id)["contractAgreementId"]


def _start_transfer(space, agreement_id: str) -> str:
    with mgmt(space.nodes["oem"]) as m:
        created = ok(m.post("/management/v3/transferprocesses", json={
            "@context": EDC, "@type": "TransferRequest",
            "counterPartyAddress": proto(space.nodes["provider"]), "contractId": agreement_id,
            "transferType": "HttpData-PULL", "protocol": PROTOCOL}))
    return created["@id"]


def assert_started_once(space, transfer_id: str, agreement_id: str) -> None:
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    mine = wait_state(oem, f"/management/v3/transferprocesses/{transfer_id}",
                      {"STARTED", "TERMINATED"}, timeout=RECOVERY_TIMEOUT)
    assert mine["state"] == "STARTED", mine
    theirs = wait_state(provider, f"/management/v3/transferprocesses/{mine['correlationId']}",
                        {"STARTED", "TERMINATED"}, timeout=RECOVERY_TIMEOUT)
    assert theirs["state"] == "STARTED", theirs
    for node in (oem, provider):
        found = query(node, "/management/v3/transferprocesses/request", contractId=agreement_id)
        assert len(found) == 1, found
    with mgmt(oem) as m:
        edr = ok(m.get(f"/management/v3/edrs/{transfer_id}/dataaddress"))
    assert edr["endpoint"] == provider.url + "/dataplane/public" and edr["authorization"]


def test_provider_killed_during_a_transfer_request(space):
    provider = space.nodes["provider"]
    agreement_id = _agreement(space, "lot-3")
    signal_node(provider, signal.SIGSTOP)
    tid = _start_transfer(space, agreement_id)
    assert row_state(space, "oem", ct.transfer_processes, tid) == "REQUESTED"
    time.sleep(0.3)
    kill(provider)
    assert row_state(space, "provider", ct.transfer_processes, tid) is None
    restart(space, "provider")
    assert_started_once(space, tid, agreement_id)


def test_consumer_killed_right_after_its_transfer_request(space):
    """SIGKILL at once after the management API answered: wherever the exchange was (request
    in the outbox, in flight, or TransferStart on its way), the restart finishes it."""
    oem = space.nodes["oem"]
    agreement_id = query(oem, "/management/v3/contractagreements/request",
                         assetId="lot-0")[0]["@id"]
    tid = _start_transfer(space, agreement_id)
    kill(oem)
    assert row_state(space, "oem", ct.transfer_processes, tid) in ("REQUESTED", "STARTED")
    restart(space, "oem")
    assert_started_once(space, tid, agreement_id)
