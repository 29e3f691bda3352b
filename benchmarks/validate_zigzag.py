"""Validate the cost lane (latency, energy) against ZigZag (zigzag-dse 3.9) on the same hardware.

Usage (from the repo root, main venv; zigzag-dse and six come with the test extra):

    .venv/bin/python benchmarks/validate_zigzag.py [--quick] [--no-run] [--write docs/validation_zigzag.md]

1. Layers: every GEMM layer shape of ``ddpm-cifar10`` (deduplicated, weighted by occurrences)
   and 30 of the distinct GEMM shapes of ``sd-v1.5`` (evenly spread over the MAC ranking),
   batch 1, W8A8 with 8-bit attention probabilities.
2. Design points: ``int8-systolic`` with ifmap = filter = ofmap in {64 KiB, 2 MiB} and DRAM in
   {8, 32} bytes/cycle; every energy constant as shipped.
3. ZigZag: ``export_zigzag`` writes the workload, mapping and hardware of each point; each layer
   runs alone through ``zigzag.api.get_hardware_performance_zigzag`` (LOMA, ``opt=latency``,
   the same objective as our mapper's default). Results go to ``--cache`` (JSON lines, keyed by
   a hash of the layer, mapping entry and hardware), so the report is rebuilt without ZigZag
   (``--no-run``); a case missing from the cache is run unless ``--no-run``.
4. Ours: ``cost_model.evaluate`` on the same op rows (the mapper's search, ``overlap: tiles``),
   with ``array.fold_overlap: wavefront`` (what the exported hardware means to ZigZag) and, for
   comparison, ``none`` (the shipped default, SCALE-Sim's per-fold fill/drain).

The report (``validate_zigzag_report.py``) compares per-layer latency and the energy split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # sibling module validate_zigzag_report
CACHE = HERE / "data" / "zigzag" / "zigzag_3.9.1_results.jsonl"
BUFFERS_KIB = (64, 2048)
DRAM_BPC = (8, 32)
SD_LAYERS = 30
LAYER_TIMEOUT_S = 600


def design_points(quick: bool = False):
    """(label, ArchSpec) per buffer size x DRAM bandwidth, from the shipped int8-systolic with
    ``array.fold_overlap: wavefront``: the exported hardware's single per-PE weight register makes
    ZigZag reload each fold's weights after the previous fold and drain once per layer."""
    from earlyq_sim.simulator.cost.arch import load_arch

    base = load_arch("int8-systolic")
    base = replace(base, array=replace(base.array, fold_overlap="wavefront"))
    out = []
    for kib in BUFFERS_KIB[:1] if quick else BUFFERS_KIB:
        for bw in DRAM_BPC[-1:] if quick else DRAM_BPC:
            b = replace(base.buffers, ifmap_kib=float(kib), filter_kib=float(kib), ofmap_kib=float(kib))
            out.append((f"{kib}KiB/{bw}B", replace(base, buffers=b, dram_bytes_per_cycle=float(bw))))
    return out


def unique_layers(model: str, limit: int | None = None):
    """GEMM rows of ``model`` deduplicated by shape, with a ``count`` column; ``limit`` keeps that
    many shapes evenly spread over the MAC ranking (smallest and largest included)."""
    import numpy as np

    from earlyq_sim.simulator.cost.tracer import trace_model

    ops = trace_model(model).ops
    g = ops[ops["unit"] == "gemm"].copy()
    cols = ["op", "operand_kind", "G", "M", "N", "K", "batch", "C_in", "C_out", "H_in", "W_in", "R", "S",
            "stride", "pad", "groups"]
    g["_key"] = [tuple(r) for r in g[cols].itertuples(index=False)]
    counts = g.groupby("_key", sort=False).size()
    u = g.drop_duplicates("_key").copy()
    u["count"] = [int(counts[k]) for k in u["_key"]]
    if limit is not None and len(u) > limit:
        order = np.argsort(u["macs"].to_numpy(), kind="stable")
        keep = np.unique(np.round(np.linspace(0, len(u) - 1, limit)).astype(int))
        u = u.iloc[np.sort(order[keep])]
    return u.drop(columns="_key").reset_index(drop=True)


def _key(*objs) -> str:
    return hashlib.sha1(json.dumps(objs, sort_keys=True).encode()).hexdigest()[:16]


