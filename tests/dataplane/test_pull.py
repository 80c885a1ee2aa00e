"""The pull endpoint: each source type, ranges, usage enforcement, access log with hashes."""

from __future__ import annotations

import hashlib
import json

from flask import Flask, Response, request
from sqlalchemy import create_engine, text

from connectors.dataplane.recorder import SqlAccessRecorder
from connectors.dsp.vocabulary import TransferState
from tests.dataplane.conftest import policy


def _entries(world, transfer_id):
    return SqlAccessRecorder(world.engine).entries(transfer_id=transfer_id)


def _file(world, data: bytes = b"0123456789" * 1000, **kw) -> str:
    path = world.tmp / "asset.bin"
    path.write_bytes(data)
    return world.asset({"type": "File", "path": str(path), "contentType": "text/plain"}, **kw)


def test_file_full_and_range_with_logged_hash(world):
    data = bytes(range(256)) * 4096
    agreement, entity = world.transfer(_file(world, data))
    token = world.token(agreement, entity)
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.data == data
        assert r.headers["Content-Length"] == str(len(data))
        r = c.get("/dataplane/public", headers={"Authorization": token, "Range": "bytes=10-19"})
        assert r.status_code == 206 and r.data == data[10:20]
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        r = c.get("/dataplane/public", headers={"Authorization": token, "Range": "bytes=9999999-"})
        assert r.status_code == 416
    log = _entries(world, entity.id)
    assert [e["status"] for e in log[:2]] == ["complete", "complete"]
    assert log[0]["sha256"] == hashlib.sha256(data).hexdigest() and log[0]["bytes"] == len(data)
    assert log[1]["sha256"] == hashlib.sha256(data[10:20]).hexdigest()
    assert log[0]["consumer_id"] == entity.counter_party_id
    assert log[0]["agreement_id"] == agreement.id and log[0]["decision"] == "permit"


def _backend() -> Flask:
    app = Flask("backend")

    @app.route("/api/<path:rest>", methods=["GET", "POST"])
    def api(rest):
        return Response(json.dumps({"path": rest, "args": request.args.to_dict(flat=False),
                                    "method": request.method,
                                    "body": request.get_data(as_text=True),
                                    "key": request.headers.get("X-Key")}),
                        mimetype="application/json")

    @app.get("/api")
    def root():
        return Response(b"root-data" * 1000, mimetype="application/octet-stream")

    return app


def test_http_backend_proxying_only_where_allowed(world, serve):
    backend = serve(_backend())
    strict = world.asset({"type": "HttpData", "baseUrl": backend.url + "/api",
                          "authKey": "X-Key", "authCode": "secret"})
    open_ = world.asset({"@type": "DataAddress", "edc:type": "HttpData",
                         "https://w3id.org/edc/v0.0.1/ns/baseUrl": backend.url + "/api",
                         "proxyPath": "true", "proxyQueryParams": "true",
                         "proxyMethod": "true", "proxyBody": "true", "authKey": "X-Key",
                         "authCode": "secret"})
    a1, t1 = world.transfer(strict)
    a2, t2 = world.transfer(open_)
    tok1, tok2 = world.token(a1, t1), world.token(a2, t2)
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": tok1})
        assert r.status_code == 200 and r.data == b"root-data" * 1000
        assert c.get("/dataplane/public/parts/7", headers={"Authorization": tok1}).status_code \
            == 404
        assert c.get("/dataplane/public?x=1", headers={"Authorization": tok1}).status_code == 400
        assert c.post("/dataplane/public", data=b"x", headers={"Authorization": tok1}) \
            .status_code == 405
        r = c.get("/dataplane/public/parts/7?lot=A&purpose=quality",
                  headers={"Authorization": tok2})
        assert r.status_code == 200
        got = r.get_json()
        assert got["path"] == "parts/7" and got["args"] == {"lot": ["A"]}  # purpose not leaked
        assert got["key"] == "secret"
        r = c.post("/dataplane/public/search", data=b'{"q": 1}',
                   headers={"Authorization": tok2, "Content-Type": "application/json"})
        assert r.status_code == 200 and r.get_json()["body"] == '{"q": 1}'
    backend.stop()
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": tok1})
        assert r.status_code == 502 and r.mimetype == "application/problem+json"


