"""The app factory in-process: public documents, errors as problem+json, limits, API keys,
surfaces, storage failures as 503."""

from __future__ import annotations

import json

import pytest
from flask import Blueprint, Flask, jsonify, request
from sqlalchemy import create_engine, event, func, select, text

from connectors.http.problem import PROBLEM_JSON
from node.apikeys import create_api_key
from node.app import create_app
from node.context import Surface, node_context
from node.db import make_engine
from node.tables import api_keys
from tests.support.databases import is_postgres


class Probe:
    """A test component: echo JSON, write a row, and fail on purpose."""

    def init_app(self, app: Flask) -> None:
        ctx = node_context(app)
        bp = Blueprint("probe", __name__, url_prefix="/probe")

        @bp.post("/echo")
        def echo():
            return jsonify(request.get_json())

        @bp.post("/write")
        def write():
            key_id, _ = create_api_key(ctx.engine, request.get_json()["label"])
            return jsonify(id=key_id), 201

        @bp.get("/boom")
        def boom():
            raise RuntimeError("secret internal detail")

        ctx.blueprints.add(bp, surface=Surface.PUBLIC)
        mgmt = Blueprint("probe_mgmt", __name__, url_prefix="/management/probe")

        @mgmt.get("/hello")
        def hello():
            return jsonify(hello=True)

        ctx.blueprints.add(mgmt, surface=Surface.MANAGEMENT)


# The node's own components (other packages' components are tested by those packages).
NODE_OWN_COMPONENTS = ["node.metrics", "node.web.identity", "node.web.health", "node.web.peer",
                       "node.web.management"]


def make(home, engine=None, **env):
    return create_app(home.config(**env), engine=engine,
                      components=[*NODE_OWN_COMPONENTS, Probe()])


@pytest.fixture
def client(home):
    app = make(home)
    yield app.test_client()
    node_context(app).close()


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def test_did_document_and_jwks(client, home):
    doc = client.get("/.well-known/did.json")
    assert doc.mimetype == "application/did+json"
    assert doc.get_json(force=True)["id"] == home.result.did == "did:web:127.0.0.1%3A18181"
    jwks = client.get("/.well-known/jwks.json").get_json(force=True)
    assert jwks["keys"][0]["kid"] == home.result.key_id


def test_health(client):
    assert client.get("/health/live").get_json() == {"status": "UP"}
    ready = client.get("/health/ready").get_json()
    assert ready["status"] == "UP" and ready["checks"]["credential"] == "missing"


def test_ready_is_503_when_the_database_is_unreachable(home):
    dead = make_engine("postgresql://nobody@127.0.0.1:1/none")
    app = create_app(home.config(), engine=dead, run_migrations=False,
                     components=NODE_OWN_COMPONENTS)
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["checks"]["database"].startswith("DOWN")


def test_errors_are_problem_documents(client):
    assert_problem(client.get("/nowhere"), 404)
    body = assert_problem(client.get("/probe/boom"), 500)
    assert "secret internal detail" not in json.dumps(body) and body["requestId"]
    assert_problem(client.delete("/health/live"), 405)


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/health/live", headers={"X-Request-Id": "abc-1"}).headers[
        "X-Request-Id"] == "abc-1"
    generated = client.get("/health/live", headers={"X-Request-Id": "bad id <script>"})
    assert generated.headers["X-Request-Id"] != "bad id <script>"
    assert len(generated.headers["X-Request-Id"]) == 32


def test_malformed_json_names_the_position(client):
    body = assert_problem(client.post("/probe/echo", data='{"a": 1,}',
                                      content_type="application/json"), 400)
    assert "line 1 column 9" in body["detail"]


def test_json_depth_and_body_size_limits(client):
    ok = client.post("/probe/echo", json={"a": [[1]]})
    assert ok.status_code == 200 and ok.get_json() == {"a": [[1]]}
    deep = "[" * 40 + "]" * 40
    body = assert_problem(client.post("/probe/echo", data=deep,
                                      content_type="application/json"), 400)
    assert "depth 40" in body["detail"]
    big = json.dumps({"x": "y" * (1024 * 1024)})
    assert_problem(client.post("/probe/echo", data=big, content_type="application/json"), 413)


def test_management_api_key(client, home, db_url):
    assert_problem(client.get("/management/v3/node"), 401)
    assert_problem(client.get("/management/v3/node", headers={"X-Api-Key": "ask_wrong"}), 401)
    ok = client.get("/management/v3/node", headers={"X-Api-Key": home.result.api_key})
    assert ok.status_code == 200 and ok.get_json()["did"] == home.result.did
    hello = client.get("/management/probe/hello", headers={"X-Api-Key": home.result.api_key})
    assert hello.get_json() == {"hello": True}


