"""Push transfers to a real HTTP receiver on 127.0.0.1: delivery, completion, retries."""

from __future__ import annotations

import hashlib

from flask import Flask, request

from connectors.dataplane.push import MAX_ATTEMPTS, PushRunner
from connectors.dataplane.recorder import SqlAccessRecorder
from connectors.dsp.transfer_messages import DataAddress, EndpointProperty
from connectors.dsp.vocabulary import TransferState
from tests.dataplane.conftest import policy


def _receiver(fail_times: int = 0):
    app = Flask("receiver")
    app.received = []  # type: ignore[attr-defined]
    app.failures = [fail_times]  # type: ignore[attr-defined]

    @app.post("/inbox/<name>")
    def inbox(name):
        if app.failures[0] > 0:  # type: ignore[attr-defined]
            app.failures[0] -= 1  # type: ignore[attr-defined]
            return "busy", 503
        app.received.append((name, request.headers.get("Authorization"),  # type: ignore
                             request.get_data()))
        return "", 204

    return app


def _dest(url: str) -> dict:
    return DataAddress("HttpData", url, (EndpointProperty("authorization", "consumer-secret"),
                                         EndpointProperty("authType", "bearer"))).to_json()


def _runner(world) -> PushRunner:
    return PushRunner(world.plane, world.store, participant_id="did:web:supplier.example")


def _asset(world, data: bytes) -> str:
    path = world.tmp / "push.bin"
    path.write_bytes(data)
    return world.asset({"type": "File", "path": str(path)})


def test_push_delivers_completes_and_logs(world, serve):
    data = b"inspection-results;" * 50_000
    receiver = _receiver()
    srv = serve(receiver)
    agreement, entity = world.transfer(_asset(world, data), fmt="HttpData-PUSH",
                                       data_address=_dest(srv.url + "/inbox/lot7"))
    assert world.plane.flow.start(entity, agreement) is None  # push: no EDR
    runner = _runner(world)
    assert runner.run_due() == 1
    assert receiver.received == [("lot7", "Bearer consumer-secret", data)]
    with world.store.transaction() as tx:
        assert tx.get_transfer(entity.id).state is TransferState.COMPLETED
    log = SqlAccessRecorder(world.engine).entries(transfer_id=entity.id)
    assert log[0]["kind"] == "push" and log[0]["bytes"] == len(data)
    assert log[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert runner.run_due() == 0  # done once


def test_push_retries_then_succeeds(world, serve):
    receiver = _receiver(fail_times=1)
    srv = serve(receiver)
    _agreement, entity = world.transfer(_asset(world, b"abc"), fmt="HttpData-PUSH",
                                       data_address=_dest(srv.url + "/inbox/x"))
    runner = _runner(world)
    assert runner.push(entity.id) == "retry"
    assert runner.run_due() == 0  # backing off
    world.clock.now += 2
    assert runner.run_due() == 1
    assert receiver.received and receiver.received[0][2] == b"abc"


def test_push_gives_up_and_terminates(world):
    _agreement, entity = world.transfer(_asset(world, b"abc"), fmt="HttpData-PUSH",
                                       data_address=_dest("http://127.0.0.1:9/closed"))
    runner = _runner(world)
    results = []
    for _ in range(MAX_ATTEMPTS):
        results.append(runner.push(entity.id))
        world.clock.now += 700
    assert results[-1] == "failed" and set(results[:-1]) == {"retry"}
    with world.store.transaction() as tx:
        e = tx.get_transfer(entity.id)
    assert e.state is TransferState.TERMINATED and "push failed" in e.error.reasons[0]


def test_push_denied_by_policy_terminates(world, serve):
    srv = serve(_receiver())
    pol = policy({"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"})
    _agreement, entity = world.transfer(_asset(world, b"abc"), pol, fmt="HttpData-PUSH",
                                       data_address=_dest(srv.url + "/inbox/x"))
    assert _runner(world).push(entity.id) == "failed"
    with world.store.transaction() as tx:
        e = tx.get_transfer(entity.id)
    assert e.state is TransferState.TERMINATED and e.error.code == "POLICY_DENIED"


def test_job_provider_registers_the_push_job(world):
    from types import SimpleNamespace

    from connectors.dataplane.jobs import PUSH_INTERVAL, register
    from node.worker import JobRegistry

    ctx = SimpleNamespace(
        engine=world.engine, keys=world.keys, clock=world.clock,
        config=SimpleNamespace(participant_id="did:web:supplier.example",
                               public_url="http://127.0.0.1:9", section=lambda name: {}))
    registry = JobRegistry()
    register(registry, ctx)
    (job,) = registry.jobs
    assert job.name == "dataplane.push" and job.interval == PUSH_INTERVAL
    assert job.func() == 0  # nothing to push yet
