"""Crash recovery at every stage of a negotiation and of a transfer, real processes.

Each test brings one node to a chosen point of the exchange and SIGKILLs it there:
SIGSTOP freezes a node so that the other side's message is in flight or waiting (a frozen
node accepts connections but answers nothing; the kernel buffers what is sent to it), the
test waits until the other side has committed the state of the stage (read from its
database) and, where a message must be on the wire, until the sender has leased its
outbox row, then SIGKILL ends the frozen node without any shutdown handler. Freezing both
nodes in turn makes a stage exact: e.g. the provider is frozen while the consumer's
verification is in its socket, so it is killed between "consumer VERIFIED" and "provider
FINALIZED". After a restart both sides must finish with exactly one agreement (or
transfer) each: nothing duplicated, nothing lost. Stages:

* the consumer's request committed to its outbox, the provider killed before answering;
* the provider has agreed, the consumer killed before it verifies;
* the consumer VERIFIED with its verification in flight, the provider killed before it
  finalizes (it restarts AGREED, re-sends its agreement, gets the verification again);
* the provider FINALIZED with its event in flight, the consumer killed before receiving it;
* the provider killed while a transfer request is in flight;
* the consumer killed right after its transfer request was committed;
* the provider STARTED the transfer, the consumer killed before receiving the start message
  (after its restart it has the EDR and pulls the data);
* a TransferCompletionMessage in flight to the provider, the provider killed;
* a TransferTerminationMessage in flight to the consumer, the consumer killed.

A killed node does not wait out the outbox leases its dead process held (30 s,
``connectors.dsp.outbox.DEFAULT_LEASE_MS``): the restarted dispatcher frees the leases of
dead processes on its host (``release_orphaned_leases``), so the stages whose killed node
was delivering take seconds. What remains is the peer's back-off while the killed node is
down (0.5 s, 1 s, 2 s, 5 s...).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import httpx
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
RECOVERY_TIMEOUT = 60.0  # generous: the peer backs off while the killed node is down
FILE_DATA = bytes(range(256)) * 64 + b"lot 7 measured\n"


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    with DataSpace(tmp_path_factory.mktemp("stages")) as ds:
        logs = {name: ds.base / f"{name}.dsp.jsonl" for name in ("provider", "oem")}
        ds.add_nodes({"provider": "supplier", "oem": "oem"}, envs={
            name: {"AUTOSPACE_CONNECTOR_MESSAGE_LOG": str(path)} for name, path in logs.items()})
        ds.message_logs = logs  # type: ignore[attr-defined]
        ds.start()
        provider = ds.nodes["provider"]
        with mgmt(provider) as m:
            ok(m.post("/management/v3/policydefinitions", json={
                "@context": EDC, "@id": "use", "policy": {
                    "@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
            for n in range(9):
                ok(m.post("/management/v3/assets", json={
                    "@context": EDC, "@id": f"lot-{n}", "properties": {"name": f"lot {n}"},
                    "dataAddress": {"@type": "DataAddress", "type": "HttpData",
                                    "baseUrl": "http://127.0.0.1:9/x"}}))
            source = provider.home / "lot-file.bin"
            source.write_bytes(FILE_DATA)
            ok(m.post("/management/v3/assets", json={
                "@context": EDC, "@id": "lot-file", "properties": {"name": "lot file"},
                "dataAddress": {"@type": "DataAddress", "type": "File", "path": str(source)}}))
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
    """The consumer is frozen once the provider holds its request (the provider's
    "received" line, written before its handler runs), so the agreement arrives at a frozen
    consumer. (Waiting for the provider's row instead lost the race: the row commits just
    before the agreement leaves, and the consumer can apply it within a few ms.)"""
    oem = space.nodes["oem"]
    pid = start_negotiation(space, "lot-1")
    wait_logged(space.message_logs["provider"], "received", "ContractRequestMessage", pid)
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


# -- the later stages: both nodes frozen in turn, so each stage is hit exactly ---------------

def freeze(node) -> None:
    signal_node(node, signal.SIGSTOP)


def thaw(node) -> None:
    signal_node(node, signal.SIGCONT)


def local_id(space, name: str, table: Any, consumer_pid: str) -> str:
    """The node's own id of the process the consumer calls ``consumer_pid``."""
    with space.engines[name].connect() as conn:
        return conn.execute(select(table.c.id).where(
            (table.c.consumer_pid == consumer_pid) | (table.c.id == consumer_pid))).scalar_one()


