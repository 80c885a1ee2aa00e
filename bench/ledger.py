"""Ledger benchmark: appends, proofs, verification, bundle size, gas per anchor.

Usage (from the repository root)::

    .venv/bin/python bench/ledger.py                    # 1M leaves, SQLite + PostgreSQL, anvil
    .venv/bin/python bench/ledger.py --leaves 100000    # quicker
    .venv/bin/python bench/ledger.py --pg none --no-anvil --json out.json

Targets (issue 4): >= 50,000 batched appends/s on SQLite, proofs < 1 ms at 1M leaves,
verification < 0.1 ms, bundle < 2 KB. Appends are durable: each batch is committed
(SQLite in WAL mode with synchronous=NORMAL, as the node runs it, and again with FULL,
an fsync per commit, as the node signs checkpoints; PostgreSQL defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from ledger import audit, rfc9162, tables
from ledger.checkpoint import Ed25519Signer
from ledger.evm import Chain
from ledger.log import Log, NewRecord
from node.db import make_engine

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ORIGIN = "bench.autospace.example/ledger"


def record(i: int) -> NewRecord:
    """A typical contract-agreement record (~200 bytes canonical)."""
    return NewRecord(
        "contract-agreement",
        {
            "agreementId": f"urn:uuid:{uuid.UUID(int=i)}",
            "assetId": f"asset-{i % 977}",
            "providerId": "BPNL000000000001",
            "consumerId": f"BPNL{i % 50:012d}",
            "signedAt": "2026-03-01T08:00:00Z",
            "policyHash": "ab" * 32,
        },
        f"agr-{i}",
    )


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


class Bench:
    def __init__(self) -> None:
        self.results: dict[str, Any] = {}

    def put(self, key: str, value: Any, unit: str = "") -> None:
        self.results[key] = value
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
        print(f"  {key:<48} {shown} {unit}", flush=True)


def open_log(engine: Engine) -> Log:
    tables.metadata.create_all(engine)
    with engine.begin() as conn:
        return Log.open(conn, ORIGIN)


def appends(
    b: Bench, engine: Engine, label: str, single: int, batch: int, batches: int, start: int
) -> int:
    log = open_log(engine)

    def one_by_one() -> None:
        for i in range(start, start + single):
            with engine.begin() as conn:
                log.append_many(conn, [record(i)])

    wall, cpu, _ = timed(one_by_one)
    b.put(f"{label}: single appends/s (1 commit each)", round(single / wall), "/s")
    start += single
    rates, cpu_rates = [], []
    for _ in range(batches):
        recs = [record(i) for i in range(start, start + batch)]
        start += batch

        def go(recs=recs) -> None:
            with engine.begin() as conn:
                log.append_many(conn, recs)

        wall, cpu, _ = timed(go)
        rates.append(batch / wall)
        cpu_rates.append(batch / cpu)
    b.put(
        f"{label}: batched appends/s ({batch}/commit, median)",
        round(statistics.median(rates)),
        "/s",
    )
    b.put(f"{label}: batched appends/s, best of {batches}", round(max(rates)), "/s")
    b.put(f"{label}: batched appends per CPU-second", round(statistics.median(cpu_rates)), "/s")
    return start


def build(b: Bench, engine: Engine, leaves: int) -> Log:
    """Bulk load: the same batched append path, 50,000 records per transaction."""
    log = open_log(engine)
    chunk = 50_000

    def load() -> None:
        with engine.connect() as conn:
            have = log.size(conn)
        for lo in range(have, leaves, chunk):
            with engine.begin() as conn:
                log.append_many(conn, [record(i) for i in range(lo, min(leaves, lo + chunk))])

    wall, _, _ = timed(load)
    b.put(f"build {leaves:,} leaves (bulk load)", wall, "s")
    return log


def proofs(b: Bench, engine: Engine, log: Log, signer: Ed25519Signer, n: int) -> None:
    rng = random.Random(1)
    with engine.connect() as conn:
        size = log.size(conn)
        root = log.root(conn, size)
        idx = [rng.randrange(size) for _ in range(n)]
        olds = [rng.randrange(1, size) for _ in range(n)]
        log.inclusion_proof(conn, 0, size)  # warm the connection and statement cache
        wall, _, incl = timed(lambda: [log.inclusion_proof(conn, i, size) for i in idx])
        b.put(f"inclusion proof at {size:,} leaves (incl. SQL)", wall / n * 1e3, "ms")
        wall, _, cons = timed(lambda: [log.consistency_proof(conn, m, size) for m in olds])
        b.put(f"consistency proof to {size:,} leaves (incl. SQL)", wall / n * 1e3, "ms")
        leaves = {i: log.entry(conn, i).leaf_hash() for i in idx[:200]}
        olds_roots = {m: log.root(conn, m) for m in olds[:200]}
    reps = 20_000
    i0, p0, l0 = idx[0], incl[0], leaves[idx[0]]
    wall, _, _ = timed(
        lambda: [rfc9162.verify_inclusion(i0, size, l0, p0, root) for _ in range(reps)]
    )
    b.put("verify inclusion (pure function)", wall / reps * 1e3, "ms")
    m0, c0 = olds[0], cons[0]
    r0 = olds_roots[m0]
    wall, _, _ = timed(
        lambda: [rfc9162.verify_consistency(m0, size, r0, root, c0) for _ in range(reps)]
    )
    b.put("verify consistency (pure function)", wall / reps * 1e3, "ms")
    with engine.begin() as conn:
        bundle = audit.build_bundle(conn, log, f"agr-{idx[0]}", signer)
    text_ = audit.dumps_bundle(bundle)
    b.put(f"bundle size at {size:,} leaves (compact JSON)", len(text_.encode()), "bytes")
    parsed = audit.load_bundle(text_)
    from ledger.checkpoint import verifier_key

    key = verifier_key(ORIGIN, signer.public_key_bytes())
    reps = 2000
    wall, _, _ = timed(lambda: [audit.verify_bundle(parsed, trusted_key=key) for _ in range(reps)])
    b.put("verify whole bundle offline (sig + leaf + inclusion)", wall / reps * 1e3, "ms")


def gas(b: Bench, label: str, chain: Chain, fund: Callable[[str], None]) -> None:
    from eth_account import Account

    from ledger.anchor import Anchorer, AnchorPolicy

    key = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
    fund(Account.from_key(key).address)
    contract = chain.deploy(Account.from_key(key))
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/gas.sqlite")
        log = open_log(engine)
        signer = Ed25519Signer()
        anchorer = Anchorer(
            engine,
            log,
            chain,
            contract=contract,
            account_key=key,
            signer=signer,
            policy=AnchorPolicy(max_records=1, confirmations=1),
            chain_id=chain.chain_id(),
        )
        n = 0
        for batch in (1, 10, 100, 1000, 10_000):
            with engine.begin() as conn:
                log.append_many(conn, [record(i) for i in range(n, n + batch)])
            n += batch
            for _ in range(6):
                if anchorer.step().confirmed:
                    break
                if label == "anvil":
                    chain.w3.provider.make_request("anvil_mine", ["0x1"])
                else:
                    chain.w3.provider.ethereum_tester.mine_blocks(1)
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT gas_used FROM ledger_anchors ORDER BY id DESC LIMIT 1")
                ).one()
            b.put(f"{label}: gas per anchor, batch of {batch:>6,} records", int(row[0]), "gas")
        engine.dispose()


def pg_engine(url: str) -> tuple[Engine, Engine, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    return make_engine(f"{url}{sep}options=-csearch_path%3D{schema}"), admin, schema


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument(
        "--pg",
        default=os.environ.get("AUTOSPACE_BENCH_PG", DEFAULT_PG),
        help="PostgreSQL URL, or 'none'",
    )
    ap.add_argument("--no-anvil", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    b = Bench()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        flush=True,
    )
    signer = Ed25519Signer.from_seed(bytes(32))
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite (file, WAL):")
        eng = make_engine(f"sqlite:///{tmp}/appends.sqlite")
        appends(b, eng, "sqlite", single=2000, batch=10_000, batches=5, start=0)
        eng.dispose()
        eng = make_engine(f"sqlite:///{tmp}/appends-full.sqlite")
        event.listen(eng, "connect", lambda c, _r: c.execute("PRAGMA synchronous=FULL"))
        appends(b, eng, "sqlite FULL", single=2000, batch=10_000, batches=5, start=0)
        eng.dispose()
        eng = make_engine(f"sqlite:///{tmp}/big.sqlite")
        log = build(b, eng, args.leaves)
        # Serve proofs as a running node would: WAL checkpointed, a fresh connection pool.
        with eng.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        eng.dispose()
        eng = make_engine(f"sqlite:///{tmp}/big.sqlite")
        proofs(b, eng, log, signer, n=2000)
        b.put("database file size", round(os.path.getsize(f"{tmp}/big.sqlite") / 2**20, 1), "MiB")
        eng.dispose()
    if args.pg != "none":
        print("PostgreSQL:")
        try:
            eng, admin, schema = pg_engine(args.pg)
        except Exception as exc:  # a benchmark without PostgreSQL still reports the rest
            print(f"  skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        else:
            try:
                appends(b, eng, "postgresql", single=1000, batch=10_000, batches=3, start=0)
            finally:
                eng.dispose()
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    print("Gas per anchor vs batch size:")
    emb = Chain.embedded()

    def fund_embedded(address: str) -> None:
        w3 = emb.w3
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": 10**20})
        )

    gas(b, "embedded", emb, fund_embedded)
    if not args.no_anvil:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support.anvil import MISSING, anvil_path, running_anvil

        if anvil_path() is None:
            print(f"  anvil skipped: {MISSING}")
        else:
            with running_anvil() as node:
                gas(b, "anvil", Chain.rpc(node.url), node.fund)
    if args.json:
        args.json.write_text(json.dumps(b.results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
