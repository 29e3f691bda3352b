"""A short PDF report of a run: summary page, per-step timeline, energy breakdown, per-layer speedup."""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from earlyq_sim.reports import plots  # noqa: E402
from earlyq_sim.reports.summary import format_stage_table  # noqa: E402
from earlyq_sim.atomic_io import atomic_write_bytes  # noqa: E402


def _text_page(title: str, blocks: list[tuple]):
    """A page of text; each block is (text, monospace) or (text, monospace, colour); monospace
    lines that start with WARNING are drawn in red."""
    fig = plt.figure(figsize=(8.5, 11))
    fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
    y = 0.92
    for text, mono, *colour in blocks:
        for para in text.split("\n"):
            # 6.2 pt monospace fits about 140 characters across the page; wrap rather than overflow
            wrapped = (textwrap.wrap(para, 140, subsequent_indent="    ", drop_whitespace=False) if mono
                       else textwrap.wrap(para, 100)) or [""]
            red = para.startswith("WARNING")
            for line in wrapped:
                fig.text(0.06, y, line, fontsize=6.2 if mono else 8, family="monospace" if mono else "sans-serif",
                         va="top", color="red" if red else (colour[0] if colour else "black"),
                         weight="bold" if red else "normal")
                y -= 0.013 if mono else 0.016
        y -= 0.012
    return fig


def cost_figures(run) -> dict:
    """name -> matplotlib Figure for the cost lane."""
    return {
        "step_latency": plots.fig_step_timeline(run),
        "energy_breakdown": plots.fig_energy_breakdown(run),
        "layer_speedup": plots.fig_layer_speedup(run),
    }


def write_report(path, run, summary: dict, figures: dict | None = None, extra_pages: list | None = None) -> None:
    """Write the PDF report atomically. ``extra_pages``: more figures (e.g. sample grids)."""
    figures = figures if figures is not None else cost_figures(run)
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        check = summary.get("quality", {}).get("check") or {}
        warn = [] if check.get("ok", True) else [
            ("WARNING: image quality is not kept: " + "; ".join(check["reasons"]), False, "red")]
        blocks = warn + [(format_stage_table(summary), True),
                  ("Why the achieved speedup differs from the compute speedup (memory effects):", False)]
        blocks += [(line, False) for line in plots.memory_effects_text(run)]
        blocks.append((
            f"Arch {run.arch.name}: speedup counts cycles of one arch at two precisions, so it isolates what "
            f"the schedule buys on that hardware. 'vs {run.ref_arch.name}' compares with the baseline on a "
            "bit-parallel INT8 array, i.e. what the bit-flexible hardware and the schedule buy together.", False))
        page = _text_page("earlyq-sim report", blocks)
        pdf.savefig(page)
        plt.close(page)
        for fig in list(figures.values()) + list(extra_pages or []):
            pdf.savefig(fig)
        info = pdf.infodict()
        info["Title"] = f"earlyq-sim: {run.model_name} on {run.arch.name}"
    atomic_write_bytes(path, buf.getvalue())