def test_sql_source_jsonl_and_csv(world):
    src = world.tmp / "src.sqlite"
    eng = create_engine(f"sqlite:///{src}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE inspections (lot TEXT, ok INTEGER, score REAL)"))
        for i in range(1200):
            conn.execute(text("INSERT INTO inspections VALUES (:l, :o, :s)"),
                         {"l": f"L{i}", "o": i % 2, "s": i / 10})
    eng.dispose()
    q = "SELECT lot, ok, score FROM inspections ORDER BY rowid"
    jl = world.asset({"type": "SqlQuery", "url": f"sqlite:///{src}", "query": q})
    cs = world.asset({"type": "SqlQuery", "url": f"sqlite:///{src}", "query": q, "format": "csv"})
    a1, t1 = world.transfer(jl)
    a2, t2 = world.transfer(cs)
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": world.token(a1, t1)})
        assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
        lines = r.data.decode().splitlines()
        assert len(lines) == 1200 and json.loads(lines[3]) == {"lot": "L3", "ok": 1, "score": 0.3}
        r = c.get("/dataplane/public", headers={"Authorization": world.token(a2, t2)})
        rows = r.data.decode().splitlines()
        assert rows[0] == "lot,ok,score" and rows[2] == "L1,1,0.1" and len(rows) == 1201
    assert _entries(world, t1.id)[0]["sha256"] == hashlib.sha256(
        "\n".join(lines).encode() + b"\n").hexdigest()


def _get(world, token, purpose=None):
    """One download: the body is read (an unread response delivered nothing, so its use is
    given back; see test_use_counting.py)."""
    with world.app.test_client() as c:
        url = "/dataplane/public" + (f"?purpose={purpose}" if purpose else "")
        return c.get(url, headers={"Authorization": token}, buffered=True)


def test_count_used_up_is_denied(world):
    pol = policy({"leftOperand": "count", "operator": "lteq", "rightOperand": 2})
    agreement, entity = world.transfer(_file(world), pol)
    token = world.token(agreement, entity)
    assert [_get(world, token).status_code for _ in range(3)] == [200, 200, 403]
    r = _get(world, token)
    assert r.mimetype == "application/problem+json" and r.get_json()["reasons"]
    log = _entries(world, entity.id)
    assert [e["decision"] for e in log] == ["permit", "permit", "deny", "deny"]


def test_time_window_closed_is_denied(world):
    pol = policy({"leftOperand": "dateTime", "operator": "lt",
                  "rightOperand": "2026-06-01T00:00:00Z"})
    agreement, entity = world.transfer(_file(world), pol)
    assert _get(world, world.token(agreement, entity)).status_code == 200
    world.clock.now += 7 * 86400  # past June 1st; a fresh token, so only the window refuses
    r = _get(world, world.token(agreement, entity))
    assert r.status_code == 403 and "Usage policy" in r.get_json()["title"]


def test_purpose_is_enforced(world):
    pol = policy({"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"})
    agreement, entity = world.transfer(_file(world), pol)
    token = world.token(agreement, entity)
    assert _get(world, token, "marketing").status_code == 403
    assert _get(world, token).status_code == 403
    assert _get(world, token, "quality").status_code == 200
    with world.app.test_client() as c:
        r = c.get("/dataplane/public", headers={"Authorization": token, "X-Purpose": "quality"})
        assert r.status_code == 200
    assert _entries(world, entity.id)[-1]["purpose"] == "quality"


def test_suspension_stops_access_and_resume_restores_it(world):
    agreement, entity = world.transfer(_file(world))
    token = world.token(agreement, entity)
    assert _get(world, token).status_code == 200
    world.set_state(entity.id, TransferState.SUSPENDED)
    assert _get(world, token).status_code == 403
    world.set_state(entity.id, TransferState.STARTED)
    assert _get(world, token).status_code == 200


def test_terminated_agreement_in_usage_store_is_denied(world):
    agreement, entity = world.transfer(_file(world))
    token = world.token(agreement, entity)
    assert _get(world, token).status_code == 200  # registers the agreement
    world.plane.gate.usage.terminate(agreement.id, "revoked by the provider")
    r = _get(world, token)
    assert r.status_code == 403 and "revoked" in r.get_json()["detail"]


