"""Use counting around failures: reserved at grant time, given back when nothing arrived.

The gate counts a use when it grants access, so concurrent accesses never exceed a count.
A permitted access whose response delivered no byte (the source failed to open, the stream
was closed before the server took its first chunk, the source broke before its first
chunk) gives the use back, in the transaction that records it; the access log and the
ledger say so. Once a chunk went out, a cut download stays counted.
"""

from __future__ import annotations

import hashlib
import json

from flask import Flask, Response
from sqlalchemy import select

from connectors.dataplane.push import PushRunner
from connectors.dataplane.recorder import SqlAccessRecorder
from connectors.dataplane.sources import CHUNK, Body, SourceRequest
from connectors.dataplane.tokens import Grant
from tests.dataplane.conftest import policy
from tests.dataplane.test_push import _dest, _receiver

ONCE = policy({"leftOperand": "count", "operator": "lteq", "rightOperand": 1})


def _entries(world, transfer_id):
    return SqlAccessRecorder(world.engine).entries(transfer_id=transfer_id)


def _uses(world, agreement) -> int:
    return world.plane.gate.usage.uses(agreement.id, agreement.asset_id)


def _get(world, token):
    with world.app.test_client() as c:
        return c.get("/dataplane/public", headers={"Authorization": token}, buffered=True)


def _flaky_backend(fail_times: int, data: bytes) -> Flask:
    app = Flask("backend")
    app.failures = [fail_times]  # type: ignore[attr-defined]

    @app.get("/data")
    def data_route():
        if app.failures[0] > 0:  # type: ignore[attr-defined]
            app.failures[0] -= 1  # type: ignore[attr-defined]
            return Response("backend down", status=500)
        return Response(data, content_type="text/csv")

    return app


def test_a_source_that_fails_to_open_gives_the_use_back(world, serve):
    srv = serve(_flaky_backend(1, b"lot,ok\n7,1\n"))
    asset = world.asset({"type": "HttpData", "baseUrl": srv.url + "/data"})
    agreement, entity = world.transfer(asset, ONCE)
    token = world.token(agreement, entity)
    failed = _get(world, token)
    assert failed.status_code == 502
    assert _uses(world, agreement) == 0
    entry = _entries(world, entity.id)[-1]
    assert (entry["decision"], entry["status"], entry["bytes"], entry["use_released"]) == \
        ("permit", "failed", 0, True)
    assert "500" in entry["reason"]
    good = _get(world, token)  # the one agreed use is still there
    assert good.status_code == 200 and good.data == b"lot,ok\n7,1\n"
    assert _get(world, token).status_code == 403
    assert [e["use_released"] for e in _entries(world, entity.id)] == [True, False, False]


def test_a_removed_file_gives_the_use_back(world):
    path = world.tmp / "lot.csv"
    path.write_bytes(b"lot 7")
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}), ONCE)
    token = world.token(agreement, entity)
    path.unlink()
    assert _get(world, token).status_code == 404
    assert _uses(world, agreement) == 0
    path.write_bytes(b"lot 7")
    assert _get(world, token).data == b"lot 7"
    assert _get(world, token).status_code == 403


def _big_file(world, agreement_policy=ONCE, chunks: int = 3):
    data = bytes(range(256)) * (CHUNK // 256) * chunks
    path = world.tmp / "big.bin"
    path.write_bytes(data)
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}),
                                       agreement_policy)
    return data, agreement, entity, world.token(agreement, entity)


def test_a_stream_closed_before_its_first_chunk_gives_the_use_back(world):
    _, agreement, entity, token = _big_file(world)
    metered = world.plane.pull(token, SourceRequest(), purpose=None)
    assert _uses(world, agreement) == 1  # reserved while the response is prepared
    metered.chunks.close()  # the server never iterated (client gone)
    assert _uses(world, agreement) == 0
    metered = world.plane.pull(token, SourceRequest(), purpose=None)
    chunks = iter(metered.chunks)
    next(chunks)  # handed to the server, whose write then fails: it closes at the yield
    chunks.close()
    assert _uses(world, agreement) == 0
    log = _entries(world, entity.id)
    assert [(e["status"], e["bytes"], e["sha256"], e["use_released"]) for e in log] == \
        [("aborted", 0, None, True)] * 2


