"""Benchmark: data-plane pull throughput against a plain static file server.

One run, both servers on 127.0.0.1, the same client: a file of ``--size`` bytes (default
1 GiB, written sparse, so both servers read the same page-cache pages) is downloaded

1. through the pull endpoint (``GET /dataplane/public`` with an EDR token: token check,
   transfer state, usage decision and count, SHA-256 of the bytes sent, access-log row),
   served by gunicorn (1 gthread worker) with the node's data-plane blueprint; gunicorn
   sends the file with ``sendfile`` (connectors.dataplane.sendfile); the first download
   hashes beside it, later ones reuse the hash of the unchanged file;
2. from ``python -m http.server`` serving the same file.

Target (issue 5): pull >= 70 % of the static server's MB/s. Run from the repository root::

    .venv/bin/python bench/dataplane.py [--size-mib 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROVIDER = "did:web:bench-provider.example"
CONSUMER = "did:web:bench-consumer.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def build_app(state: dict):
    """The WSGI app gunicorn serves: the data-plane blueprint over the prepared database."""
    from flask import Flask

    from connectors.dataplane.service import build_dataplane
    from connectors.dataplane.web import DATAFLOW_EXTENSION, DATAPLANE_EXTENSION, make_blueprint
    from connectors.http.problem import register_error_handlers
    from node.db import make_engine
    from node.keystore import KeyStore

    plane = build_dataplane(make_engine(state["db"]), KeyStore(state["home"]),
                            participant_id=PROVIDER, public_url=state["public"])
    app = Flask("bench-dataplane")
    app.extensions[DATAPLANE_EXTENSION] = plane
    app.extensions[DATAFLOW_EXTENSION] = plane.flow
    app.register_blueprint(make_blueprint())
    register_error_handlers(app)
    return app


def serve(state_file: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication

    state = json.loads(Path(state_file).read_text())

    class App(BaseApplication):
        def load_config(self) -> None:
            for k, v in {"bind": f"127.0.0.1:{port}", "workers": 1, "worker_class": "gthread",
                         "threads": 4, "timeout": 300, "accesslog": None,
                         "loglevel": "warning"}.items():
                self.cfg.set(k, v)

        def load(self):
            return build_app(state)

    App().run()


def prepare(tmp: Path, size: int, port: int) -> tuple[dict, str]:
    """Database, key, asset (the big file), agreement and STARTED transfer; returns a token."""
    from datetime import UTC, datetime

    from connectors.dsp.agreement import ContractAgreement
    from connectors.dsp.definitions import Asset
    from connectors.dsp.store import ConnectorStore
    from connectors.dsp.transfer import TransferProcessEntity
    from connectors.dsp.vocabulary import Role, TransferState
    from node.db import make_engine, migrate
    from node.keystore import KeyStore

    data = tmp / "static" / "asset.bin"
    data.parent.mkdir()
    with open(data, "wb") as fh:
        fh.truncate(size)
    with open(data, "rb") as fh:  # fill the page cache once, so no run pays for it
        while fh.read(8 << 20):
            pass
    db = f"sqlite:///{tmp / 'bench.sqlite'}"
    engine = make_engine(db)
    migrate(engine)
    KeyStore.create(tmp / "home")
    now = datetime.now(UTC)
    store = ConnectorStore(engine)
    agreement = ContractAgreement("urn:agreement:bench", "urn:neg:bench", PROVIDER, CONSUMER,
                                  "urn:asset:bench",
                                  {"@type": "Agreement", "permission": [{"action": "use"}],
                                   "target": "urn:asset:bench"}, now)
    transfer = TransferProcessEntity(
        id="urn:uuid:bench-transfer", role=Role.PROVIDER, state=TransferState.STARTED,
        counter_party_id=CONSUMER, counter_party_address="http://127.0.0.1:1/dsp",
        agreement_id=agreement.id, format="HttpData-PULL", created_at=now, updated_at=now,
        consumer_pid="urn:uuid:bench-consumer", provider_pid="urn:uuid:bench-transfer",
        dataset_id=agreement.asset_id, extra={"claims": {"region": "CN"}})
    with store.transaction() as tx:
        tx.create_asset(Asset(id=agreement.asset_id,
                              data_address={"type": "File", "path": str(data)}))
        tx.insert_agreement(agreement)
        tx.save_transfer(transfer)
    state = {"db": db, "home": str(tmp / "home"), "public": f"http://127.0.0.1:{port}"}
    app = build_app(state)
    edr = app.extensions["autospace.dataflow"].start(transfer, agreement)
    engine.dispose()
    return state, edr.property("authorization")


def download(url: str, headers: dict[str, str]) -> tuple[int, float]:
    import httpx

    got = 0
    start = time.perf_counter()
    with httpx.stream("GET", url, headers=headers, timeout=600) as r:
        if r.status_code != 200:
            raise SystemExit(f"{url} answered {r.status_code}: {r.read()[:300]!r}")
        for chunk in r.iter_raw(1 << 20):
            got += len(chunk)
    return got, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib << 20
    import httpx
    with tempfile.TemporaryDirectory(prefix="autospace-bench-dp-") as d:
        tmp = Path(d)
        dp_port, st_port = free_port(), free_port()
        state, token = prepare(tmp, size, dp_port)
        state_file = tmp / "state.json"
        state_file.write_text(json.dumps(state))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [
            subprocess.Popen([sys.executable, __file__, "--serve", str(state_file),
                              str(dp_port)], env=env),
            subprocess.Popen([sys.executable, "-m", "http.server", str(st_port), "--bind",
                              "127.0.0.1", "--directory", str(tmp / "static")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_port(dp_port)
            wait_port(st_port)
            # one small warm-up request each (imports, first policy parse, connections)
            for url, hdrs in ((f"http://127.0.0.1:{dp_port}/dataplane/public",
                               {"Authorization": f"Bearer {token}"}),
                              (f"http://127.0.0.1:{st_port}/asset.bin", {})):
                started = time.perf_counter()
                with httpx.stream("GET", url, headers={**hdrs, "Range": "bytes=0-1023"},
                                  timeout=60) as r:  # http.server ignores Range: stop early
                    next(r.iter_raw(1024), b"")
                print(f"warm-up {url.split('/')[-1] or 'pull'}: "
                      f"{(time.perf_counter() - started) * 1000:.0f} ms")
            rates: dict[str, list[float]] = {"pull": [], "static": []}
            for _ in range(args.repeat):  # interleaved, so load from others hits both alike
                n, s = download(f"http://127.0.0.1:{dp_port}/dataplane/public",
                                {"Authorization": f"Bearer {token}"})
                assert n == size
                rates["pull"].append(n / s / 1e6)
                n, s = download(f"http://127.0.0.1:{st_port}/asset.bin", {})
                assert n == size
                rates["static"].append(n / s / 1e6)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    pull, static = statistics.median(rates["pull"]), statistics.median(rates["static"])
    pairs = [p / s for p, s in zip(rates["pull"], rates["static"], strict=True)]
    print(f"file: {args.size_mib} MiB (sparse, page-cached), {args.repeat} downloads each, "
          "interleaved")
    print(f"data-plane pull  (gunicorn gthread 1 worker; sendfile; token, transfer state, usage "
          f"decision + count, SHA-256, access log): median {pull:7.1f} MB/s   runs "
          f"{', '.join(f'{r:.0f}' for r in rates['pull'])}")
    print(f"  first download (SHA-256 computed beside sendfile): {rates['pull'][0]:7.1f} MB/s; "
          "later ones reuse the hash of the unchanged file")
    print(f"static server    (python -m http.server): median {static:7.1f} MB/s   runs "
          f"{', '.join(f'{r:.0f}' for r in rates['static'])}")
    print(f"ratio pull/static: {pull / static:.2f} of the medians; first download "
          f"{pairs[0]:.2f}; median of back-to-back pairs {statistics.median(pairs):.2f} "
          "(target >= 0.70)")

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
