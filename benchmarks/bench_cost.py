"""Time ``evaluate`` (one design point = one arch x one StepBits over a whole op table).

Uses the real SD v1.5 trace when ``earlyq_sim.simulator.cost.tracer.trace_model`` is available,
plus a synthetic table of SD-v1.5 size (2000 ops, 2/5 of them GEMMs) for comparison.
Prints the median over repeats of milliseconds per design point, per arch.
Run: ``.venv/bin/python benchmarks/bench_cost.py``
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from earlyq_sim.simulator.cost.arch import list_archs, load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.schedule import StepBits

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPEATS = 50
BITS = (StepBits(8, 8, 8), StepBits(4, 4, 4), StepBits(4, 6, 16))


def synthetic_table(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = empty_row()
        r["name"] = f"op{i}"
        if i % 5 < 2:
            kind = ("wa", "wa", "wa", "aa", "pa")[i % 5 + 2 * (i % 3 == 0)]
            G = 8 if kind != "wa" else 1
            M, N, K = (int(rng.choice(v)) for v in ((64, 256, 1024, 4096), (40, 77, 320, 1280, 4096),
                                                     (40, 320, 2880, 11520)))
            r.update(op="linear", unit="gemm", operand_kind=kind, G=G, M=M, N=N, K=K, macs=G * M * N * K,
                     in_elems=G * M * K, w_elems=G * K * N, out_elems=G * M * N)
        else:
            e = int(rng.integers(1_000, 2_000_000))
            r.update(op="elementwise", unit="vector", elems=e, passes=int(rng.integers(1, 4)), in_elems=e, out_elems=e)
        rows.append(r)
    return make_table(rows)


def time_point(arch, ops, bits) -> float:
    evaluate(arch, ops, bits)  # warm up
    ts = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        evaluate(arch, ops, bits)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def main() -> None:
    tables = {"synthetic-2000": synthetic_table()}
    try:
        from earlyq_sim.simulator.cost.tracer import trace_model
        tables["sd-v1.5 trace"] = trace_model("sd-v1.5").ops
    except Exception as exc:  # the tracer is optional here; report why it was skipped
        print(f"(sd-v1.5 trace skipped: {type(exc).__name__}: {exc})")
    for label, ops in tables.items():
        print(f"\n{label}: {len(ops)} ops ({int((ops['unit'] == 'gemm').sum())} GEMM)")
        print(f"{'arch':<15}" + "".join(f"{b.label:>12}" for b in BITS) + "   (ms per design point, median)")
        for name in list_archs():
            arch = load_arch(name)
            print(f"{name:<15}" + "".join(f"{time_point(arch, ops, b):12.2f}" for b in BITS))


if __name__ == "__main__":
    main()