def test_a_download_cut_after_its_first_chunk_stays_counted(world):
    data, agreement, entity, token = _big_file(world)
    metered = world.plane.pull(token, SourceRequest(), purpose=None)
    chunks = iter(metered.chunks)
    next(chunks)
    next(chunks)  # the server asked for more: the first chunk went out
    chunks.close()
    assert _uses(world, agreement) == 1
    entry = _entries(world, entity.id)[-1]
    assert (entry["status"], entry["bytes"], entry["use_released"]) == \
        ("aborted", CHUNK, False)
    assert entry["sha256"] == hashlib.sha256(data[:CHUNK]).hexdigest()
    assert _get(world, token).status_code == 403


def test_a_source_failing_before_its_first_chunk_gives_the_use_back(world):
    _, agreement, entity, _token = _big_file(world)
    permit = world.plane.gate.check(
        Grant(agreement.id, entity.id, agreement.asset_id, entity.counter_party_id),
        purpose=None)

    def broken():
        raise OSError("backend reset the connection")
        yield b""  # pragma: no cover

    closed = []
    stream = world.plane.meter(permit, Body(chunks=broken(), close=lambda: closed.append(1)),
                               kind="pull")
    assert list(stream) == []
    assert closed == [1] and _uses(world, agreement) == 0
    entry = _entries(world, entity.id)[-1]
    assert (entry["status"], entry["bytes"], entry["use_released"]) == ("aborted", 0, True)
    assert "reset" in entry["reason"]


def test_a_use_that_cannot_be_given_back_stays_counted(world, monkeypatch):
    """Fail closed: if the release fails, the record says so and the count stands."""
    path = world.tmp / "gone.csv"
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}), ONCE)

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(world.plane.gate.usage, "release", broken)
    assert _get(world, world.token(agreement, entity)).status_code == 404
    assert _uses(world, agreement) == 1
    entry = _entries(world, entity.id)[-1]
    assert (entry["status"], entry["use_released"]) == ("failed", False)


def test_head_counts_nothing_and_releases_nothing(world):
    _, agreement, entity, token = _big_file(world, chunks=1)
    with world.app.test_client() as c:
        assert c.head("/dataplane/public", headers={"Authorization": token}).status_code == 200
    assert _uses(world, agreement) == 0 and _entries(world, entity.id) == []


def test_the_ledger_record_says_the_use_was_released(world):
    from ledger.log import Log

    origin = "supplier.example/ledger"
    world.plane.recorder = SqlAccessRecorder(world.engine, ledger_origin=origin,
                                             clock=world.clock.dt)
    path = world.tmp / "missing.csv"
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}), ONCE)
    token = world.token(agreement, entity)
    assert _get(world, token).status_code == 404
    path.write_bytes(b"lot 7 ok")
    assert _get(world, token).status_code == 200
    records = []
    with world.engine.connect() as conn:
        log = Log.open(conn, origin, create=False)
        for entry in _entries(world, entity.id):
            assert entry["ledger_record_id"]
            got = log.entry_by_record_id(conn, entry["ledger_record_id"])
            records.append(json.loads(got.record_json))
    failed, done = records
    assert failed["status"] == "failed" and failed["bytes"] == 0
    assert failed["useReleased"] is True and "contentHash" not in failed
    assert done["status"] == "complete" and done["useReleased"] is False
    assert done["bytes"] == 8 and done["contentHash"] == hashlib.sha256(b"lot 7 ok").hexdigest()


def test_a_failed_push_attempt_does_not_use_up_the_count(world, serve):
    """count <= 1: the first attempt's source answers 500, the retry still may push."""
    backend = serve(_flaky_backend(1, b"abc"))
    receiver = _receiver()
    inbox = serve(receiver)
    agreement, entity = world.transfer(
        world.asset({"type": "HttpData", "baseUrl": backend.url + "/data"}), ONCE,
        fmt="HttpData-PUSH", data_address=_dest(inbox.url + "/inbox/lot7"))
    runner = PushRunner(world.plane, world.store, participant_id="did:web:supplier.example")
    assert runner.push(entity.id) == "retry"
    assert _uses(world, agreement) == 0
    world.clock.now += 2
    assert runner.push(entity.id) == "done"
    assert receiver.received == [("lot7", "Bearer consumer-secret", b"abc")]
    assert _uses(world, agreement) == 1
    log = _entries(world, entity.id)
    assert [(e["kind"], e["status"], e["use_released"]) for e in log] == \
        [("push", "failed", True), ("push", "complete", False)]


def test_the_access_log_column_defaults_to_kept(world):
    from connectors.dataplane.tables import access_log

    with world.engine.begin() as conn:
        conn.execute(access_log.insert().values(
            at=world.clock.dt(), kind="pull", decision="deny", status="denied", bytes=0))
        assert conn.execute(select(access_log.c.use_released)).scalar() is False
