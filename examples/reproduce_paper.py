"""Reproduce the paper's experiments on the shipped Fashion-MNIST model (issue 4, part 5).

    HF_HUB_OFFLINE=1 python examples/reproduce_paper.py table  [--n 256 --seeds 0,1,2 --steps 20]
    HF_HUB_OFFLINE=1 python examples/reproduce_paper.py sensitivity [--n 256 --seeds 0 --bits 4 --boundary 0.4]
    HF_HUB_OFFLINE=1 python examples/reproduce_paper.py probe  [--n 256 --seeds 0,1 --noise 0.1,0.3 --bits 4]
    HF_HUB_OFFLINE=1 python examples/reproduce_paper.py search [--n 256 --seeds 0,1 --threshold 1.0 --keep io]
    HF_HUB_OFFLINE=1 python examples/reproduce_paper.py report

Each part appends finished cells to ``--out``/<part>.csv (reruns resume) and ``report`` turns
the CSVs into markdown tables and PNG plots in the same folder (default docs/reproduction).
All quantized runs are bit-accurate integer emulation; FD is against the shipped Fashion-MNIST
test statistics, PSNR/SSIM against the full-precision images from the same seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from earlyq_sim.workloads.quality.experiments import QualityBench, RunSpec, search_on_bench  # noqa: E402

TABLE = [
    ("full precision", None),
    ("W8A8", "W8A8"),
    ("W4A8", "W4A8"),
    ("W8A4", "W8A4"),
    ("W4A4", "W4A4"),
    ("A4 first 20%", "a4@0-0.2,a8@0.2-1"),
    ("A4 first 40%", "a4@0-0.4,a8@0.4-1"),
    ("A4 first 60%", "a4@0-0.6,a8@0.6-1"),
    ("A4 first 80%", "a4@0-0.8,a8@0.8-1"),
]


SENSITIVITY = [          # layer groups: only the group runs at the probe bits, the rest at 8
    ("conv_in", ["conv_in"]),
    ("conv_out", ["conv_out"]),
    ("time embedding (MLP + per-resnet projections)", ["time_embedding.*", "*time_emb_proj"]),
    ("attention (q/k/v/out projections, QK^T, PV)", ["*attentions*"]),
    ("resnet conv1", ["*resnets.*.conv1"]),
    ("resnet conv2", ["*resnets.*.conv2"]),
    ("resnet conv_shortcut (1x1 on the skip concat)", ["*conv_shortcut"]),
    ("down/up-sampler convs", ["*samplers*"]),
]


def _with_keep(spec: str | None, keep: str) -> str | None:
    return spec if spec is None or not keep else f"{spec},k8:{keep}"


def table(a) -> None:
    bench = _bench(a, a.name or "table")
    rows = TABLE if not a.specs else [("full precision", None)] + [(s, s) for s in a.specs.split(";")]
    for seed in a.seeds:
        bench.run(RunSpec("full precision"), seed)
    for keep in a.keep_variants.split(";"):
        keep = "" if keep == "none" else keep
        for label, spec in rows:
            if spec is None and keep:
                continue
            lab = label if not keep else f"{label} (k8:{keep})"
            for seed in a.seeds:
                r = bench.run(RunSpec(lab, _with_keep(spec, keep)), seed)
                print(f"{lab:28s} seed {seed}: FD {r['fd']:.2f}  PSNR {r['psnr_db_mean']:.2f}", flush=True)


def sensitivity(a) -> None:
    bench = _bench(a, "sensitivity")
    sched = f"a{a.bits}@0-{a.boundary:g},a8@{a.boundary:g}-1"
    runs = [("W8A8 (no layer low)", "W8A8"), ("all layers low", sched)]
    runs += [(f"only {name} low", f"{sched},k8:*|" + "|".join("!" + p for p in pats)) for name, pats in SENSITIVITY]
    runs += [("all low but held: io", f"{sched},k8:io"), ("all low but held: io|*conv_shortcut",
                                                          f"{sched},k8:io|*conv_shortcut")]
    for seed in a.seeds:
        bench.run(RunSpec("full precision"), seed)
        for label, spec in runs:
            r = bench.run(RunSpec(label, spec), seed)
            print(f"{label:50s} seed {seed}: FD {r['fd']:.2f}  PSNR {r['psnr_db_mean']:.2f}", flush=True)


def probe(a) -> None:
    bench = _bench(a, "probe")
    k = round(1 / a.probe_grid)
    ivs = [(round(i * a.probe_grid, 6), round((i + 1) * a.probe_grid, 6)) for i in range(k)]
    for seed in a.seeds:
        bench.run(RunSpec("full precision"), seed)
        bench.run(RunSpec("W8A8", _with_keep("W8A8", a.keep)), seed)
    for lo, hi in ivs:
        for rel in a.noise:
            for seed in a.seeds:
                bench.run(RunSpec(f"noise {rel:g}", noise_rel=rel, noise_interval=(lo, hi)), seed)
        for seed in a.seeds:
            rest = f"a8@0-{lo:g}," if lo > 0 else ""
            after = f",a8@{hi:g}-1" if hi < 1 else ""
            spec = _with_keep(f"{rest}a{a.bits}@{lo:g}-{hi:g}{after}" + (f",{a.extra}" if a.extra else ""), a.keep)
            label = f"A{a.bits} on one interval" + (f", {a.extra}" if a.extra else "")
            r = bench.run(RunSpec(label, spec), seed)
            print(f"interval {lo:g}-{hi:g} seed {seed}: A{a.bits} FD {r['fd']:.2f}", flush=True)


def search(a) -> None:
    bench = _bench(a, "search" + (f"_{a.name}" if a.name else ""))
    res, base_spec = search_on_bench(bench, a.seeds, a.threshold, grid=a.grid, min_bits=a.min_bits, keep=a.keep,
                                     monotone=a.monotone, tokens=a.extra,
                                     log=lambda t: print(f"interval {t.interval} a{t.bits}: FD {t.fd:.2f} "
                                                         f"({'accept' if t.accepted else 'reject'})", flush=True))
    out = Path(a.out) / (f"search_result_{a.name}.json" if a.name else "search_result.json")
    out.write_text(json.dumps({"baseline": base_spec, "baseline_fd": res.baseline_fd, "threshold": a.threshold,
                               "grid": a.grid, "seeds": a.seeds, "n": a.n, "steps": a.steps, "monotone": a.monotone,
                               "bits": res.bits, "spec": res.spec, "stages": res.stages(),
                               "final_fd": res.final_fd,
                               "trials": [t.__dict__ for t in res.trials]}, indent=1))
    print(f"search result: {res.spec} (FD {res.final_fd:.2f} vs baseline {res.baseline_fd:.2f}); wrote {out}")


def report(a) -> None:
    from reproduce_report import write_report  # examples/reproduce_report.py
    write_report(Path(a.out))


def _bench(a, part: str) -> QualityBench:
    Path(a.out).mkdir(parents=True, exist_ok=True)
    import torch
    torch.set_num_threads(a.threads)
    return QualityBench(Path(a.out) / f"{part}.csv", n=a.n, steps=a.steps, batch_size=a.batch_size,
                        progress=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["table", "sensitivity", "probe", "search", "report"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "reproduction"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep", default="", help="layers held at 8 bits in probe/search (e.g. io)")
    ap.add_argument("--keep-variants", default="none;io", help="table: ';'-separated keep settings")
    ap.add_argument("--specs", default="", help="table: ';'-separated schedules instead of the paper's list")
    ap.add_argument("--name", default="", help="table: CSV name (default table)")
    ap.add_argument("--noise", default="0.1,0.3", help="probe: relative noise levels")
    ap.add_argument("--bits", type=int, default=4, help="probe: activation bits on the probed interval")
    ap.add_argument("--probe-grid", type=float, default=0.1)
    ap.add_argument("--extra", default="", help="probe/search: more schedule tokens for the quantized runs, e.g. p16")
    ap.add_argument("--boundary", type=float, default=0.4, help="sensitivity: low bits on [0, boundary)")
    ap.add_argument("--threshold", type=float, default=1.0, help="search: allowed FD above the baseline")
    ap.add_argument("--grid", type=float, default=0.05)
    ap.add_argument("--min-bits", type=int, default=4)
    ap.add_argument("--monotone", action="store_true", help="search: start each interval at the previous one's bits")
    a = ap.parse_args(argv)
    a.seeds = [int(s) for s in a.seeds.split(",")]
    a.noise = [float(s) for s in a.noise.split(",")]
    {"table": table, "sensitivity": sensitivity, "probe": probe, "search": search, "report": report}[a.part](a)


if __name__ == "__main__":
    main()
