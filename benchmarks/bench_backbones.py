"""Trace time, peak memory, cache load and ms per design point for the modern backbones (issue 16).

Each model runs in a fresh child process, so its peak resident memory (``ru_maxrss``) is its own:
imports, then one cold fake-tensor trace, then a cache write and loads, then the cost model on
every shipped arch. Prints one markdown row per model.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_backbones.py [--models ...] [--repeat N]
The cache goes to a temporary directory, so the user's cache is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("dit-xl-2-256", "dit-xl-2-512", "pixart-alpha-512", "pixart-alpha-1024", "sd3-medium", "sdxl",
          "flux1-schnell")


def child(name: str, repeat: int) -> dict:
    """Measure one model in this process; returns the figures (seconds, GiB, ms)."""
    import resource
    import statistics
    import time

    import torch

    torch.set_num_threads(1)
    from earlyq_sim.api import cost_run
    from earlyq_sim.schedule import StepBits
    from earlyq_sim.simulator.cost.arch import list_archs, load_arch
    from earlyq_sim.simulator.cost.cost_model import evaluate
    from earlyq_sim.simulator.cost.fusion import costing_ops
    from earlyq_sim.simulator.cost.tracer import trace_model

    gib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # noqa: E731  (KiB -> GiB)
    trace_model("ddpm-cifar10", cache=False)  # warm up torch/diffusers code paths
    rss0 = gib()
    t = time.perf_counter()
    tr = trace_model(name, cache=False)
    cold = time.perf_counter() - t
    rss1 = gib()
    t = time.perf_counter()
    trace_model(name)  # miss: trace + write
    store = time.perf_counter() - t
    loads = []
    for _ in range(repeat):
        t = time.perf_counter()
        hit = trace_model(name)
        loads.append(time.perf_counter() - t)
    assert hit == tr
    ops = costing_ops(tr)
    point_ms = {}
    for arch_name in list_archs():
        arch = load_arch(arch_name)
        evaluate(arch, ops, StepBits(8, 4, 4))  # warm up
        ts = []
        for bits in (StepBits(8, 4, 4), StepBits(8, 8, 8)) * repeat:
            t = time.perf_counter()
            evaluate(arch, ops, bits)
            ts.append((time.perf_counter() - t) * 1e3)
        point_ms[arch_name] = statistics.median(ts)
    t = time.perf_counter()
    cost_run(name, "stripes", "a4@0-0.4,a8@0.4-1")
    run_s = time.perf_counter() - t
    gemm = tr.ops["unit"] == "gemm"
    return {"model": name, "ops": len(tr.ops), "gemms": int(gemm.sum()),
            "distinct": int(tr.ops.loc[gemm, ["G", "M", "N", "K"]].drop_duplicates().shape[0]),
            "params": tr.params, "gmacs": tr.macs() / 1e9, "trace_s": cold, "store_s": store,
            "load_s": min(loads), "rss_before_gib": rss0, "rss_peak_gib": rss1, "point_ms": point_ms,
            "cost_run_s": run_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--repeat", type=int, default=3, help="cache loads and design points per arch and bits")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeat)))
        return
    os.environ["EARLYQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="earlyq-bench-")
    print("| model | ops (GEMMs, distinct shapes) | GMACs | trace s | trace + cache write s | cache load s "
          "| peak RSS GiB (after imports) | ms per design point (median over archs, range) | cost_run s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        out = subprocess.run([sys.executable, __file__, "--child", name, "--repeat", str(args.repeat)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        ms = sorted(r["point_ms"].values())
        print(f"| {name} | {r['ops']:,} ({r['gemms']:,}, {r['distinct']}) | {r['gmacs']:,.1f} | {r['trace_s']:.1f} "
              f"| {r['store_s']:.1f} | {r['load_s']:.3f} | {r['rss_peak_gib']:.2f} ({r['rss_before_gib']:.2f}) "
              f"| {ms[len(ms) // 2]:.0f} ({ms[0]:.0f}-{ms[-1]:.0f}) | {r['cost_run_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
