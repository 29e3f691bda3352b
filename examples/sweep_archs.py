"""Design-space sweep: run a sweep spec, print the best designs and plot speedup vs boundary per arch.

Run (resumable: rerun the same command to finish an interrupted sweep)::

    HF_HUB_OFFLINE=1 .venv/bin/python examples/sweep_archs.py \
        --spec examples/sweeps/arch_x_schedule.yaml --out runs/arch_x_schedule \
        --plot docs/sweep_speedup_vs_boundary.png

Add ``--executor dask [--scheduler tcp://host:8786]`` to run the points on a Dask cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from earlyq_sim.workloads.sweeps.runner import run_sweep


def best_table(df: pd.DataFrame, by: list[str], top: int = 1) -> pd.DataFrame:
    """The ``top`` rows of highest speedup in each group of ``by``."""
    cols = [c for c in (*by, "schedule", "latency_ms", "energy_mj", "speedup", "speedup_vs_ref", "energy_saving")
            if c in df]
    return (df.sort_values("speedup", ascending=False).groupby(by, sort=True).head(top)
            .sort_values(by)[cols].reset_index(drop=True))


def plot_speedup_vs_boundary(df: pd.DataFrame, path: Path, early_bits: int = 4) -> None:
    """Total speedup over W8A8 vs two-stage boundary, one line per (arch, dataflow), one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earlyq_sim.reports.plots import save_png

    d = df[(df["early_bits"] == early_bits) & df["boundary"].notna()]
    models = list(dict.fromkeys(d["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4), squeeze=False)
    variant = ["arch"] + (["array.dataflow"] if "array.dataflow" in d else [])
    for ax, model in zip(axes[0], models):
        for key, g in d[d["model"] == model].groupby(variant):
            key = key if isinstance(key, tuple) else (key,)
            g = g.sort_values("boundary")
            ax.plot(g["boundary"], g["speedup"], marker="o", ms=3, label=" ".join(map(str, key)))
        ax.set_title(f"{model}: A{early_bits} before boundary, A8 after")
        ax.set_xlabel("boundary (fraction of steps at low bits)")
        ax.set_ylabel("speedup vs W8A8 on the same arch")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="examples/sweeps/arch_x_schedule.yaml")
    ap.add_argument("--out", default="runs/arch_x_schedule")
    ap.add_argument("--executor", default="local", choices=["local", "dask"])
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--plot", default=None, help="PNG path for speedup vs boundary per arch")
    ap.add_argument("--early-bits", type=int, default=4)
    args = ap.parse_args()
    df = run_sweep(args.spec, args.out, executor=args.executor, scheduler=args.scheduler)
    print(df.attrs["sweep"])
    by = ["model", "arch"] + [c for c in df.columns if "." in c or c.endswith("_per_cycle")]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(best_table(df, by).to_string(index=False))
    if args.plot:
        plot_speedup_vs_boundary(df, Path(args.plot), args.early_bits)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