def wait_on_the_wire(space, name: str, table: Any, consumer_pid: str, message_type: str,
                     timeout: float = 15.0) -> None:
    """Until the node has started sending ``message_type`` for this process (its message
    log has the "sent" line, written just before the POST), plus a moment for the request
    to reach the peer's socket. (Not the outbox row's lease: a row can be leased when it is
    written, before its dispatcher gets to send it.)"""
    path = space.message_logs[name]
    deadline = time.monotonic() + timeout
    while not _sent(path, message_type, consumer_pid):
        assert time.monotonic() < deadline, f"{name}: {message_type} never left"
        time.sleep(0.005)
    time.sleep(0.3)


def wait_logged(path, direction: str, message_type: str, consumer_pid: str,
                timeout: float = 15.0) -> None:
    """Until the message log at ``path`` has a ``direction`` line (sent, received...) of
    ``message_type`` for this process; reads only what was appended, every millisecond."""
    deadline = time.monotonic() + timeout
    offset, partial = 0, b""
    while True:
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        *lines, partial = (partial + chunk).split(b"\n")
        for line in lines:
            entry = json.loads(line)
            body = entry.get("body") or {}
            if (entry.get("direction") == direction and body.get("@type") == message_type
                    and body.get("consumerPid") == consumer_pid):
                return
        assert time.monotonic() < deadline, f"no {direction} {message_type} in {path.name}"
        time.sleep(0.001)


def _sent(path, message_type: str, consumer_pid: str) -> bool:
    """Whether the message log at ``path`` has a sent ``message_type`` of this process."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # a line being written
            continue
        body = entry.get("body") or {}
        if (entry.get("direction") == "sent" and body.get("@type") == message_type
                and body.get("consumerPid") == consumer_pid):
            return True
    return False


def _verification_in_flight(space, asset_id: str) -> str:
    """Consumer VERIFIED, its verification in the socket of the frozen provider (AGREED)."""
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    cn = ct.contract_negotiations
    freeze(provider)
    pid = start_negotiation(space, asset_id)
    wait_on_the_wire(space, "oem", cn, pid, "ContractRequestMessage")
    freeze(oem)  # the agreement will wait in the consumer's socket
    thaw(provider)
    wait_row(space, "provider", cn, pid, {"AGREED"})
    wait_on_the_wire(space, "provider", cn, pid, "ContractAgreementMessage")
    freeze(provider)
    thaw(oem)
    wait_row(space, "oem", cn, pid, {"VERIFIED"})
    wait_on_the_wire(space, "oem", cn, pid, "ContractAgreementVerificationMessage")
    assert row_state(space, "provider", cn, pid) == "AGREED"
    return pid


def test_provider_killed_after_the_consumer_verified(space):
    """The provider dies with the verification unread: it restarts AGREED, re-sends its
    agreement (the consumer answers it as a replay), receives the verification again from
    the consumer's retries and finalizes once."""
    pid = _verification_in_flight(space, "lot-4")
    kill(space.nodes["provider"])
    assert row_state(space, "provider", ct.contract_negotiations, pid) == "AGREED"
    restart(space, "provider")
    assert_finalized_once(space, pid, "lot-4")


def _event_in_flight(space, asset_id: str) -> str:
    """Provider FINALIZED, its event in the socket of the frozen consumer (VERIFIED); the
    provider runs."""
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    cn = ct.contract_negotiations
    pid = _verification_in_flight(space, asset_id)
    freeze(oem)  # the FINALIZED event will wait in the consumer's socket
    thaw(provider)
    wait_row(space, "provider", cn, pid, {"FINALIZED"})
    wait_on_the_wire(space, "provider", cn, pid, "ContractNegotiationEventMessage")
    return pid


def test_consumer_killed_before_the_finalized_event(space):
    pid = _event_in_flight(space, "lot-5")
    kill(space.nodes["oem"])
    assert row_state(space, "oem", ct.contract_negotiations, pid) == "VERIFIED"
    restart(space, "oem")
    assert_finalized_once(space, pid, "lot-5")


