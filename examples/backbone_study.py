"""Does "low bits early" still pay on diffusion transformers and few-step samplers? (issue 16, item 5)

For each backbone (SD v1.5 as the paper-era reference, SDXL, DiT-XL/2, PixArt-alpha, SD3 Medium,
FLUX.1 schnell) at its default step count and each shipped arch, costs the paper-style graded
schedule (4-bit weights; activations 4 -> 6 -> 7 -> 8 bits over 0-0.2-0.4-0.85-1 of the
trajectory, the Algorithm 1 result of docs/reproduction.md; 16-bit attention probabilities)
against the Q-Diffusion-style baseline W4A8P16 on the same arch, and breaks one baseline forward
down on the int8 array and on Stripes: the share of MACs in attention (QK^T and PV), and the share
of cycles spent in attention (QK^T, softmax, PV), in vector-unit ops and in memory-bound ops
(DRAM time above compute time).

    HF_HUB_OFFLINE=1 .venv/bin/python examples/backbone_study.py [--out docs] [--models ...]

Writes ``<out>/backbones_stage_speedup.csv``, ``<out>/backbones_anatomy.csv``, the figure
``<out>/backbones_speedup.png`` and prints both tables in markdown (pasted into docs/backbones.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("sd-v1.5", "sdxl", "dit-xl-2-256", "dit-xl-2-512", "pixart-alpha-512", "pixart-alpha-1024", "sd3-medium",
          "flux1-schnell")
ARCHS = ("int8-systolic", "stripes", "bitfusion", "loom")
SCHEDULE = "w4,a4@0-0.2,a6@0.2-0.4,a7@0.4-0.85,a8@0.85-1,p16"
BASELINE = "W4A8P16"
ATTENTION = ("attn_qk", "softmax", "attn_pv")


def stage_rows(models, archs):
    """One row per (model, arch, stage): steps, bits, speedup vs the baseline on the same arch."""
    from earlyq_sim.api import cost_run

    rows, runs = [], {}
    for m in models:
        for a in archs:
            r = cost_run(m, a, SCHEDULE, baseline=BASELINE)
            runs[m, a] = r
            for st in r.run.per_stage.itertuples():
                rows.append({"model": m, "arch": a, "steps_total": r.schedule.num_steps, "stage": st.stage,
                             "interval": f"{st.start:g}-{st.end:g}", "steps": st.steps, "act_bits": st.act_bits,
                             "speedup": st.speedup, "compute_speedup": st.compute_speedup})
            rows.append({"model": m, "arch": a, "steps_total": r.schedule.num_steps, "stage": "total",
                         "interval": "0-1", "steps": r.schedule.num_steps, "act_bits": None,
                         "speedup": r.run.total["speedup"], "compute_speedup": r.run.total["compute_speedup"]})
    return rows, runs


def anatomy_row(r) -> dict:
    """Where one baseline forward's MACs and cycles go (``r``: a CostRun)."""
    ops = r.ops
    per_op = next(iter(r.base.by_bits.values())).per_op
    cycles = per_op["cycles"].to_numpy()
    total = cycles.sum()
    attn = ops["op"].isin(ATTENTION).to_numpy()
    vec = (ops["unit"] == "vector").to_numpy()
    mem = per_op["mem_cycles"].to_numpy() > per_op["compute_cycles"].to_numpy()
    macs = ops["macs"].to_numpy()
    return {"model": r.model_name, "arch": r.arch.name, "gmacs": macs.sum() / 1e9,
            "attn_mac_share": macs[ops["op"].isin(("attn_qk", "attn_pv")).to_numpy()].sum() / macs.sum(),
            "attn_cycle_share": cycles[attn].sum() / total, "vector_cycle_share": cycles[vec].sum() / total,
            "mem_bound_cycle_share": cycles[mem].sum() / total, "mem_bound_ops": int(mem.sum()), "ops": len(ops),
            "baseline_ms_per_step": next(iter(r.base.by_bits.values())).latency_ms}


def figure(stages, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(stages)
    tot = df[df["stage"] == "total"].pivot(index="model", columns="arch", values="speedup")
    tot = tot.loc[[m for m in MODELS if m in tot.index], [a for a in ARCHS if a in tot.columns]]
    first = df[df["stage"] == 0].pivot(index="model", columns="arch", values="speedup").loc[tot.index, tot.columns]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, data, title in ((axes[0], first, "first stage (a4, 0-0.2)"), (axes[1], tot, "whole run")):
        x = range(len(data.index))
        w = 0.8 / len(data.columns)
        for i, arch in enumerate(data.columns):
            ax.bar([xi + i * w for xi in x], data[arch], width=w, label=arch)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([xi + 0.4 - w / 2 for xi in x])
        ax.set_xticklabels(data.index, rotation=30, ha="right")
        ax.set_title(f"speedup vs W4A8P16, {title}")
    axes[0].set_ylabel("latency of W4A8P16 / latency of schedule")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    import pandas as pd

    from earlyq_sim.atomic_io import write_csv

    out = Path(args.out)
    stages, runs = stage_rows(args.models, ARCHS)
    anatomy = [anatomy_row(runs[m, a]) for m in args.models for a in ("int8-systolic", "stripes")]
    write_csv(out / "backbones_stage_speedup.csv", pd.DataFrame(stages))
    write_csv(out / "backbones_anatomy.csv", pd.DataFrame(anatomy))
    figure(stages, out / "backbones_speedup.png")

    df = pd.DataFrame(stages)
    print("| model | steps | arch | stage speedups (a4 / a6 / a7 / a8; steps each) | whole run | compute only |")
    print("|---|---|---|---|---|---|")
    for (m, a), g in df.groupby(["model", "arch"], sort=False):
        st, tot = g[g["stage"] != "total"], g[g["stage"] == "total"].iloc[0]
        cells = " / ".join(f"{s:.2f}" for s in st["speedup"])
        steps = "+".join(str(int(n)) for n in st["steps"])
        print(f"| {m} | {int(tot['steps'])} ({steps}) | {a} | {cells} | {tot['speedup']:.3f} "
              f"| {tot['compute_speedup']:.3f} |")
    print()
    print("| model | arch | GMACs/fwd | attention MACs | attention cycles | vector-op cycles | memory-bound cycles "
          "(ops) | ms per step (W4A8P16) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in anatomy:
        print(f"| {r['model']} | {r['arch']} | {r['gmacs']:,.1f} | {r['attn_mac_share']:.1%} | {r['attn_cycle_share']:.1%} "
              f"| {r['vector_cycle_share']:.1%} | {r['mem_bound_cycle_share']:.1%} ({r['mem_bound_ops']}/{r['ops']}) "
              f"| {r['baseline_ms_per_step']:,.0f} |")


if __name__ == "__main__":
    main()
