"""Catalog request time at N assets (default 100,000) on SQLite or PostgreSQL.

    .venv/bin/python -m tests.dsp.bench_catalog [--assets 100000] [--db URL]

Prints load time, and p50/max of a first page, a deep page, a full count, and one dataset
lookup. Not part of the test run (the lead's bench/connector.py covers the node end to end).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from connectors.dsp.catalog import CatalogService, page_token
from connectors.dsp.definitions import (
    Asset,
    Classification,
    ContractDefinition,
    Criterion,
    Operator,
    PolicyDefinition,
)
from connectors.dsp.policy import Caller, PolicyDecision
from connectors.dsp.store import ConnectorStore
from node.db import make_engine, migrate


def permit(policy, **kw) -> PolicyDecision:
    return PolicyDecision.permit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=100_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--page", type=int, default=50)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    store = ConnectorStore(engine)
    t0 = time.perf_counter()
    batch = 5_000
    for start in range(0, args.assets, batch):
        with store.transaction() as tx:
            tx.insert_assets(
                [
                    Asset(
                        id=f"urn:asset:{i:07d}",
                        properties={"dct:title": f"lot {i}", "kind": "qa" if i % 3 else "forecast"},
                        data_address={"type": "File", "path": f"/d/{i}"},
                        classification=Classification.GENERAL,
                    )
                    for i in range(start, min(start + batch, args.assets))
                ]
            )
    with store.transaction() as tx:
        tx.create_policy(
            PolicyDefinition("open", {"@type": "Set", "permission": [{"action": "use"}]})
        )
        tx.create_policy(
            PolicyDefinition(
                "terms",
                {
                    "@type": "Set",
                    "permission": [
                        {
                            "action": "use",
                            "constraint": [
                                {
                                    "leftOperand": "purpose",
                                    "operator": "eq",
                                    "rightOperand": "quality",
                                }
                            ],
                        }
                    ],
                },
            )
        )
        tx.create_contract_definition(ContractDefinition("all", "open", "terms", ()))
        tx.create_contract_definition(
            ContractDefinition("qa", "open", "terms", (Criterion("kind", Operator.EQ, "qa"),))
        )
    load = time.perf_counter() - t0
    svc = CatalogService(participant_id="did:web:p", protocol_url="https://p/dsp", checker=permit)
    caller = Caller("did:web:c")

    def timed(fn) -> list[float]:
        out = []
        for _ in range(args.runs):
            s = time.perf_counter()
            fn()
            out.append((time.perf_counter() - s) * 1000)
        return out

    def first() -> None:
        with store.transaction() as tx:
            svc.request(tx, caller, limit=args.page).catalog.to_json()

    def deep() -> None:  # the last page, reached by its continuation token (keyset)
        token = page_token("a", f"urn:asset:{args.assets - args.page - 1:07d}")
        with store.transaction() as tx:
            page = svc.request(tx, caller, token=token, limit=args.page)
            assert len(page.catalog.datasets) == args.page and page.next_token is None
            page.catalog.to_json()

    def counted() -> None:
        with store.transaction() as tx:
            assert svc.request(tx, caller, limit=args.page, count=True).total == args.assets

    def one() -> None:
        with store.transaction() as tx:
            svc.dataset(tx, caller, f"urn:asset:{args.assets // 2:07d}").to_json()

    def big() -> None:
        with store.transaction() as tx:
            svc.request(tx, caller, limit=1000).catalog.to_json()

    print(f"backend={engine.url.get_backend_name()} assets={args.assets} load={load:.1f}s")
    for name, fn in (
        ("first page", first),
        ("last page", deep),
        ("page of 1000", big),
        ("with count", counted),
        ("dataset", one),
    ):
        ms = timed(fn)
        print(f"{name:>13}: p50 {statistics.median(ms):7.1f} ms   max {max(ms):7.1f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
