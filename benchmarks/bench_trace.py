"""Time tracing (cold, no cache) and cache loads for each built-in model; print a table.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trace.py [--repeat N] [--mode fake|meta]
The cache goes to a temporary directory, so the user's cache is untouched.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    ap.add_argument("--mode", default="fake", choices=["fake", "meta"])
    ap.add_argument("--models", nargs="*", default=None)
    args = ap.parse_args()
    os.environ["EARLYQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="earlyq-bench-")

    t0 = time.perf_counter()
    from earlyq_sim.models.registry import model_names
    from earlyq_sim.simulator.cost.tracer import trace_model
    print(f"import: {time.perf_counter() - t0:.2f} s")

    trace_model("ddpm-cifar10", cache=False, mode=args.mode)  # warm up torch/diffusers code paths
    print(f"{'model':<14} {'mode':<5} {'ops':>5} {'GMACs':>8} {'params':>12} {'trace_s':>8} {'store_s':>8} {'load_s':>8}")
    for name in args.models or model_names():
        cold = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            tr = trace_model(name, cache=False, mode=args.mode)
            cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        trace_model(name, cache=True, mode=args.mode)  # miss: trace + write
        store = time.perf_counter() - t
        loads = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            hit = trace_model(name, cache=True, mode=args.mode)
            loads.append(time.perf_counter() - t)
        assert hit == tr
        print(f"{name:<14} {args.mode:<5} {len(tr.ops):>5} {tr.macs() / 1e9:>8.2f} {tr.params:>12,} "
              f"{min(cold):>8.2f} {store:>8.2f} {min(loads):>8.3f}")


if __name__ == "__main__":
    main()
