"""Benchmark: our SecAgg+ against Flower's SecAgg+ (flwr 1.41.0), same n, d, dropout, graph.

Run from the repository root::

    .venv/bin/python bench/secagg.py            # full run (n = 10, 50, 100 and 500)
    .venv/bin/python bench/secagg.py --quick    # small sizes while developing

Flower is never a dependency of autospace: the script creates a separate virtual environment
(``.bench-venv-flwr``, git-ignored) with ``flwr==1.41.0`` on first use and runs this same file in
it as a subprocess (``--worker flower``), which imports only numpy and flwr.

What is measured on Flower's side: its real ``SecAggPlusWorkflow`` (all four stages, its own
unmasking code) driven by an in-process Grid that hands every message to Flower's real client
``secaggplus_mod``; no network, no simulation engine. Client time is the time spent inside
``secaggplus_mod`` per stage, minus the stand-in ``fit`` (which just returns the vector);
coordinator unmasking time is the part of ``unmask_stage`` after the last replies arrive, minus
``strategy.aggregate_fit``. Ours: ``SecAggClient.handle`` per stage (masked-input stage includes
fixed-point quantisation, as Flower's does) and ``SecAggCoordinator.advance()`` of the unmask
stage. Ours has one stage Flower lacks, the consistency check of Bonawitz et al. (participants
sign the survivor set), shown in its own column and counted in the client total. Both sides
use the same neighbourhood size and threshold (ours chosen by
``federated.graph.choose_parameters(n, 0.3)``), 32-bit ring, clients that drop out do so after
sharing keys (the costly case: their pairwise masks must be rebuilt). Bytes per client count
key, signature, ciphertext, share and vector bytes sent and received by a client.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FLOWER_VENV = ROOT / ".bench-venv-flwr"
FLOWER_REQUIREMENT = "flwr==1.41.0"
STAGES = ("advertise", "share", "masked", "check", "unmask")


# --------------------------------------------------------------------------- Flower worker
def flower_worker(n: int, d: int, dropout: float, num_shares: int, threshold: int,
                  seed: int) -> dict:
    """Run Flower's SecAggPlusWorkflow in process; returns timings and sizes (JSON-able)."""
    import logging

    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.client.mod.secure_aggregation.secaggplus_mod import secaggplus_mod
    from flwr.common import FitRes, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.common.logger import FLOWER_LOGGER
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
    from flwr.common.secure_aggregation.secaggplus_constants import Stage as FStage
    from flwr.common.typing import Code, Status
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server.client_manager import SimpleClientManager
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
    from flwr.server.workflow.constant import Key as WKey
    from flwr.server.workflow.secure_aggregation.secaggplus_workflow import SecAggPlusWorkflow

    FLOWER_LOGGER.setLevel(logging.ERROR)
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    rng = np.random.default_rng(seed)
    node_ids = list(range(1, n + 1))
    dropped = set(node_ids[: round(n * dropout)])
    vectors = {nid: rng.uniform(-1, 1, d).astype(np.float32) for nid in node_ids}
    contexts = {nid: Context(run_id=1, node_id=nid, node_config={}, state=RecordDict(),
                             run_config={}) for nid in node_ids}
    stage_names = {FStage.SETUP: "advertise", FStage.SHARE_KEYS: "share",
                   FStage.COLLECT_MASKED_VECTORS: "masked", FStage.UNMASK: "unmask"}
    client_time = {s: [] for s in STAGES}
    client_bytes = {nid: 0 for nid in node_ids}
    marks: dict[str, float] = {}
    fit_time = [0.0]

    def payload(record: ConfigRecord) -> int:
        total = 0
        for value in record.values():
            items = value if isinstance(value, list) else [value]
            total += sum(len(v) for v in items if isinstance(v, bytes))
        return total

    def fit(msg: Message, ctxt: Context) -> Message:
        start = time.perf_counter()
        nid = ctxt.node_id
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([vectors[nid]]), 10, {})
        out = Message(compat.fitres_to_recorddict(res, False), reply_to=msg)
        fit_time[0] += time.perf_counter() - start
        return out

    class InProcessGrid:
        """Hands each message to Flower's client mod; dropped nodes stop answering."""

        run = None

        def send_and_receive(self, messages, *, timeout=None):
            replies = []
            for shared in messages:
                # Messages leave the server serialised; in process, a deep copy stands in
                # (Flower's workflow reuses one content object for every node).
                msg = copy.deepcopy(shared)
                nid = msg.metadata.dst_node_id
                configs = msg.content.config_records[RECORD_KEY_CONFIGS]
                stage = stage_names[configs[Key.STAGE]]
                if stage in ("masked", "unmask") and nid in dropped:
                    continue
                if stage == "unmask":
                    marks.setdefault("unmask_sent", time.perf_counter())
                client_bytes[nid] += payload(configs)
                fit_time[0] = 0.0
                start = time.perf_counter()
                reply = secaggplus_mod(msg, contexts[nid], fit)
                client_time[stage].append(time.perf_counter() - start - fit_time[0])
                client_bytes[nid] += payload(reply.content.config_records[RECORD_KEY_CONFIGS])
                replies.append(reply)
            marks["last_reply"] = time.perf_counter()
            return replies

    grid = InProcessGrid()
    manager = SimpleClientManager()
    for nid in node_ids:
        manager.register(GridClientProxy(nid, grid, 1))
    strategy = FedAvg(fraction_fit=1.0, min_fit_clients=2, min_available_clients=n)
    aggregate_time = [0.0]
    original = strategy.aggregate_fit

    def timed_aggregate(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        aggregate_time[0] += time.perf_counter() - start
        return out

    strategy.aggregate_fit = timed_aggregate
    base = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    context = LegacyContext(base, strategy=strategy, client_manager=manager)
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({WKey.CURRENT_ROUND: 1})
    from flwr.compat.common.recorddict_compat import parameters_to_arrayrecord
    context.state.array_records[MAIN_PARAMS_RECORD] = parameters_to_arrayrecord(
        ndarrays_to_parameters([np.zeros(d, np.float32)]), True)
    workflow = SecAggPlusWorkflow(num_shares=num_shares, reconstruction_threshold=threshold)
    timings = {}
    state_cls = __import__("flwr.server.workflow.secure_aggregation.secaggplus_workflow",
                           fromlist=["WorkflowState"]).WorkflowState
    state = state_cls()
    ok = True
    for name, step in (("advertise", workflow.setup_stage), ("share", workflow.share_keys_stage),
                       ("masked", workflow.collect_masked_vectors_stage),
                       ("unmask", workflow.unmask_stage)):
        start = time.perf_counter()
        ok = step(grid, context, state)
        end = time.perf_counter()
        timings[name] = end - start
        if not ok:
            break
    unmask = end - marks["last_reply"] - aggregate_time[0] if ok else float("nan")
    # Check Flower's result against the plain weighted mean of the survivors' vectors.
    survivors = [nid for nid in node_ids if nid not in dropped]
    expected = np.mean([vectors[nid] for nid in survivors], axis=0)
    params = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD],
                                              keep_input=True)
    got = parameters_to_ndarrays(params)[0]
    return {
        "ok": bool(ok),
        "max_error": float(np.max(np.abs(got - expected))) if ok else None,
        "client": {s: statistics.mean(v) if v else None for s, v in client_time.items()},
        "unmask": unmask,
        "bytes": statistics.mean(client_bytes[nid] for nid in survivors),
    }


