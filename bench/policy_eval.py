"""Policy engine benchmark: parse + compile time, evaluations per second, latency p99.

Usage (from the repository root)::

    .venv/bin/python bench/policy_eval.py                 # 200k evaluations
    .venv/bin/python bench/policy_eval.py --evals 50000 --json out.json

The policy is a typical Catena-X 2025-9 usage policy (FrameworkAgreement, UsagePurpose,
DataUsageEndDurationDays, ContractReference in an ``and``; a UsageRestriction prohibition;
a DataProvisioningEndDurationDays obligation). Parse = offline JSON-LD expansion + model;
compile = closures for the catenax profile in the ``usage`` scope (done once, cached).
Evaluations use varied requests (permit and deny, different purposes, partners, times),
already parsed as the data plane holds them, on one core (one thread).
Targets (issue 3): >= 20,000 evaluations/s, p99 < 200 us.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies import compile_policy, decide, parse_policy  # noqa: E402
from policies.jsonld import CX_ODRL_CONTEXT_URL, CX_POLICY_CONTEXT_URL  # noqa: E402
from policies.request import parse_request, parse_state  # noqa: E402

POLICY = {
    "@context": [CX_ODRL_CONTEXT_URL, CX_POLICY_CONTEXT_URL],
    "@type": "Offer",
    "@id": "urn:uuid:offer-bench",
    "assigner": "BPNL00000000PROV",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "and": [
                        {
                            "leftOperand": "FrameworkAgreement",
                            "operator": "eq",
                            "rightOperand": "DataExchangeGovernance:1.0",
                        },
                        {
                            "leftOperand": "UsagePurpose",
                            "operator": "isAnyOf",
                            "rightOperand": ["cx.pcf.base:1", "cx.quality.base:1"],
                        },
                        {
                            "leftOperand": "DataUsageEndDurationDays",
                            "operator": "eq",
                            "rightOperand": "365",
                        },
                        {
                            "leftOperand": "ContractReference",
                            "operator": "isAllOf",
                            "rightOperand": ["x12345"],
                        },
                    ]
                }
            ],
        }
    ],
    "prohibition": [
        {
            "action": "use",
            "constraint": [
                {
                    "and": [
                        {
                            "leftOperand": "UsageRestriction",
                            "operator": "isAllOf",
                            "rightOperand": ["cx.thirdParty.forbidden:1"],
                        },
                    ]
                }
            ],
        }
    ],
    "obligation": [
        {
            "action": "use",
            "constraint": [
                {
                    "leftOperand": "DataProvisioningEndDurationDays",
                    "operator": "eq",
                    "rightOperand": "730",
                },
            ],
        }
    ],
}


def requests(n: int, rng: random.Random) -> list[tuple]:
    """Varied (request, state) pairs, parsed once like a data plane's cached session."""
    purposes = ["cx.pcf.base:1", "cx.quality.base:1", "cx.dcm.base:1"]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        bpn = f"BPNL{i % 97:012d}"
        req = parse_request(
            {
                "assignee": bpn,
                "action": rng.choice(["use", "read", "use"]),
                "target": f"urn:asset:{i % 13}",
                "claims": {
                    "participantId": bpn,
                    "membership": True,
                    "frameworkAgreements": ["DataExchangeGovernance:1.0"]
                    if rng.random() < 0.9
                    else [],
                },
                "context": {
                    "UsagePurpose": [rng.choice(purposes)],
                    "ContractReference": ["x12345"],
                    "UsageRestriction": []
                    if rng.random() < 0.95
                    else ["cx.thirdParty.forbidden:1"],
                },
            }
        )
        state = parse_state(
            {
                "now": (start + timedelta(days=rng.randint(0, 500))).isoformat(),
                "agreementStart": start.isoformat(),
            }
        )
        out.append((req, state))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evals", type=int, default=200_000)
    ap.add_argument("--parses", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = random.Random(7)

    parse_times, compile_times = [], []
    for _ in range(args.parses):
        t0 = time.perf_counter()
        policy = parse_policy(POLICY)
        t1 = time.perf_counter()
        compiled = compile_policy(policy, "catenax", "usage")
        t2 = time.perf_counter()
        parse_times.append(t1 - t0)
        compile_times.append(t2 - t1)

    pool = requests(4096, rng)
    for req, state in pool[:2000]:  # warm-up
        decide(compiled, req, state)
    gc.collect()
    gc.freeze()  # the long-lived policy and request pool are not garbage; do not rescan them
    # Throughput: back-to-back decisions, as a data plane makes them.
    permits = 0
    begin = time.perf_counter()
    for i in range(args.evals):
        req, state = pool[i & 4095]
        permits += decide(compiled, req, state).permitted
    elapsed = time.perf_counter() - begin
    # Latency: each decision timed on its own.
    lat = []
    clock = time.perf_counter_ns
    for i in range(args.evals):
        req, state = pool[i & 4095]
        t0 = clock()
        decide(compiled, req, state)
        lat.append(clock() - t0)
    lat.sort()
    result = {
        "parse_ms_median": statistics.median(parse_times) * 1e3,
        "compile_ms_median": statistics.median(compile_times) * 1e3,
        "evaluations": args.evals,
        "evals_per_s": args.evals / elapsed,
        "p50_us": lat[len(lat) // 2] / 1e3,
        "p99_us": lat[int(len(lat) * 0.99)] / 1e3,
        "max_us": lat[-1] / 1e3,
        "permit_ratio": permits / args.evals,
    }
    print(f"parse (JSON-LD expansion + model): median {result['parse_ms_median']:.2f} ms")
    print(f"compile (catenax, usage scope):    median {result['compile_ms_median']:.3f} ms")
    print(
        f"evaluations: {args.evals} in {elapsed:.2f} s = {result['evals_per_s']:,.0f}/s on one core"
    )
    print(
        f"latency: p50 {result['p50_us']:.1f} us, p99 {result['p99_us']:.1f} us, "
        f"max {result['max_us']:.0f} us; permitted {result['permit_ratio']:.0%}"
    )
    ok = result["evals_per_s"] >= 20_000 and result["p99_us"] < 200
    print(f"targets (>= 20,000/s, p99 < 200 us): {'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
