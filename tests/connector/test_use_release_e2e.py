"""A use is counted only if data arrived: real provider and consumer processes.

The provider publishes two assets under ``count lteq 1``: one read from an HTTP backend this
test runs (it answers 500 until told otherwise), one a large file. A pull whose backend
fails delivers nothing, so the provider gives the use back and the consumer's one agreed
use is still there afterwards; the access log and the ledger record say it was released.
A download the consumer cuts after the first bytes did deliver data, so it stays counted.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import create_engine, select

from connectors.dataplane.tables import access_log
from tests.connector.test_data_e2e import _agree, _edr, _transfer
from tests.connector.test_dsp_e2e import EDC, ODRL_CTX, mgmt, ok
from tests.support.processes import DataSpace

pytestmark = pytest.mark.slow

BACKEND_DATA = b"lot,measured,ok\n7,2026-11-20,1\n"
BIG = 64 << 20  # far more than the loopback socket buffers: a cut download is cut mid-stream


class _Backend(BaseHTTPRequestHandler):
    failing: ClassVar[list[bool]] = [True]

    def do_GET(self) -> None:
        if self.failing[0]:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(BACKEND_DATA)))
        self.end_headers()
        self.wfile.write(BACKEND_DATA)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def space(tmp_path_factory, backend):
    with DataSpace(tmp_path_factory.mktemp("use-release")) as ds:
        ds.add_nodes({"provider": "supplier", "consumer": "oem"})
        ds.start()
        provider = ds.nodes["provider"]
        big = provider.home / "scan.bin"
        with big.open("wb") as fh:
            fh.truncate(BIG)
        once = {"@context": ODRL_CTX, "@type": "Set", "permission": [{
            "action": "use",
            "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 1}]}]}
        with mgmt(provider) as m:
            ok(m.post("/management/v3/policydefinitions", json={
                "@context": EDC, "@id": "members", "policy": {
                    "@context": ODRL_CTX, "@type": "Set", "permission": [{"action": "use"}]}}))
            ok(m.post("/management/v3/policydefinitions", json={
                "@context": EDC, "@id": "once", "policy": once}))
            for ident, address in (
                ("measurements", {"type": "HttpData", "baseUrl": backend + "/lot-7"}),
                ("scan", {"type": "File", "path": str(big)}),
            ):
                ok(m.post("/management/v3/assets", json={
                    "@context": EDC, "@id": ident, "properties": {"name": ident},
                    "dataAddress": {"@type": "DataAddress", **address}}))
            ok(m.post("/management/v3/contractdefinitions", json={
                "@context": EDC, "@id": "cd", "accessPolicyId": "members",
                "contractPolicyId": "once"}))
        ds.provider_engine = create_engine(provider.database_url)  # type: ignore[attr-defined]
        try:
            yield ds
        finally:
            ds.provider_engine.dispose()  # type: ignore[attr-defined]


def _started(space, asset_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    neg = _agree(space, asset_id)
    started = _transfer(space, neg["contractAgreementId"])
    assert started["state"] == "STARTED", started
    return started, _edr(space, started["@id"])


def _accesses(space, provider_pid: str, count: int, timeout: float = 15.0) -> list[Any]:
    """The provider's permitted accesses of a transfer, once ``count`` are recorded."""
    deadline = time.monotonic() + timeout
    query = select(access_log).where(access_log.c.transfer_id == provider_pid,
                                     access_log.c.decision == "permit").order_by(access_log.c.id)
    while True:
        with space.provider_engine.connect() as conn:
            rows = conn.execute(query).all()
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)


def _pull(edr: dict[str, Any]) -> httpx.Response:
    return httpx.get(edr["endpoint"], headers={"Authorization": edr["authorization"]},
                     timeout=30)


def test_a_failing_source_does_not_use_up_the_count(space):
    started, edr = _started(space, "measurements")
    _Backend.failing[0] = True
    failed = _pull(edr)
    assert failed.status_code == 502, failed.text[:300]
    assert failed.headers["content-type"].startswith("application/problem+json")
    _Backend.failing[0] = False
    got = _pull(edr)  # the one agreed use is still available
    assert got.status_code == 200 and got.content == BACKEND_DATA
    refused = _pull(edr)
    assert refused.status_code == 403 and "count lteq 1" in refused.text

    first, second = _accesses(space, started["correlationId"], 2)
    assert (first.status, first.bytes, first.use_released) == ("failed", 0, True)
    assert (second.status, second.bytes, second.use_released) == \
        ("complete", len(BACKEND_DATA), False)
    with mgmt(space.nodes["provider"]) as m:
        entry = ok(m.get(f"/management/ledger/records/{first.ledger_record_id}"))
    assert entry["recordType"] == "data-use"
    assert entry["record"]["status"] == "failed" and entry["record"]["useReleased"] is True


def test_a_download_cut_mid_stream_stays_counted(space):
    started, edr = _started(space, "scan")
    with httpx.stream("GET", edr["endpoint"], headers={"Authorization": edr["authorization"]},
                      timeout=30) as response:
        assert response.status_code == 200
        got = next(response.iter_raw(1 << 16))
        assert got  # data arrived; then the consumer hangs up
    (cut,) = _accesses(space, started["correlationId"], 1)
    assert cut.status == "aborted" and 0 < cut.bytes < BIG, cut
    assert cut.use_released is False
    refused = _pull(edr)
    assert refused.status_code == 403 and "count lteq 1" in refused.text
