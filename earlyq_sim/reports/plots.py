"""Plots of a cost run, drawn from the tables `run` writes (per_stage, per_step, per_layer), so
`run` and `earlyq-sim report` draw the same pictures. Each function draws on the axes it is
given; the page around it names the basis (model, arch, schedule, baseline)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ENERGY_PARTS = {"compute": "#4C72B0", "sram": "#55A868", "dram": "#C44E52", "leak": "#8172B2"}
STEP_AXIS = "denoising step (0 = first, noisiest)"
LEGEND_ABOVE = dict(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=6, frameon=False,
                    borderaxespad=0.2)  # right-aligned above the axes, beside a left-aligned title
RATIO_COLORS = {"speedup": "#4C72B0", "compute_speedup": "#8fb3de", "speedup_vs_ref": "#DD8452",
                "energy_saving": "#55A868"}


def _stage_labels(per_stage) -> list[str]:
    return [f"{r.start:g}-{r.end:g}\nW{r.weight_bits}A{r.act_bits}" for r in per_stage.itertuples()]


def _bits_colors(bits: np.ndarray):
    cmap = plt.get_cmap("viridis")
    lo, hi = bits.min(), max(bits.max(), bits.min() + 1)
    return lambda b: cmap((b - lo) / (hi - lo) * 0.8)


def _step_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(STEP_AXIS, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_stage_ratios(ax, per_stage, ref_arch: str) -> None:
    """Grouped bars per stage: speedup, compute-only speedup, speedup vs the reference arch, energy
    saving (all x over the baseline)."""
    names = {"speedup": "speedup", "compute_speedup": "compute-only speedup",
             "speedup_vs_ref": f"speedup vs {ref_arch}", "energy_saving": "energy saving"}
    x = np.arange(len(per_stage))
    w = 0.8 / len(names)
    for i, (col, name) in enumerate(names.items()):
        vals = per_stage[col].to_numpy(float)
        ax.bar(x + (i - (len(names) - 1) / 2) * w, np.nan_to_num(vals), w, color=RATIO_COLORS[col], label=name)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(x, _stage_labels(per_stage), fontsize=8)
    ax.set_xlabel("stage (fraction of steps, bits)")
    ax.set_ylabel("ratio over baseline (x)")
    ax.set_title("Speedup and energy saving per stage", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")


def plot_stage_energy(ax, per_stage) -> None:
    """Energy per stage (mJ): the schedule split into compute / SRAM / DRAM / leakage, and the
    baseline's total for the same steps beside it."""
    x = np.arange(len(per_stage))
    bottom = np.zeros(len(per_stage))
    for part, col in ENERGY_PARTS.items():
        v = per_stage[f"energy_{part}_mj"].to_numpy(float)
        ax.bar(x - 0.2, v, 0.38, bottom=bottom, color=col, label=f"schedule: {part}")
        bottom += v
    ax.bar(x + 0.2, per_stage["baseline_energy_mj"].to_numpy(float), 0.38, color="#bbbbbb", hatch="//",
           edgecolor="#777777", label="baseline (total)")
    ax.set_xticks(x, _stage_labels(per_stage), fontsize=8)
    ax.set_xlabel("stage (fraction of steps, bits)")
    ax.set_ylabel("energy per stage (mJ)")
    ax.set_title("Energy per stage: schedule by part, baseline total", fontsize=9)
    ax.legend(fontsize=7)


def plot_step_latency(ax, per_step, baseline_label: str) -> None:
    """Latency of each denoising step (ms), coloured by activation bits, with the baseline's."""
    bits = per_step["act_bits"].to_numpy()
    color = _bits_colors(bits)
    ax.bar(per_step["step"], per_step["latency_ms"], width=1.0, color=[color(b) for b in bits])
    ax.plot(per_step["step"], per_step["baseline_latency_ms"], "k--", lw=1, label=f"baseline {baseline_label}")
    from matplotlib.patches import Patch

    handles = ax.get_legend_handles_labels()[0] + [Patch(color=color(b), label=f"schedule, A{b}")
                                                   for b in sorted(set(bits))]
    _step_axis(ax)
    ax.set_ylabel("latency per step (ms)")
    ax.set_title("Per-step latency", fontsize=9, loc="left")
    ax.legend(handles=handles, **LEGEND_ABOVE)