def test_provider_killed_after_finalizing_with_its_event_in_flight(space):
    """The provider's event row is leased by the killed process: the restart frees the lease
    and re-sends it; the consumer, FINALIZED meanwhile, answers it as a replay."""
    pid = _event_in_flight(space, "lot-6")
    kill(space.nodes["provider"])
    thaw(space.nodes["oem"])
    restart(space, "provider")
    assert_finalized_once(space, pid, "lot-6")


def test_consumer_killed_before_the_transfer_start_message(space):
    """The provider STARTED the transfer and sent the start message (with the EDR) to a
    frozen consumer, which is killed. After its restart it re-sends its request (the provider
    answers the replay), receives the start message from the provider's retries, and pulls
    the data with the EDR."""
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    tp = ct.transfer_processes
    agreement_id = _agreement(space, "lot-file")
    freeze(provider)
    tid = _start_transfer(space, agreement_id)
    wait_on_the_wire(space, "oem", tp, tid, "TransferRequestMessage")
    freeze(oem)
    thaw(provider)
    wait_row(space, "provider", tp, tid, {"STARTED"})
    wait_on_the_wire(space, "provider", tp, tid, "TransferStartMessage")
    kill(oem)
    assert row_state(space, "oem", tp, tid) == "REQUESTED"
    restart(space, "oem")
    assert_started_once(space, tid, agreement_id)
    with mgmt(oem) as m:
        edr = ok(m.get(f"/management/v3/edrs/{tid}/dataaddress"))
    got = httpx.get(edr["endpoint"], headers={"Authorization": edr["authorization"]},
                    timeout=30)
    assert got.status_code == 200, got.text[:500]
    assert got.content == FILE_DATA


def _started_transfer(space, asset_id: str) -> tuple[str, str]:
    agreement_id = _agreement(space, asset_id)
    tid = _start_transfer(space, agreement_id)
    assert_started_once(space, tid, agreement_id)
    return agreement_id, tid


def assert_ended_once(space, transfer_id: str, agreement_id: str, state: str) -> dict[str, Any]:
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    ends = {"COMPLETED", "TERMINATED"}
    mine = wait_state(oem, f"/management/v3/transferprocesses/{transfer_id}", ends,
                      timeout=RECOVERY_TIMEOUT)
    assert mine["state"] == state, mine
    theirs = wait_state(provider, f"/management/v3/transferprocesses/{mine['correlationId']}",
                        ends, timeout=RECOVERY_TIMEOUT)
    assert theirs["state"] == state, theirs
    for node in (oem, provider):
        found = query(node, "/management/v3/transferprocesses/request", contractId=agreement_id)
        assert [t["state"] for t in found] == [state], found
    return mine


def test_provider_killed_with_the_completion_in_flight(space):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    tp = ct.transfer_processes
    agreement_id, tid = _started_transfer(space, "lot-7")
    freeze(provider)
    with mgmt(oem) as m:
        ok(m.post(f"/management/v3/transferprocesses/{tid}/complete"), 204)
    assert row_state(space, "oem", tp, tid) == "COMPLETED"
    wait_on_the_wire(space, "oem", tp, tid, "TransferCompletionMessage")
    kill(provider)
    assert row_state(space, "provider", tp, tid) == "STARTED"
    restart(space, "provider")
    assert_ended_once(space, tid, agreement_id, "COMPLETED")


def test_consumer_killed_with_the_termination_in_flight(space):
    oem, provider = space.nodes["oem"], space.nodes["provider"]
    tp = ct.transfer_processes
    agreement_id, tid = _started_transfer(space, "lot-8")
    provider_pid = local_id(space, "provider", tp, tid)
    freeze(oem)
    with mgmt(provider) as m:
        ok(m.post(f"/management/v3/transferprocesses/{provider_pid}/terminate",
                  json={"@context": EDC, "reason": "lot 8 recalled"}), 204)
    wait_on_the_wire(space, "provider", tp, tid, "TransferTerminationMessage")
    kill(oem)
    assert row_state(space, "oem", tp, tid) == "STARTED"
    restart(space, "oem")
    mine = assert_ended_once(space, tid, agreement_id, "TERMINATED")
    assert "lot 8 recalled" in mine.get("errorDetail", ""), mine