def test_openapi_document(client):
    spec = client.get("/management/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["paths"]["/management/v3/node"]["get"]["responses"]["200"]
    assert "NodeInfo" in spec["components"]["schemas"]
    assert spec["security"] == [{"ApiKeyAuth": []}]


def test_peer_endpoint_without_trust_anchor_refuses(client):
    body = assert_problem(client.get("/peer/ping"), 503)
    assert body["reason"] == "authority_unresolvable"


def test_separate_management_address(home):
    app = make(home, server_management_port="18182")
    c = app.test_client()
    key = {"X-Api-Key": home.result.api_key}
    main = {"SERVER_PORT": "18181"}
    mgmt = {"SERVER_PORT": "18182"}
    assert c.get("/management/v3/node", headers=key, environ_overrides=main).status_code == 404
    assert c.get("/management/v3/node", headers=key, environ_overrides=mgmt).status_code == 200
    assert c.get("/.well-known/did.json", environ_overrides=mgmt).status_code == 404
    assert c.get("/.well-known/did.json", environ_overrides=main).status_code == 200
    assert c.get("/metrics", environ_overrides=mgmt).status_code == 200
    assert c.get("/metrics", environ_overrides=main).status_code == 404
    assert c.get("/health/live", environ_overrides=mgmt).status_code == 200


def test_blueprint_registry_is_frozen_after_creation(client):
    ctx = node_context(client.application)
    with pytest.raises(RuntimeError):
        ctx.blueprints.add(Blueprint("late", __name__), surface=Surface.PUBLIC)


def _count(engine, label):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(api_keys.c.label == label)).scalar()


@pytest.mark.skipif(is_postgres(), reason="SQLite write lock")
def test_locked_sqlite_answers_503_and_loses_no_write(home, db_url):
    fast_fail = create_engine(db_url, connect_args={"timeout": 0.2})
    app = make(home, engine=fast_fail)
    c = app.test_client()
    holder = make_engine(db_url).connect()
    holder.exec_driver_sql("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        response = c.post("/probe/write", json={"label": "w1"})
        body = assert_problem(response, 503)
        assert response.headers["Retry-After"] and "retry" in body["detail"]
    finally:
        holder.exec_driver_sql("ROLLBACK")
        holder.close()
    assert _count(fast_fail, "w1") == 0  # nothing half-written
    assert c.post("/probe/write", json={"label": "w1"}).status_code == 201  # the retry lands
    assert _count(fast_fail, "w1") == 1


def test_unreachable_database_answers_503(home):
    dead = make_engine("postgresql://nobody@127.0.0.1:1/none")
    app = create_app(home.config(), engine=dead, run_migrations=False,
                     components=[Probe()])
    response = app.test_client().post("/probe/write", json={"label": "x"})
    assert_problem(response, 503)
    assert response.headers["Retry-After"]


@pytest.mark.skipif(not is_postgres(), reason="PostgreSQL lock timeout")
def test_locked_postgres_table_answers_503_and_loses_no_write(home, db_url):
    eng = make_engine(db_url)

    @event.listens_for(eng, "connect")
    def _short_lock_wait(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET lock_timeout = '200ms'")
        dbapi_conn.commit()

    app = make(home, engine=eng)
    c = app.test_client()
    holder = make_engine(db_url).connect()
    holder.execute(text("LOCK TABLE node_api_keys IN ACCESS EXCLUSIVE MODE"))
    try:
        response = c.post("/probe/write", json={"label": "p1"})
        assert_problem(response, 503)
        assert response.headers["Retry-After"]
    finally:
        holder.rollback()
        holder.close()
    assert _count(eng, "p1") == 0
    assert c.post("/probe/write", json={"label": "p1"}).status_code == 201
    assert _count(eng, "p1") == 1


def test_require_peer_and_require_api_key_decorators(home, caplog):
    from connectors.http.apikey import require_api_key
    from connectors.http.peer import require_peer

    class Decorated:
        def init_app(self, app: Flask) -> None:
            bp = Blueprint("decorated", __name__)

            @bp.get("/open/peer-only")
            @require_peer
            def peer_only():
                return jsonify(ok=True)

            @bp.get("/open/key-only")
            @require_api_key
            def key_only():
                return jsonify(ok=True)

            node_context(app).blueprints.add(bp, surface=Surface.PUBLIC)

    app = create_app(home.config(trust_authority_did="did:web:authority.example"),
                     components=[Decorated()])
    c = app.test_client()
    with caplog.at_level("WARNING", logger="autospace.security"):
        body = assert_problem(c.get("/open/peer-only", headers={"X-Request-Id": "r-1"}), 401)
    assert body["reason"] == "missing_token"
    record = next(r for r in caplog.records if r.name == "autospace.security")
    assert record.fields["reason"] == "missing_token" and record.fields["path"] == \
        "/open/peer-only"
    assert assert_problem(c.get("/open/peer-only", headers={"Authorization": "Bearer x.y.z"}),
                          401)["reason"] == "malformed_token"
    assert_problem(c.get("/open/key-only"), 401)
    ok = c.get("/open/key-only", headers={"X-Api-Key": home.result.api_key})
    assert ok.get_json() == {"ok": True}
    node_context(app).close()
