"""Plot the buffer x bandwidth study (``examples/sweeps/sd_buffer_bandwidth.yaml``) and check
that its curves are monotone: more buffer or more bandwidth never worsens what the mapper
minimises (latency or energy), and DRAM traffic never falls below compulsory.

    HF_HUB_OFFLINE=1 .venv/bin/earlyq-sim sweep examples/sweeps/sd_buffer_bandwidth.yaml --out runs/bb
    HF_HUB_OFFLINE=1 .venv/bin/python examples/plot_buffer_bandwidth.py runs/bb --out docs/buffer_bandwidth.png

Prints, per objective and schedule, latency, energy and DRAM traffic for equal buffers at each
bandwidth, and the monotonicity violations found (axis by axis, the other axes held) of every
metric: the objective's own metric must have none; the others may rise (a latency-minimising
mapper spends bandwidth it has spare on refetches that save cycles).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

AXES = ("buffers.ifmap_kib", "buffers.filter_kib", "buffers.ofmap_kib", "dram_bytes_per_cycle")
OBJ = "mapping.objective"
METRICS = {"latency": "latency_ms", "energy": "energy_mj", "dram": "dram_gb"}


def violations(df: pd.DataFrame, metric: str) -> int:
    """Steps where growing one axis (the others held) increases ``metric`` (relative slack 1e-9)."""
    bad = 0
    for axis in AXES:
        held = [a for a in AXES if a != axis] + ["schedule", OBJ]
        for _, g in df.groupby(held):
            v = g.sort_values(axis)[metric].to_numpy()
            bad += int(((v[1:] - v[:-1]) > 1e-9 * abs(v[:-1])).sum())
    return bad


def plot(df: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earlyq_sim.reports.plots import save_png

    eq = df[(df[AXES[0]] == df[AXES[1]]) & (df[AXES[1]] == df[AXES[2]])]
    scheds = list(dict.fromkeys(eq["schedule"]))
    objs = list(dict.fromkeys(eq[OBJ]))
    fig, axes = plt.subplots(len(objs), 3, figsize=(14, 4.0 * len(objs)), squeeze=False)
    ylabs = ("latency of 50 steps (s)", "energy of 50 steps (J)", "DRAM traffic of 50 steps (GB)")
    for row, obj in zip(axes, objs):
        d = eq[eq[OBJ] == obj]
        for (kib, g), color in zip(d.groupby(AXES[0]), plt.cm.viridis([0.0, 0.3, 0.6, 0.85])):
            for s, ls in zip(scheds, ("-", "--")):
                h = g[g["schedule"] == s].sort_values(AXES[3])
                label = f"{int(kib)} KiB each, {s}"
                for ax, col, scale in zip(row, ("latency_ms", "energy_mj", "dram_gb"), (1e-3, 1e-3, 1.0)):
                    ax.plot(h[AXES[3]], h[col] * scale, ls, color=color, marker="o", ms=3, label=label)
        for s, ls in zip(scheds, ("-", "--")):
            row[2].axhline(d[d["schedule"] == s]["compulsory_dram_gb"].iloc[0], color="k", ls=ls, lw=0.8)
        for ax, ylab in zip(row, ylabs):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("DRAM bandwidth (bytes/cycle = GB/s at 1 GHz)")
            ax.set_ylabel(ylab)
            ax.set_title(f"mapper objective: {obj}", fontsize=9)
            ax.grid(alpha=0.3)
        row[2].set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("SD v1.5 on stripes (32x32 PEs): ifmap = filter = ofmap buffer size x DRAM bandwidth; "
                 "solid W8A8, dashed A4 on the first 40% of steps; black lines: compulsory DRAM traffic",
                 fontsize=10)
    fig.tight_layout()
    save_png(fig, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/buffer_bandwidth.png"))
    args = ap.parse_args(argv)
    df = pd.read_parquet(args.sweep_dir / "results.parquet")
    eq = df[(df[AXES[0]] == df[AXES[1]]) & (df[AXES[1]] == df[AXES[2]])]
    cols = [OBJ, "schedule", AXES[0], AXES[3], "latency_ms", "energy_mj", "dram_gb", "compulsory_dram_gb", "speedup"]
    with pd.option_context("display.width", 180, "display.max_rows", 200):
        print(eq[cols].sort_values([OBJ, "schedule", AXES[0], AXES[3]]).to_string(index=False))
    bad = 0
    for obj in dict.fromkeys(df[OBJ]):
        d = df[df[OBJ] == obj]
        counts = {m: violations(d, col) for m, col in METRICS.items()}
        own = counts.get(obj, 0)
        bad += own
        print(f"objective {obj}: {len(d)} points; increases when one axis grows: "
              + ", ".join(f"{m} {n}" for m, n in counts.items()) + f" (its own metric: {own})")
    below = int((df["dram_gb"] < df["compulsory_dram_gb"] * (1 - 1e-12)).sum())
    print(f"points below compulsory DRAM traffic: {below}")
    plot(df, args.out)
    print(f"wrote {args.out}")
    return 1 if bad or below else 0


if __name__ == "__main__":
    sys.exit(main())