def test_classification_floor(world):
    core = _file(world, classification="core")
    important = world.asset({"type": "File", "path": str(world.tmp / "asset.bin")},
                            classification="important", home_region="CN")
    a, t = world.transfer(core)
    import pytest

    from connectors.dsp.transfer_handlers import DataFlowError
    with pytest.raises(DataFlowError, match="core"):
        world.plane.flow.start(t, a)
    a2, t2 = world.transfer(important, claims={"region": "DE"})
    with pytest.raises(DataFlowError, match="export approval"):
        world.plane.flow.start(t2, a2)
    # and at access time, for a token issued anyway (e.g. before the asset was reclassified)
    from tests.dataplane.conftest import grant_of
    r = _get(world, world.plane.codec.access_token(grant_of(a2, t2)))
    assert r.status_code == 403 and "export approval" in r.get_json()["detail"]
    approved = policy(extra={"https://w3id.org/autospace/cn-auto/exportApproval":
                             "urn:approval:cac-2026-17"})
    a4, t4 = world.transfer(important, approved, claims={"region": "DE"})
    assert _get(world, world.token(a4, t4)).status_code == 200
    a3, t3 = world.transfer(important, claims={"region": "CN"})
    assert _get(world, world.token(a3, t3)).status_code == 200


def test_head_does_not_count(world):
    pol = policy({"leftOperand": "count", "operator": "lteq", "rightOperand": 1})
    agreement, entity = world.transfer(_file(world), pol)
    token = world.token(agreement, entity)
    with world.app.test_client() as c:
        r = c.head("/dataplane/public", headers={"Authorization": token})
        assert r.status_code == 200 and r.headers["Content-Length"] == "10000"
    assert _get(world, token).status_code == 200
    assert _get(world, token).status_code == 403


def test_suspension_cuts_a_running_stream(world):
    path = world.tmp / "big.bin"
    with open(path, "wb") as fh:
        fh.truncate(64 << 20)
    agreement, entity = world.transfer(world.asset({"type": "File", "path": str(path)}))
    ticks = [0.0]
    world.plane.monotonic = lambda: ticks[0]
    from connectors.dataplane.sources import SourceRequest

    metered = world.plane.pull(world.token(agreement, entity), SourceRequest(), purpose=None)
    chunks = iter(metered.chunks)
    got = sum(len(next(chunks)) for _ in range(3))
    world.set_state(entity.id, TransferState.SUSPENDED)
    ticks[0] += 5  # past the re-check interval
    got += sum(len(c) for c in chunks)
    assert got == 3 << 20  # nothing after the suspension was noticed
    entry = _entries(world, entity.id)[-1]
    assert entry["status"] == "aborted" and "SUSPENDED" in entry["reason"]
    assert entry["bytes"] == 3 << 20


def test_count_is_exact_under_concurrent_pulls(world, serve):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    pol = policy({"leftOperand": "count", "operator": "lteq", "rightOperand": 3})
    agreement, entity = world.transfer(_file(world), pol)
    token = world.token(agreement, entity)
    srv = serve(world.app)

    def one(_: int) -> int:
        return httpx.get(srv.url + "/dataplane/public", headers={"Authorization": token},
                         timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(8)))
    assert sorted(codes) == [200] * 3 + [403] * 5


def test_monitor_sees_the_agreement_as_agreed_and_a_lapse_stops_access(world):
    from connectors.dataplane.gate import agreed_purposes

    pol = policy({"leftOperand": "purpose", "operator": "eq", "rightOperand": "quality"},
                 {"leftOperand": "dateTime", "operator": "lt",
                  "rightOperand": "2026-06-01T00:00:00Z"})
    assert agreed_purposes(pol) == ["quality"]
    agreement, entity = world.transfer(_file(world), pol)
    token = world.token(agreement, entity)
    assert _get(world, token, "quality").status_code == 200
    usage = world.plane.gate.usage
    assert usage.monitor() == []  # the template carries the agreed purpose: not lapsed
    world.clock.now += 7 * 86400
    lapsed = usage.monitor(mark=True)
    assert [x["agreement"] for x in lapsed] == [agreement.id]
    world.clock.now -= 7 * 86400  # even back inside the window, a lapsed agreement is over
    r = _get(world, world.token(agreement, entity), "quality")
    assert r.status_code == 403 and "lapsed" in r.get_json()["detail"]