def plot_step_energy(ax, per_step, per_stage) -> None:
    """Energy of each step (mJ) split by part; dashed: the baseline's energy per step."""
    bottom = np.zeros(len(per_step))
    for part, col in ENERGY_PARTS.items():
        v = per_step[f"energy_{part}_mj"].to_numpy(float) if f"energy_{part}_mj" in per_step else None
        if v is None:
            continue
        ax.bar(per_step["step"], v, width=1.0, bottom=bottom, color=col, label=part)
        bottom += v
    base = per_stage.set_index("stage")
    per = (base["baseline_energy_mj"] / base["steps"].where(base["steps"] > 0)).reindex(per_step["stage"])
    ax.plot(per_step["step"], per.to_numpy(float), "k--", lw=1, label="baseline")
    _step_axis(ax)
    ax.set_ylabel("energy per step (mJ)")
    ax.set_title("Per-step energy", fontsize=9, loc="left")
    ax.legend(**LEGEND_ABOVE)


def plot_cumulative(ax, per_step, baseline_label: str) -> None:
    """Cumulative latency (ms) of the schedule and the baseline over the steps."""
    ax.plot(per_step["step"], per_step["cum_latency_ms"], label="schedule")
    ax.plot(per_step["step"], np.cumsum(per_step["baseline_latency_ms"]), "k--", label=f"baseline {baseline_label}")
    _step_axis(ax)
    ax.set_ylabel("cumulative latency (ms)")
    ax.set_title("Cumulative latency", fontsize=9, loc="left")
    ax.legend(**LEGEND_ABOVE)


def plot_layer_speedup(ax, layers) -> None:
    """Per-layer speedup over the baseline against layer MACs (GEMMs, by what bounds them)."""
    for bound, color in (("compute", "#4C72B0"), ("memory", "#C44E52")):
        s = layers[(layers["bound"] == bound) & (layers["unit"] == "gemm")]
        ax.scatter(np.maximum(s["macs"], 1), s["speedup"], s=12, color=color, label=f"GEMM, {bound}-bound ({len(s)})")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("MACs per layer per UNet forward")
    ax.set_ylabel("speedup over the baseline (x)")
    ax.set_title(f"Per-layer speedup ({int((layers['unit'] != 'gemm').sum())} vector ops not shown)", fontsize=9)
    ax.legend(fontsize=7)


def plot_top_layers(ax, top) -> None:
    """Cycles per UNet forward of the top layers under the schedule and the baseline (numbered
    as in the table above)."""
    y = np.arange(len(top))[::-1]
    ax.barh(y + 0.2, top["cycles"], 0.38, color="#4C72B0", label="schedule")
    ax.barh(y - 0.2, top["baseline_cycles"], 0.38, color="#bbbbbb", label="baseline")
    ax.set_yticks(y, [str(i + 1) for i in range(len(top))], fontsize=7)
    ax.set_ylabel("layer (# in the table)")
    ax.set_xlabel("cycles per UNet forward")
    ax.set_title("Cycles of the top layers", fontsize=9)
    ax.legend(fontsize=7)


def memory_effects_text(per_stage, per_layer, baseline_label: str) -> list[str]:
    """Sentences explaining, per stage, why the achieved speedup falls short of the compute speedup."""
    lines = []
    for st in per_stage.itertuples():
        if st.steps <= 0:
            continue
        po = per_layer[per_layer["stage"] == st.stage]
        gemm = (po["unit"] == "gemm").to_numpy()
        total = max(float(po["cycles"].sum()), 1e-12)
        mem = (po["mem_cycles"] > po["compute_cycles"]).to_numpy()
        lines.append(
            f"Stage {st.start:g}-{st.end:g} (W{st.weight_bits}A{st.act_bits}, {st.steps} steps): speedup "
            f"{st.speedup:.3f}x over {baseline_label}; compute cycles alone give {st.compute_speedup:.3f}x. The "
            f"array's fill, drain and weight-load cycles per fold do not shrink with activation bits, which hurts "
            f"layers with few output rows most. Vector (non-GEMM) ops take "
            f"{100 * float(po.loc[~gemm, 'cycles'].sum()) / total:.1f}% of the step's cycles and gain only through "
            f"their smaller memory traffic. {int((mem & gemm).sum())} of {int(gemm.sum())} GEMM ops are memory-bound "
            f"(DRAM time exceeds compute time); memory-bound ops take "
            f"{100 * float(po.loc[mem, 'cycles'].sum()) / total:.1f}% of the cycles, and there fewer activation bits "
            f"help only through fewer bytes moved.")
    return lines


def save_png(fig, path, dpi: int = 120) -> None:
    """Write ``fig`` as a PNG atomically."""
    import io

    from earlyq_sim.atomic_io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