def build_jobs(models, points, tmp: Path, bits):
    """Export every (model, design point) and cut it into one-layer ZigZag jobs."""
    import yaml

    from earlyq_sim.simulator.cost.exports.zigzag import export_zigzag

    jobs = []
    for model, u in models.items():
        for label, arch in points:
            d = tmp / f"{model}_{label.replace('/', '_')}"
            z = export_zigzag(u, d, arch=arch, stem=model)
            hw = yaml.safe_load(z.hardware.read_text())
            maps = yaml.safe_load(z.mapping.read_text())
            for i, layer in enumerate(yaml.safe_load(z.workloads[0].read_text())):
                one = dict(layer, id=0, operand_source={"W": 0} if "W" in layer["operand_source"]
                           and layer["operand_source"]["W"] == i else {})
                by_name = {m["name"]: m for m in maps}  # ZigZag's priority: layer name, operator, default
                entry = by_name.get(layer["name"]) or by_name.get(one["operator_type"]) or by_name["default"]
                one_map = [dict(entry, name="default")]
                wl, mp = d / f"layer{i}.yaml", d / f"layer{i}_mapping.yaml"
                wl.write_text(yaml.safe_dump([one], sort_keys=False))
                mp.write_text(yaml.safe_dump(one_map, sort_keys=False))
                jobs.append({"key": _key(one, one_map, hw), "model": model, "point": label, "row": i,
                             "name": layer["name"], "workload": str(wl), "mapping": str(mp),
                             "hardware": str(z.hardware)})
    return jobs


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_zigzag(job: dict, dump: Path) -> dict:
    """One layer through ZigZag; latency terms (cycles) and energy per memory level (pJ)."""
    import logging

    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.CRITICAL)
    t0 = time.perf_counter()
    _, _, cmes = get_hardware_performance_zigzag(job["workload"], job["hardware"], job["mapping"], opt="latency",
                                                 dump_folder=str(dump), loma_show_progress_bar=False)
    cme = cmes[0][1][0][0]
    levels: dict[str, float] = {}
    for layer_op, per_level in cme.mem_energy_breakdown.items():
        mem_op = cme.layer.memory_operand_links.layer_to_mem_op(layer_op)
        for lvl, e in zip(cme.accelerator.memory_hierarchy.get_memory_levels(mem_op), per_level):
            levels[f"{lvl.name}:{layer_op}"] = float(e)
    return {"key": job["key"], "latency": float(cme.latency_total2), "ideal": float(cme.ideal_cycle),
            "ideal_temporal": float(cme.ideal_temporal_cycle), "stall": float(cme.stall_slack_comb),
            "onload": float(cme.data_onloading_cycle), "offload": float(cme.data_offloading_cycle),
            "drain": float(cme.systolic_drain_cycle), "mac_pj": float(cme.mac_energy), "levels": levels,
            "energy_pj": float(cme.energy_total), "tm": str(cme.temporal_mapping),
            "wall_s": time.perf_counter() - t0}


def load_cache(path: Path) -> dict:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out[r["key"]] = r
    return out


def run_missing(jobs, cache: dict, path: Path, budget_s: float) -> None:
    """Run the jobs not in the cache, appending each result as it finishes."""
    todo = list({j["key"]: j for j in jobs if j["key"] not in cache}.values())
    # round robin over (model, design point): a budget cut leaves every group partly covered
    groups: dict = {}
    for j in todo:
        groups.setdefault((j["model"], j["point"]), []).append(j)
    todo = [g[i] for i in range(max(map(len, groups.values()), default=0)) for g in groups.values() if i < len(g)]
    print(f"zigzag: {len(todo)} of {len(jobs)} layer runs not cached", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + budget_s
    with tempfile.TemporaryDirectory() as dump:
        for n, job in enumerate(todo):
            if time.monotonic() > deadline:
                print("zigzag: budget spent; the rest stays uncached", flush=True)
                break
            signal.alarm(LAYER_TIMEOUT_S)
            try:
                res = run_zigzag(job, Path(dump) / str(n))
            except _Timeout:
                res = {"key": job["key"], "error": f"timeout after {LAYER_TIMEOUT_S} s"}
            except Exception as e:  # ZigZag's own failure is a result to report, not a crash
                res = {"key": job["key"], "error": f"{type(e).__name__}: {e}"[:300]}
            finally:
                signal.alarm(0)
            cache[job["key"]] = res
            with open(path, "a") as fh:  # one line per finished run: a killed run keeps what it did
                fh.write(json.dumps(res) + "\n")
            print(f"[{n + 1}/{len(todo)}] {job['model']} {job['point']} {job['name']}: "
                  f"{res.get('latency', res.get('error'))} ({res.get('wall_s', 0):.1f} s)", flush=True)


def ours(models, points, bits, fold_overlap: str | None = None):
    """Our evaluate() per (model, point): DataFrame per op row; ``fold_overlap`` overrides the
    points' ``array.fold_overlap``."""
    from earlyq_sim.simulator.cost.cost_model import evaluate

    def arch_of(a):
        return a if fold_overlap is None else replace(a, array=replace(a.array, fold_overlap=fold_overlap))

    return {(m, label): evaluate(arch_of(arch), u, bits) for m, u in models.items() for label, arch in points}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 small DDPM layers at one design point")
    ap.add_argument("--no-run", action="store_true", help="use cached ZigZag results only")
    ap.add_argument("--cache", default=str(CACHE), help="ZigZag results (JSON lines)")
    ap.add_argument("--budget-s", type=float, default=5400.0, help="stop running ZigZag after this many seconds")
    ap.add_argument("--write", default=None, help="write the markdown report here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from earlyq_sim.schedule import StepBits
    from validate_zigzag_report import render

    bits = StepBits(8, 8, 8)  # W8A8, 8-bit probabilities: one pass per MAC on int8 (ZigZag has no passes)
    t0 = time.perf_counter()
    models = {"ddpm-cifar10": unique_layers("ddpm-cifar10")}
    if args.quick:
        models = {"ddpm-cifar10": models["ddpm-cifar10"].nsmallest(5, "macs").reset_index(drop=True)}
    else:
        models["sd-v1.5"] = unique_layers("sd-v1.5", SD_LAYERS)
    points = design_points(args.quick)
    cache_path = Path(args.cache)
    cache = load_cache(cache_path)
    with tempfile.TemporaryDirectory() as td:
        jobs = build_jobs(models, points, Path(td), bits)
        if not args.no_run:
            run_missing(jobs, cache, cache_path, args.budget_s)
    ours_t0 = time.perf_counter()
    mine = ours(models, points, bits)
    ours_s = time.perf_counter() - ours_t0
    scalesim = ours(models, points, bits, fold_overlap="none")  # the shipped default: every fold alone
    text = render(models, points, jobs, cache, mine, scalesim, {"argv": " ".join(sys.argv[1:]), "wall_s": time.perf_counter() - t0,
                                                       "ours_s": ours_s})
    if args.write:
        from earlyq_sim.atomic_io import atomic_write_bytes
        atomic_write_bytes(args.write, text.encode())
        print(f"wrote {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
