"""`autospace audit|ledger ...` through Click's CliRunner (real files, real HTTP)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from ledger import audit
from ledger.checkpoint import verifier_key
from ledger.evm import Chain
from node.cli import cli
from tests.ledger.conftest import ORIGIN
from tests.ledger.helpers import anchor_now, anchored_chain, append
from tests.support.anvil import free_port


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def files(engine, log, signer, tmp_path):
    append(engine, log, 0, 20)
    with engine.begin() as conn:
        bundle = audit.build_bundle(conn, log, "agr-3", signer)
        old = log.sign_checkpoint(conn, signer)
    append(engine, log, 20, 13)
    with engine.begin() as conn:
        new = log.sign_checkpoint(conn, signer)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    (tmp_path / "old.cp").write_text(old.note)
    (tmp_path / "new.cp").write_text(new.note)
    return tmp_path


def test_verify_exit_codes(files, signer):
    key = verifier_key(ORIGIN, signer.public_key_bytes())
    ok = _run("audit", "verify", str(files / "bundle.json"), "--trusted-key", key)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("VALID: record agr-3")
    js = _run("audit", "verify", str(files / "bundle.json"), "--json")
    assert js.exit_code == 0 and json.loads(js.output)["valid"] is True
    b = json.loads((files / "bundle.json").read_text())
    b["record"]["value"]["assetId"] = "forged"
    (files / "bad.json").write_text(json.dumps(b))
    bad = _run("audit", "verify", str(files / "bad.json"), "--trusted-key", key, "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error"]["kind"] == "RootMismatchError"
    (files / "junk.json").write_text("{not json")
    assert _run("audit", "verify", str(files / "junk.json")).exit_code == 2
    assert _run("audit", "verify", str(files / "missing.json")).exit_code == 2
    assert (
        _run("audit", "verify", str(files / "bundle.json"), "--trusted-key", "junk").exit_code == 2
    )


def test_verify_rpc_down_is_bad_input(engine, log, signer, tmp_path):
    append(engine, log, 0, 4)
    a = anchored_chain(engine, log, signer)
    anchor_now(a)
    with engine.begin() as conn:
        (tmp_path / "b.json").write_text(json.dumps(audit.build_bundle(conn, log, "agr-1", signer)))
    res = _run(
        "audit", "verify", str(tmp_path / "b.json"), "--rpc", f"http://127.0.0.1:{free_port()}"
    )
    assert res.exit_code == 2 and "EVM node" in res.output


@pytest.mark.anvil
def test_verify_against_anvil(engine, log, signer, tmp_path, anvil):
    append(engine, log, 0, 9)
    a = anchored_chain(engine, log, signer, chain=Chain.rpc(anvil.url), fund=anvil.fund)
    anchor_now(a)
    with engine.begin() as conn:
        (tmp_path / "b.json").write_text(json.dumps(audit.build_bundle(conn, log, "agr-7", signer)))
    key = verifier_key(ORIGIN, signer.public_key_bytes())
    res = _run(
        "audit", "verify", str(tmp_path / "b.json"), "--rpc", anvil.url, "--trusted-key", key
    )
    assert res.exit_code == 0, res.output
    assert "anchored by 0x" in res.output and "on chain 31337" in res.output
    b = json.loads((tmp_path / "b.json").read_text())
    b["anchor"]["chain_id"] = 1
    (tmp_path / "w.json").write_text(json.dumps(b))
    res = _run("audit", "verify", str(tmp_path / "w.json"), "--rpc", anvil.url)
    assert res.exit_code == 2 and "another chain" in res.output


class _LogEndpoint(BaseHTTPRequestHandler):
    """The consistency endpoint as the node will serve it (built on the library function)."""

    engine = log = None

    def do_GET(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        with self.engine.connect() as conn:
            body = audit.consistency_proof_json(
                conn, self.log, int(q["first"][0]), int(q["second"][0])
            )
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(engine, log):
    handler = type("H", (_LogEndpoint,), {"engine": engine, "log": log})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ledger"
    server.shutdown()
    server.server_close()


def test_consistency_command(files, signer, endpoint, engine, log):
    key = verifier_key(ORIGIN, signer.public_key_bytes())
    old, new = str(files / "old.cp"), str(files / "new.cp")
    res = _run("audit", "consistency", old, new, "--trusted-key", key, "--from", endpoint)
    assert res.exit_code == 0, res.output
    assert "grew from 20 to 33" in res.output
    res = _run("audit", "consistency", new, old, "--trusted-key", key, "--from", endpoint, "--json")
    assert res.exit_code == 1 and "truncated" in json.loads(res.output)["error"]["reason"]
    assert (
        _run("audit", "consistency", old, new, "--trusted-key", key).exit_code == 2
    )  # no proof source
    down = f"http://127.0.0.1:{free_port()}/ledger"
    assert (
        _run("audit", "consistency", old, new, "--trusted-key", key, "--from", down).exit_code == 2
    )
    # a fork: another checkpoint of size 20 with a different root, signed with the same key
    from ledger.checkpoint import sign_checkpoint

    forged = sign_checkpoint(ORIGIN, 20, b"\x07" * 32, signer)
    (files / "fork.cp").write_text(forged.note)
    res = _run("audit", "consistency", old, str(files / "fork.cp"), "--trusted-key", key)
    assert res.exit_code == 1 and "forked" in res.output


def test_bundle_and_ledger_commands_with_a_node_home(db_url, tmp_path):
    from node.home import init_home

    home = tmp_path / "home"
    init_home(
        home,
        participant_id="BPNL000000000001",
        name="OEM A",
        public_url="https://oem-a.example",
        database_url=db_url,
    )
    status = _run("ledger", "status", "--home", str(home), "--json")
    assert status.exit_code == 0, status.output
    info = json.loads(status.output)
    assert info["origin"] == "oem-a.example/ledger" and info["ephemeralChain"] is True
    # log a record through the library, as the node's services do
    from ledger.log import Log
    from node.db import make_engine

    eng = make_engine(db_url)
    with eng.begin() as conn:
        Log.open(conn, info["origin"]).append(
            conn,
            "fl-round",
            {
                "taskId": "t",
                "round": 1,
                "modelHash": "00" * 32,
                "participants": ["a"],
                "at": "2026-01-01T00:00:00Z",
            },
            record_id="round-1",
        )
    eng.dispose()
    out = tmp_path / "round-1.json"
    res = _run("audit", "bundle", "--home", str(home), "--record", "round-1", "-o", str(out))
    assert res.exit_code == 0, res.output
    res = _run("audit", "verify", str(out), "--trusted-key", info["verifierKey"])
    assert res.exit_code == 0, res.output
    assert (
        _run("audit", "bundle", "--home", str(home), "--record", "nope", "-o", str(out)).exit_code
        == 1
    )
    cp = _run("ledger", "checkpoint", "--home", str(home))
    assert cp.output.startswith("oem-a.example/ledger\n1\n")
    assert _run("ledger", "anchor", "--home", str(home)).exit_code == 1  # embedded: refused clearly


@pytest.mark.anvil
@pytest.mark.anvil
def test_verify_fetches_consistency_from_the_log(engine, log, signer, tmp_path, anvil, endpoint):
    append(engine, log, 0, 6)
    with engine.begin() as conn:
        log.sign_checkpoint(conn, signer)  # the auditor's older checkpoint: size 6
    append(engine, log, 6, 7)
    a = anchored_chain(engine, log, signer, chain=Chain.rpc(anvil.url), fund=anvil.fund)
    assert anchor_now(a) == 13
    with engine.begin() as conn:
        bundle = audit.build_bundle(conn, log, "agr-2", signer, tree_size=6)
    assert bundle["anchor"]["tree_size"] == 13
    del bundle["anchor"]["consistency_proof"]  # make the verifier fetch it over HTTP
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    key = verifier_key(ORIGIN, signer.public_key_bytes())
    args = ["audit", "verify", str(tmp_path / "b.json"), "--rpc", anvil.url, "--trusted-key", key]
    assert _run(*args).exit_code == 2  # no proof and nowhere to fetch it from
    res = _run(*args, "--from", endpoint, "--json")
    assert res.exit_code == 0, res.output
    checks = [c["check"] for c in json.loads(res.output)["checks"]]
    assert checks == ["checkpoint-signature", "leaf-hash", "inclusion", "consistency", "anchor"]
