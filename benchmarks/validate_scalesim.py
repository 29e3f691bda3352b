"""Validate the analytical cycle model against SCALE-Sim v3 and the step-by-step reference simulator.

Usage (from the repo root, main venv):

    .venv/bin/python benchmarks/validate_scalesim.py [--quick] [--jobs 2] [--write docs/validation.md]

1. Creates ``benchmarks/.venv-scalesim`` (git-ignored) and installs ``scalesim==3.0.0`` and
   ``numpy<2.4`` there if it is missing; SCALE-Sim runs in that interpreter (``--worker``).
2. Exports the GEMM layers (conv, linear, attention matmuls) of ``ddpm-cifar10`` (all) and a
   subset of ``sd-v1.5`` (layers under a cycle cap) with ``export_scalesim`` for the
   ``int8-systolic`` arch in each dataflow (ws/os/is), deduplicated by layer shape.
3. SCALE-Sim compute cycles (no DRAM stalls): SCALE-Sim's own operand matrices and
   ``systolic_compute_<df>`` demand matrices; it replays one demand row per cycle, and its
   report's stall-free "Total Cycles" is rows - 1 (checked against full runs in step 4).
4. Full SCALE-Sim runs (memory system, DRAM ``dram.bytes_per_cycle`` of the spec) on the
   smallest layers: total cycles with stalls, compared with the model's ``cycles``.
5. Reference simulator (``reference_sim.simulate_gemm``) on all GEMM layers of ddpm-cifar10 for
   stripes, bitfusion, loom and int8-systolic at several bit-widths: exact agreement of compute
   cycles and DRAM bytes.

Our model is evaluated in both ``buffers.temporal_blocking`` modes (true: the shipped default;
false: SCALE-Sim's one-block schedule). ``--scalesim-cache FILE`` (a ``--save-json`` file of an
earlier run, e.g. ``benchmarks/data/scalesim_v3_results.json``) reuses its SCALE-Sim counts and
re-evaluates only our model: SCALE-Sim does not run (its formula covers the cases it never ran).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-scalesim"
SS_PY = VENV / "bin" / "python"
sys.path.insert(0, str(HERE))  # sibling module validate_report
from validate_report import build_report  # noqa: E402


# --- worker: runs inside the SCALE-Sim venv, stdlib + scalesim only ------------------------------
def _worker(jobs_path: str) -> None:
    from scalesim.compute.operand_matrix import operand_matrix
    from scalesim.compute.systolic_compute_is import systolic_compute_is
    from scalesim.compute.systolic_compute_os import systolic_compute_os
    from scalesim.compute.systolic_compute_ws import systolic_compute_ws
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.single_layer_sim import single_layer_sim
    from scalesim.topology_utils import topologies

    systems = {"ws": systolic_compute_ws, "os": systolic_compute_os, "is": systolic_compute_is}
    loaded = {}
    for job in json.loads(Path(jobs_path).read_text()):
        key = (job["cfg"], job["topo"])
        if key not in loaded:
            cfg = scale_config()
            cfg.read_conf_file(job["cfg"])
            topo = topologies()
            topo.load_arrays(topofile=job["topo"])
            lay = layouts()
            lay.load_arrays(layoutfile=job["layout"])
            loaded = {key: (cfg, topo, lay)}
        cfg, topo, lay = loaded[key]
        i = job["layer"]
        t0 = time.perf_counter()
        if job["mode"] == "compute":
            om = operand_matrix()
            om.set_params(config_obj=cfg, topoutil_obj=topo, layoututil_obj=lay, layer_id=i)
            _, a = om.get_ifmap_matrix()
            _, b = om.get_filter_matrix()
            _, c = om.get_ofmap_matrix()
            cs = systems[cfg.get_dataflow()]()
            cs.set_params(config_obj=cfg, ifmap_op_mat=a, filter_op_mat=b, ofmap_op_mat=c)
            dem = cs.get_demand_matrices()[2]
            res = {"rows": int(dem.shape[0]), "mapping_eff": float(cs.get_avg_mapping_efficiency())}
        else:
            sim = single_layer_sim()
            sim.set_params(layer_id=i, config_obj=cfg, topology_obj=topo, layout_obj=lay, verbose=False)
            sim.run()
            items = sim.get_compute_report_items()
            res = {"total_incl_prefetch": int(items[0]), "total": int(items[1]), "stall": int(items[2])}
        res.update(id=job["id"], mode=job["mode"], wall_s=time.perf_counter() - t0)
        print(json.dumps(res), flush=True)


# --- driver: main venv ---------------------------------------------------------------------------
def ensure_venv() -> None:
    if SS_PY.exists():
        return
    print(f"creating {VENV} (scalesim 3.0.0, numpy<2.4)", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    subprocess.check_call([str(SS_PY), "-m", "pip", "install", "-q", "numpy<2.4", "scalesim==3.0.0"])


def run_workers(jobs: list[dict], n: int, tmp: Path, budget_s: float) -> dict:
    """Run jobs (smallest first) on ``n`` SCALE-Sim workers; stop them after ``budget_s`` seconds."""
    import threading

    chunks: list[list[dict]] = [[] for _ in range(n)]
    load = [0] * n
    for j in sorted(jobs, key=lambda j: j["est"]):
        k = load.index(min(load))
        chunks[k].append(j)
        load[k] += j["est"]
    out: dict = {}
    procs = []

    def reader(pr):
        for line in pr.stdout:
            r = json.loads(line)
            out[(r["id"], r["mode"])] = r

    threads = []
    for k, ch in enumerate(chunks):
        if not ch:
            continue
        p = tmp / f"jobs{k}.json"
        p.write_text(json.dumps(ch))
        pr = subprocess.Popen([str(SS_PY), __file__, "--worker", str(p)], stdout=subprocess.PIPE, text=True)
        procs.append(pr)
        threads.append(threading.Thread(target=reader, args=(pr,), daemon=True))
        threads[-1].start()
    deadline = time.monotonic() + budget_s
    for pr in procs:
        try:
            pr.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pr.kill()  # out of time: keep what finished, the report says which cases ran
            pr.wait()
    for t in threads:
        t.join(timeout=5)
    return out


def unique_layers(ops, cap_cycles=None, arch=None, per_category=None):
    """Dedupe GEMM ops by shape; returns (unique op table, occurrence counts)."""
    import numpy as np

    from earlyq_sim.simulator.cost.cost_model import evaluate
    from earlyq_sim.schedule import StepBits

    g = ops[(ops["unit"] == "gemm")].copy()
    key_cols = ["op", "G", "M", "N", "K", "batch", "C_in", "C_out", "H_in", "W_in", "R", "S", "stride", "pad", "groups"]
    g["_key"] = [tuple(r) for r in g[key_cols].itertuples(index=False)]
    counts = g.groupby("_key", sort=False).size()
    u = g.drop_duplicates("_key").copy()
    u["count"] = [int(counts[k]) for k in u["_key"]]
    if cap_cycles is not None:  # keep layers whose worst dataflow fits the cap (per GEMM instance)
        from dataclasses import replace
        worst = np.zeros(len(u))
        for df in ("ws", "os", "is"):
            a = replace(arch, array=replace(arch.array, dataflow=df))
            worst = np.maximum(worst, evaluate(a, u, StepBits(8, 8, 8))["compute_cycles"].to_numpy() / u["G"].to_numpy())
        u = u[worst <= cap_cycles]
        if per_category:
            u = u.assign(_w=worst[worst <= cap_cycles]).sort_values("_w", ascending=False)
            u = u.groupby("op", sort=False).head(per_category).sort_index().drop(columns="_w")
    return u.drop(columns="_key")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a handful of small layers (development)")
    ap.add_argument("--jobs", type=int, default=2, help="SCALE-Sim worker processes (at most 2)")
    ap.add_argument("--write", default=None, help="write the markdown report here (e.g. docs/validation.md)")
    ap.add_argument("--budget-s", type=float, default=3600.0,
                    help="stop SCALE-Sim after this many seconds; unfinished cases are reported as not run")
    ap.add_argument("--skip-reference", action="store_true", help="skip the reference-simulator check")
    ap.add_argument("--save-json", default=None, help="save the raw results here (re-render with --from-json)")
    ap.add_argument("--from-json", default=None, help="render the report from saved results, run nothing")
    ap.add_argument("--scalesim-cache", default=None,
                    help="reuse SCALE-Sim counts saved by --save-json; re-evaluate our model only")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    from earlyq_sim.simulator.cost.arch import load_arch

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        data, ref = {"cases": saved["cases"], "arch": load_arch("int8-systolic")}, saved["ref"]
        argv, wall, note = saved["argv"], saved["wall_s"], saved.get("note", "")
    else:
        cache = json.loads(Path(args.scalesim_cache).read_text()) if args.scalesim_cache else None
        note = ""
        if cache is None:
            ensure_venv()
        jobs_n = max(1, min(2, args.jobs))
        t_start = time.perf_counter()
        with tempfile.TemporaryDirectory() as td:
            data = collect(args.quick, jobs_n, Path(td), args.budget_s, cache=cache)
        ref = None if args.skip_reference else reference_check(args.quick)
        argv = " ".join(a for a in sys.argv[1:] if not a.startswith("--save-json") and a != args.save_json)
        wall = time.perf_counter() - t_start
        if cache is not None:  # the SCALE-Sim part of the wall time is the cached run's
            note = (f"SCALE-Sim counts and timings cached from the run `validate_scalesim.py {cache['argv']}` "
                    f"({cache['wall_s']:.0f} s); everything else re-run now")
        if args.save_json:
            Path(args.save_json).write_text(json.dumps({"cases": data["cases"], "ref": ref, "argv": argv, "note": note,
                                                        "wall_s": wall, "quick": args.quick}))
    text = build_report(data, ref, quick=args.quick, argv=argv, wall_s=wall, note=note)
    print(text)
    if args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")
    return 0


def scalesim_formula_rows(df: str, R: int, C: int, M: int, N: int, K: int) -> int:
    """SCALE-Sim 3.0's demand rows as its code builds them: folds x (fill + T + drain)."""
    sr, sc, t = {"ws": (K, N, M), "os": (M, N, K), "is": (K, M, N)}[df]
    per = (2 * R if df != "os" else R) + C + t - 2
    return -(-sr // R) * -(-sc // C) * per


SS_KEYS = ("ss_rows", "ss_compute", "ss_wall", "ss_map_eff", "ss_total", "ss_stall", "ss_total_incl", "ss_full_wall")


def collect(quick: bool, jobs_n: int, tmp: Path, budget_s: float, cache: dict | None = None) -> dict:
    """Run SCALE-Sim (compute-only on all chosen layers, full on the smallest) and our model.

    Our model runs in both temporal-blocking modes (``ours_*``: the arch's default, blocking on;
    ``off_*``: ``buffers.temporal_blocking: false``). With ``cache`` (a ``--save-json`` file),
    SCALE-Sim's results are taken from it by (model, dataflow, layer) and SCALE-Sim is not run.
    """
    from dataclasses import replace

    from earlyq_sim.simulator.cost.arch import load_arch
    from earlyq_sim.simulator.cost.cost_model import evaluate
    from earlyq_sim.simulator.cost.exports import export_scalesim
    from earlyq_sim.simulator.cost.tracer import trace_model
    from earlyq_sim.schedule import StepBits

    base = load_arch("int8-systolic").with_fixed_schedule(True)  # the fixed schedules are what SCALE-Sim checks
    bits = StepBits(8, 8, 8)
    sets = {}
    ddpm = trace_model("ddpm-cifar10").ops
    sd = trace_model("sd-v1.5").ops
    if quick:
        sets["ddpm-cifar10"] = unique_layers(ddpm, 40_000, base, per_category=1)
        sets["sd-v1.5"] = unique_layers(sd, 40_000, base, per_category=1)
    else:
        sets["ddpm-cifar10"] = unique_layers(ddpm)
        sets["sd-v1.5"] = unique_layers(sd, 700_000, base, per_category=4)
    full_cap, full_n = (10_000, 1) if quick else (30_000, 2)
    jobs, meta = [], []
    for model, u in sets.items():
        for df in ("ws", "os", "is"):
            arch = replace(base, array=replace(base.array, dataflow=df))
            e = export_scalesim(u, arch, tmp / f"{model}_{df}", stem=f"{model}_{df}")
            t0 = time.perf_counter()
            ours = evaluate(arch, u, bits)
            t_model = time.perf_counter() - t0
            off = evaluate(replace(arch, buffers=replace(arch.buffers, temporal_blocking=False)), u, bits)
            first = {}
            for i, r in enumerate(e.conv_rows):  # one SCALE-Sim row per op (instance 0)
                first.setdefault(r.layer.index, i)
            for pos, (idx, row) in enumerate(u.iterrows()):
                i = first[pos]
                G = int(row["G"]) * (int(row["batch"]) if row["op"] == "conv" else 1)
                per, per_off = ours.iloc[pos] / G, off.iloc[pos] / G
                m = dict(model=model, df=df, name=row["name"], op=row["op"], count=int(row["count"]), G=G,
                         M=int(e.conv_rows[i].M), N=int(row["N"]), K=int(row["K"]),
                         ours_compute=float(per["compute_cycles"]), ours_cycles=float(per["cycles"]),
                         ours_mem=float(per["mem_cycles"]), off_compute=float(per_off["compute_cycles"]),
                         off_cycles=float(per_off["cycles"]), off_mem=float(per_off["mem_cycles"]),
                         t_model=t_model / len(u))
                m["formula_rows"] = scalesim_formula_rows(df, arch.array.rows, arch.array.cols, m["M"], m["N"], m["K"])
                jid = len(meta)
                meta.append(m)
                common = dict(id=jid, cfg=str(e.config), topo=str(e.topology_conv), layout=str(e.layout_conv),
                              layer=i, est=m["ours_compute"])
                jobs.append(dict(common, mode="compute"))
            # full runs (memory system, slow): the smallest layers of this model and dataflow
            mine = sorted((j for j in jobs if j["mode"] == "compute" and meta[j["id"]]["model"] == model
                           and meta[j["id"]]["df"] == df and j["est"] <= full_cap), key=lambda j: j["est"])
            jobs += [dict(j, mode="full", est=j["est"] * 20) for j in mine[:full_n]]
    if cache is not None:
        saved = {(c["model"], c["df"], c["name"]): c for c in cache["cases"]}
        for m in meta:
            c = saved.get((m["model"], m["df"], m["name"]))
            if c is not None:  # same shape: the cached formula must match ours
                assert c["formula_rows"] == m["formula_rows"], (m["name"], c["formula_rows"], m["formula_rows"])
                m.update({k: c[k] for k in SS_KEYS if k in c})
        print(f"{len(meta)} layer x dataflow cases; SCALE-Sim counts from the cache for "
              f"{sum('ss_rows' in m for m in meta)}", flush=True)
        return {"cases": meta, "arch": base}
    print(f"{len(meta)} layer x dataflow cases, {sum(j['mode'] == 'full' for j in jobs)} full SCALE-Sim runs", flush=True)
    res = run_workers(jobs, jobs_n, tmp, budget_s)
    for jid, m in enumerate(meta):
        c = res.get((jid, "compute"))
        if c is None:
            continue  # not reached within the time budget
        m.update(ss_rows=c["rows"], ss_compute=c["rows"] - 1, ss_wall=c["wall_s"], ss_map_eff=c["mapping_eff"])
        f = res.get((jid, "full"))
        if f:
            m.update(ss_total=f["total"], ss_stall=f["stall"], ss_total_incl=f["total_incl_prefetch"],
                     ss_full_wall=f["wall_s"])
    return {"cases": meta, "arch": base}


def reference_check(quick: bool) -> list[dict]:
    """Reference simulator vs the analytical model on every GEMM op of ddpm-cifar10."""
    import numpy as np

    from earlyq_sim.simulator.cost.arch import list_archs, load_arch
    from earlyq_sim.simulator.cost.cost_model import evaluate
    from earlyq_sim.simulator.cost.cycle_model import gemm_compute_cycles
    from earlyq_sim.simulator.cost.reference_sim import simulate_gemm
    from earlyq_sim.simulator.cost.tracer import trace_model
    from earlyq_sim.schedule import StepBits

    ops = trace_model("ddpm-cifar10").ops
    u = unique_layers(ops)
    if quick:
        u = u.sort_values("macs").head(6)

    out = []
    x_el = np.where(u["in_elems"].to_numpy() > 0, u["in_elems"].to_numpy() / u["G"].to_numpy(),
                    (u["M"] * u["K"]).to_numpy())  # real input per instance, as evaluate sizes it
    for blocking in (True, False):
        for name in list_archs():
            a = load_arch(name)
            arch = a.with_fixed_schedule(blocking)
            for bits in (StepBits(8, 4, 4), StepBits(8, 6, 6), StepBits(8, 8, 8), StepBits(4, 4, 4)):
                ours = evaluate(arch, u, bits)
                t0 = time.perf_counter()
                ref_c, ref_d = [], []
                for j, (_, r) in enumerate(u.iterrows()):
                    x, y = bits.operand_bits(r["operand_kind"])
                    rr = simulate_gemm(arch, int(r["M"]), int(r["N"]), int(r["K"]), x, y, bits.act, G=int(r["G"]),
                                       swappable=r["operand_kind"] != "wa", x_elems=float(x_el[j]))
                    ref_c.append(rr.compute_cycles)
                    ref_d.append(rr.dram_bytes)
                t_ref = time.perf_counter() - t0
                xs, ys = (np.array([bits.operand_bits(k)[j] for k in u["operand_kind"]]) for j in (0, 1))
                gcc = gemm_compute_cycles(arch, u["M"].to_numpy(), u["N"].to_numpy(), u["K"].to_numpy(),
                                          u["G"].to_numpy(), xs, ys, swappable=(u["operand_kind"] != "wa").to_numpy(),
                                          x_elems=x_el)
                oc = ours["compute_cycles"].to_numpy()
                od = ours["dram_bytes"].to_numpy()
                w = u["count"].to_numpy()
                out.append(dict(arch=name, blocking=blocking, bits=bits.label, layers=len(u),
                                exact=int((np.asarray(ref_c) == oc).sum()),
                                exact_gcc=int((np.asarray(ref_c) == np.asarray(gcc)).sum()),
                                dram_exact=int(np.isclose(ref_d, od, rtol=1e-9, atol=0).sum()),
                                max_abs_diff=float(np.abs(np.asarray(ref_c) - oc).max()),
                                net_ref=float((np.asarray(ref_c) * w).sum()), net_ours=float((oc * w).sum()),
                                ref_s=t_ref))
                print(f"reference {name} blocking={blocking} {bits.label}: {out[-1]['exact']}/{len(u)} exact, "
                      f"DRAM {out[-1]['dram_exact']}/{len(u)}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
