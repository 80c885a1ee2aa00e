"""The data plane behind the DSP provider: TransferRequest -> TransferStart carrying the EDR
(schema-valid), pull with it; push request -> pushed -> TransferCompletion queued."""

from __future__ import annotations

from flask import Flask, request
from sqlalchemy import select

from connectors import tables as ct
from connectors.dataplane.push import PushRunner
from connectors.dsp import messages as m
from connectors.dsp.negotiation import ErrorDetail
from connectors.dsp.policy import Caller
from connectors.dsp.service import DspProtocol
from connectors.dsp.transfer_messages import DataAddress, EndpointProperty
from connectors.dsp.vocabulary import ErrorCode, Path, TransferState
from connectors.policy_checker import EnginePolicyChecker
from tests.dataplane.conftest import CONSUMER, PROVIDER
from tests.dsp.schemas import DSP_DIR, assert_valid

CALLER = Caller(CONSUMER, {"membership": True, "region": "CN"})


def _protocol(world) -> DspProtocol:
    return DspProtocol(
        world.store, participant_id=PROVIDER, protocol_url="https://supplier.example/dsp",
        checker=EnginePolicyChecker(world.store, clock=world.clock.dt),
        data_flow=world.plane.flow, clock=world.clock.dt,
    )


def _outbox(world, process_id: str) -> list[dict]:
    o = ct.outbox
    with world.engine.connect() as conn:
        rows = conn.execute(select(o.c.body).where(o.c.process_id == process_id)
                            .order_by(o.c.id)).all()
    return [r.body for r in rows]


def test_transfer_start_carries_a_working_edr(world):
    path = world.tmp / "results.csv"
    path.write_bytes(b"lot,ok\nA,1\n")
    asset = world.asset({"type": "File", "path": str(path)})
    agreement, _ = world.transfer(asset, state=TransferState.TERMINATED)  # only the agreement
    dsp = _protocol(world)
    msg = m.TransferRequestMessage(consumer_pid="urn:uuid:consumer-1", agreement_id=agreement.id,
                                   format="HttpData-PULL",
                                   callback_address="https://oem.example/dsp")
    reply = dsp.receive(CALLER, Path.TRANSFERS_REQUEST, msg.to_json())
    assert reply.status == 201, reply.body
    pid = reply.body["providerPid"]
    (start,) = _outbox(world, pid)
    if DSP_DIR.is_dir():
        assert_valid(start)
    edr = DataAddress.from_json(start["dataAddress"])
    assert edr.property("authType") == "bearer"
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": edr.property("authorization")})
        assert r.status_code == 200 and r.data == b"lot,ok\nA,1\n"
    dsp.suspend_transfer(pid, ErrorDetail(ErrorCode.OPERATOR, ("maintenance",)))
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": edr.property("authorization")})
        assert r.status_code == 403 and "SUSPENDED" in r.get_json()["detail"]
    dsp.resume_transfer(pid)  # the provider resumes: a fresh EDR goes out
    fresh = DataAddress.from_json(_outbox(world, pid)[-1]["dataAddress"])
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": fresh.property("authorization")})
        assert r.status_code == 200


def test_push_request_is_pushed_and_completed(world, serve):
    received: list[bytes] = []
    receiver = Flask("receiver")

    @receiver.post("/in")
    def inbox():
        received.append(request.get_data())
        return "", 200

    srv = serve(receiver)
    path = world.tmp / "forecast.json"
    path.write_bytes(b'{"week": 12, "units": 4000}')
    asset = world.asset({"type": "File", "path": str(path)})
    agreement, _ = world.transfer(asset, state=TransferState.TERMINATED)
    dsp = _protocol(world)
    dest = DataAddress("HttpData", srv.url + "/in", (EndpointProperty("authorization", "t"),
                                                     EndpointProperty("authType", "bearer")))
    msg = m.TransferRequestMessage(consumer_pid="urn:uuid:consumer-2", agreement_id=agreement.id,
                                   format="HttpData-PUSH",
                                   callback_address="https://oem.example/dsp", data_address=dest)
    reply = dsp.receive(CALLER, Path.TRANSFERS_REQUEST, msg.to_json())
    assert reply.status == 201, reply.body
    pid = reply.body["providerPid"]
    assert PushRunner(world.plane, world.store, participant_id=PROVIDER).run_due() == 1
    assert received == [b'{"week": 12, "units": 4000}']
    with world.store.transaction() as tx:
        assert tx.get_transfer(pid).state is TransferState.COMPLETED
    bodies = _outbox(world, pid)
    assert [b["@type"] for b in bodies] == ["TransferStartMessage", "TransferCompletionMessage"]
    if DSP_DIR.is_dir():
        for body in bodies:
            assert_valid(body)