# --------------------------------------------------------------------------- ours
def ours(n: int, d: int, dropout: float, seed: int, clients_timed: int | None = None) -> dict:
    """Run our SecAgg+ for n clients; client stages timed on every client."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federated.graph import choose_parameters
    from federated.masking import Quantiser
    from federated.secagg_client import SecAggClient
    from federated.secagg_server import SecAggCoordinator, ServerState
    from federated.vocabulary import SecAggConfig, payload_bytes

    rng = np.random.default_rng(seed)
    ids = [f"node-{i:04d}" for i in range(n)]
    keys = {pid: Ed25519PrivateKey.generate() for pid in ids}
    pubs = {pid: k.public_key().public_bytes_raw() for pid, k in keys.items()}
    dropped = set(ids[: round(n * dropout)])
    params = choose_parameters(n, 0.3)
    cfg = SecAggConfig(tuple(ids), d, 32, params.degree, params.threshold, os.urandom(32))
    quantiser = Quantiser(clip=8.0, scale=2.0**22 / 16 / n, bits=32)
    vectors = {pid: rng.uniform(-1, 1, d) for pid in ids}
    clients = {pid: SecAggClient(pid, "coordinator", "bench", 1, keys[pid].sign, pubs)
               for pid in ids}
    server = SecAggCoordinator("coordinator", "bench", 1, cfg, pubs)
    client_time = {s: [] for s in STAGES}
    sizes = {pid: 0 for pid in ids}
    server_time = {}
    requests = server.start()
    for stage in STAGES:
        for pid, req in requests.items():
            if stage != "advertise" and stage != "share" and pid in dropped:
                continue
            start = time.perf_counter()
            if stage == "masked":
                clients[pid].set_input(quantiser.encode(vectors[pid]))
            reply = clients[pid].handle(req)
            client_time[stage].append(time.perf_counter() - start)
            sizes[pid] += payload_bytes(req) + payload_bytes(reply)
            start = time.perf_counter()
            server.receive(reply)
            server_time[stage] = server_time.get(stage, 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        requests = server.advance()
        server_time[stage] = server_time.get(stage, 0.0) + time.perf_counter() - start
        unmask = time.perf_counter() - start
    assert server.state is ServerState.DONE, server.abort_reason
    survivors = [pid for pid in ids if pid not in dropped]
    expected = sum(quantiser.encode(vectors[pid]).astype(np.uint64) for pid in survivors)
    exact = bool(np.array_equal(server.result, (expected % 2**32).astype(np.uint32)))
    return {
        "ok": exact,
        "degree": params.degree,
        "threshold": params.threshold,
        "client": {s: statistics.mean(v) for s, v in client_time.items()},
        "unmask": unmask,
        "server_total": sum(server_time.values()),
        "bytes": statistics.mean(sizes[pid] for pid in survivors),
    }


def shamir_timing(n: int = 500, max_dropout: float = 0.3) -> dict:
    """Shamir cost at cohort size n: one client's split, the coordinator's reconstructions."""
    from federated import shamir
    from federated.graph import choose_parameters

    params = choose_parameters(n, max_dropout)
    holders = list(range(1, params.degree + 2))
    secret = os.urandom(32)
    start = time.perf_counter()
    shares = shamir.split(secret, holders, params.threshold)
    split = time.perf_counter() - start
    # Reconstruct n secrets, each from a different index set (worst case for the cache).
    sets = [tuple(sorted(np.random.default_rng(i).choice(holders, params.threshold,
                                                         replace=False).tolist()))
            for i in range(n)]
    shamir.lagrange_at_zero.cache_clear()
    start = time.perf_counter()
    for chosen in sets:
        assert shamir.combine({x: shares[x] for x in chosen}, params.threshold) == secret
    combine = time.perf_counter() - start
    return {"holders": len(holders), "threshold": params.threshold, "split": split,
            "combine_all": combine}


# --------------------------------------------------------------------------- driver
def ensure_flower_venv() -> Path:
    """Create the separate benchmark venv with Flower on first use; returns its python."""
    python = FLOWER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import flwr, sys; sys.exit(flwr.__version__ != '1.41.0')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {FLOWER_VENV} with {FLOWER_REQUIREMENT} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", FLOWER_REQUIREMENT], check=True)
    return python


def run_flower(python: Path, n: int, d: int, dropout: float, shares: int, threshold: int,
               seed: int) -> dict:
    out = subprocess.run(
        [str(python), __file__, "--worker", "flower", "--n", str(n), "--d", str(d),
         "--dropout", str(dropout), "--shares", str(shares), "--threshold", str(threshold),
         "--seed", str(seed)],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"ok": False, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_ms(seconds: float | None) -> str:
    return f"{'-':>9}" if seconds is None or seconds != seconds else f"{seconds * 1000:9.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 10, 20; d = 10,000")
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--d", type=int, default=100_000)
    parser.add_argument("--dropouts", default="0,0.1,0.3")
    parser.add_argument("--big", type=int, default=500, help="ours-only cohort (0 = skip)")
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument("--shamir-only", action="store_true",
                        help="only the Shamir timing at the --big cohort size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", choices=["flower"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--shares", type=int)
    parser.add_argument("--threshold", type=int)
    args = parser.parse_args(argv)
    if args.worker == "flower":
        print(json.dumps(flower_worker(args.n, args.d, args.dropout, args.shares,
                                       args.threshold, args.seed)))
        return 0
    sys.path.insert(0, str(ROOT))
    from federated.graph import choose_parameters

    sizes = [int(s) for s in args.sizes.split(",")]
    d, big = args.d, args.big
    if args.quick:
        sizes, d, big = [10, 20], 10_000, 0
    dropouts = [float(x) for x in args.dropouts.split(",")]
    if args.shamir_only:
        sizes, big = [], 0
        print_shamir(args.big)
        return 0
    python = None if args.no_flower else ensure_flower_venv()
    print(f"SecAgg+ benchmark: d = {d:,}, 32-bit ring, dropouts after share-keys; "
          f"{os.cpu_count()} CPU(s); times in ms (client = mean per client per stage)")
    header = (f"{'n':>4} {'drop':>4} {'k+1':>4} {'t':>4} {'impl':>6} | {'advertise':>9} "
              f"{'share':>9} {'masked':>9} {'check':>9} {'unmask':>9} | {'server unmask':>13} | "
              f"{'bytes/client':>12} | ok")
    print(header)
    print("-" * len(header))
    failures = 0
    for n in sizes:
        params = choose_parameters(n, 0.3)
        for dropout in dropouts:
            mine = ours(n, d, dropout, args.seed)
            rows = [("ours", mine)]
            if python is not None:
                rows.append(("flower", run_flower(python, n, d, dropout, params.degree + 1,
                                                  params.threshold, args.seed)))
            for impl, r in rows:
                c = r.get("client", {})
                ok = r.get("ok")
                failures += not ok
                print(f"{n:>4} {dropout:>4.0%} {params.degree + 1:>4} {params.threshold:>4} "
                      f"{impl:>6} | {fmt_ms(c.get('advertise'))} {fmt_ms(c.get('share'))} "
                      f"{fmt_ms(c.get('masked'))} {fmt_ms(c.get('check'))} "
                      f"{fmt_ms(c.get('unmask'))} | "
                      f"{fmt_ms(r.get('unmask')):>13} | {r.get('bytes', 0):>12,.0f} | "
                      f"{'yes' if ok else r.get('error', 'NO')}", flush=True)
            if python is not None and rows[1][1].get("ok"):
                f = rows[1][1]
                speed = f["unmask"] / mine["unmask"]
                slower = [s for s in STAGES if f["client"].get(s) is not None
                          and mine["client"][s] > f["client"][s]]
                ours_total = sum(mine["client"].values())
                flower_total = sum(v for v in f["client"].values() if v is not None)
                print(f"{'':>16} coordinator unmasking {speed:.1f}x faster than Flower; client "
                      f"total {ours_total * 1000:.1f} vs {flower_total * 1000:.1f} ms; stages "
                      f"slower than Flower's: {', '.join(slower) or 'none'}", flush=True)
    if big:
        params = choose_parameters(big, 0.3)
        mine = ours(big, args.d, 0.3, args.seed)
        c = mine["client"]
        print(f"\nn = {big}, d = {args.d:,}, 30 % dropout (ours only; neighbourhood "
              f"{params.degree + 1}, threshold {params.threshold}):")
        print(f"  coordinator unmasking {mine['unmask']:.2f} s, all coordinator stages "
              f"{mine['server_total']:.2f} s (target < 15 s; Bonawitz et al. report ~143 s)")
        print(f"  client per stage (ms): advertise {fmt_ms(c['advertise']).strip()}, share "
              f"{fmt_ms(c['share']).strip()}, masked {fmt_ms(c['masked']).strip()}, check "
              f"{fmt_ms(c['check']).strip()}, unmask {fmt_ms(c['unmask']).strip()}; "
              f"bytes/client {mine['bytes']:,.0f}; exact sum: "
              f"{'yes' if mine['ok'] else 'NO'}")
        failures += not mine["ok"]
        print_shamir(big)
    return 1 if failures else 0


def print_shamir(n: int) -> None:
    """Shamir split and reconstruction cost at cohort size ``n`` (30 % dropout parameters)."""
    t = shamir_timing(n)
    print(f"  Shamir over GF(2^256+297), {t['holders']} holders, threshold {t['threshold']}: "
          f"split one secret {t['split'] * 1000:.1f} ms; reconstruct {n} secrets from distinct "
          f"share sets {t['combine_all']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
