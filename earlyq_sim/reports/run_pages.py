"""The pages of a run's report (`run --out` writes them as report.pdf; `earlyq-sim report DIR`
rebuilds them from the folder): title and headline numbers, per-stage table and bars, per-step
timelines, top layers with their mappings, memory effects and hardware, quality, samples."""

from __future__ import annotations

import numpy as np

from earlyq_sim.reports import plots
from earlyq_sim.reports.inputs import RunData
from earlyq_sim.reports.page import HEADER_BOTTOM, MARGIN, Page, body_axes, new_page, text_block
from earlyq_sim.reports.summary import format_hardware, format_provenance, format_quality_check
from earlyq_sim.reports.table import draw_facts, draw_table

TOP_LAYERS = 15  # layers shown on the per-layer page
WIDTH = 1 - 2 * MARGIN


def fmt(x, spec: str = ".4g") -> str:
    """A number for a table cell ('-' for missing)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return format(x, spec)


def basis_line(s: dict) -> str:
    """Which model, arch, schedule, baseline and steps every number on a run page refers to."""
    return (f"{s['model']['name']} on arch {s['arch']['name']} ({s['arch']['clock_mhz']:g} MHz); schedule "
            f"{s['schedule']['label']} vs baseline {s['baseline']['label']} on the same arch; "
            f"{s['total']['steps']} steps; normalisation: {s['basis']['normalisation']}.")


def title_page(d: RunData) -> Page:
    s = d.summary
    p = new_page("title", f"earlyq-sim report: {s['model']['name']} on {s['arch']['name']}", basis_line(s))
    fig, t, m = p.fig, s["total"], s["model"]
    hw = (s.get("hardware") or {}).get("arch") or {}
    area = (hw.get("area_mm2") or {}).get("total")
    facts = [
        ["model", f"{m['name']}: {m['params'] / 1e6:.2f} M parameters, {m['macs_per_step'] / 1e9:.3f} GMACs per "
                  f"UNet forward, batch {m.get('batch', 1)}{' (cfg x2)' if m.get('cfg') else ''}"],
        ["arch", f"{s['arch']['name']}, {hw.get('array', '?')} PEs, {s['arch']['clock_mhz']:g} MHz"
                 + (f", {hw['node_nm']:g} nm" if "node_nm" in hw else "") + (f", {area:.3f} mm^2" if area else "")],
        ["reference arch", s["reference_arch"]["name"] + " (for 'speedup vs ref')"],
        ["schedule", s["schedule"]["label"]],
        ["chosen by", s["schedule"].get("chosen_by") or "-"],
        ["baseline", s["baseline"]["label"] + " (uniform, same arch, same steps)"],
        ["steps", str(t["steps"])],
        ["normalisation", s["basis"]["normalisation"]],
        ["units", "latency ms, energy mJ, cycles of the arch clock, ratios x over the baseline (> 1 is better)"],
    ]
    y = draw_facts(fig, MARGIN, HEADER_BOTTOM - 0.01, WIDTH, facts)
    head = [["latency (ms)", fmt(t["latency_ms"]), fmt(t["baseline_latency_ms"]), fmt(t.get("speedup"), ".3f") + " x"],
            ["energy (mJ)", fmt(t["energy_mj"]), fmt(t["baseline_energy_mj"]), fmt(t.get("energy_saving"), ".3f") + " x"],
            ["latency vs " + s["reference_arch"]["name"] + " (ms)", fmt(t["latency_ms"]), fmt(t.get("ref_latency_ms")),
             fmt(t.get("speedup_vs_ref"), ".3f") + " x"]]
    y = text_block(fig, MARGIN, y - 0.02, WIDTH, "Whole sampling run", 10, weight="bold")
    _, y = draw_table(fig, (MARGIN, y - 0.13, 0.6, 0.13), ["quantity", "schedule", "baseline", "baseline / schedule"],
                      head)
    q = s.get("quality") or {}
    lines = format_quality_check(q) if q.get("computed") else [f"quality: not computed ({q.get('note', '')})"]
    for line in lines:
        y = text_block(fig, MARGIN, y - 0.01, WIDTH, line, 9, color="red" if line.startswith("WARNING") else "black",
                       weight="bold" if line.startswith("WARNING") else "normal")
    text_block(fig, MARGIN, y - 0.01, WIDTH, "\n".join(x for x in format_provenance(s) if x), 7.5, color="#444444")
    return p


def stages_page(d: RunData) -> Page:
    s, ps = d.summary, d.per_stage
    p = new_page("stages", "Per-stage cost", basis_line(s))
    ref = s["reference_arch"]["name"]
    cols = ["stage", "steps", "bits", "latency ms", "energy mJ", "baseline ms", "baseline mJ", "speedup x",
            "compute x", f"vs {ref} x", "energy saving x"]
    rows = [[f"{r.start:g}-{r.end:g}", str(r.steps), f"W{r.weight_bits}A{r.act_bits}P{r.prob_bits}", fmt(r.latency_ms),
             fmt(r.energy_mj), fmt(r.baseline_latency_ms), fmt(r.baseline_energy_mj), fmt(r.speedup, ".3f"),
             fmt(r.compute_speedup, ".3f"), fmt(r.speedup_vs_ref, ".3f"), fmt(r.energy_saving, ".3f")]
            for r in ps.itertuples()]
    t = s["total"]
    rows.append(["total", str(t["steps"]), "", fmt(t["latency_ms"]), fmt(t["energy_mj"]), fmt(t["baseline_latency_ms"]),
                 fmt(t["baseline_energy_mj"]), fmt(t.get("speedup"), ".3f"), fmt(t.get("compute_speedup"), ".3f"),
                 fmt(t.get("speedup_vs_ref"), ".3f"), fmt(t.get("energy_saving"), ".3f")])
    h = min(0.3, 0.035 * (len(rows) + 1))
    _, y = draw_table(p.fig, (MARGIN, HEADER_BOTTOM - h, WIDTH, h), cols, rows)
    ax1, ax2 = body_axes(p.fig, 1, 2, top=y - 0.06, bottom=0.15, wspace=0.25)
    plots.plot_stage_ratios(ax1, ps, ref)
    plots.plot_stage_energy(ax2, ps)
    text_block(p.fig, MARGIN, 0.075, WIDTH, f"speedup: baseline latency / schedule latency on {s['arch']['name']}; "
               f"compute x: the same with compute cycles only; vs {ref}: baseline latency on {ref} / schedule latency "
               f"on {s['arch']['name']}; energy saving: baseline energy / schedule energy.", 7.5, bottom=0.03)
    return p


def steps_page(d: RunData) -> Page:
    s = d.summary
    p = new_page("steps", "Per-step latency and energy", basis_line(s))
    axes = body_axes(p.fig, 3, 1, bottom=0.08, hspace=0.45)
    for ax in axes[1:]:
        ax.sharex(axes[0])
    plots.plot_step_latency(axes[0], d.per_step, s["baseline"]["label"])
    plots.plot_step_energy(axes[1], d.per_step, d.per_stage)
    plots.plot_cumulative(axes[2], d.per_step, s["baseline"]["label"])
    return p


def lowest_bit_stage(per_stage) -> int:
    run = per_stage[per_stage["steps"] > 0]
    return int(run.sort_values(["act_bits", "stage"])["stage"].iloc[0])


def layers_page(d: RunData) -> Page:
    s, ps = d.summary, d.per_stage
    stage = lowest_bit_stage(ps)
    row = ps.loc[ps["stage"] == stage].iloc[0]
    layers = d.per_layer[d.per_layer["stage"] == stage]
    top = layers.sort_values("cycles", ascending=False).head(TOP_LAYERS)
    total = max(float(layers["cycles"].sum()), 1e-12)
    p = new_page("layers", f"Top {len(top)} layers by cycles in stage {row['start']:g}-{row['end']:g} "
                           f"(W{int(row['weight_bits'])}A{int(row['act_bits'])})",
                 basis_line(s) + " Cycles per UNet forward; mapping: the mapper's loop order and tiles.")
    cols = ["#", "layer", "op", "M x N x K", "MMACs", "cycles", "share %", "speedup x", "bound", "DRAM / compulsory",
            "energy uJ", "mapping"]
    rows = [[str(i + 1), r.name, r.op, "-" if r.unit != "gemm" else f"{r.M} x {r.N} x {r.K}", fmt(r.macs / 1e6, ".3g"),
             f"{r.cycles:,.0f}", fmt(100 * r.cycles / total, ".1f"), fmt(r.speedup, ".3f"), r.bound,
             fmt(r.traffic_x_compulsory, ".2f"), fmt(r.energy_uj, ".3g"), str(r.mapping)]
            for i, r in enumerate(top.itertuples())]
    _, y = draw_table(p.fig, (MARGIN, HEADER_BOTTOM - 0.42, WIDTH, 0.42), cols, rows)
    ax1, ax2 = body_axes(p.fig, 1, 2, top=y - 0.05, bottom=0.08, wspace=0.25)
    plots.plot_top_layers(ax1, top)
    plots.plot_layer_speedup(ax2, layers)
    return p


def notes_page(d: RunData) -> Page:
    s = d.summary
    p = new_page("notes", "Why the achieved speedup differs from the compute speedup; hardware", basis_line(s))
    y = HEADER_BOTTOM - 0.01
    for line in plots.memory_effects_text(d.per_stage, d.per_layer, s["baseline"]["label"]):
        y = text_block(p.fig, MARGIN, y, WIDTH, line, 9)
    y = text_block(p.fig, MARGIN, y, WIDTH, (
        f"Arch {s['arch']['name']}: speedup counts cycles of one arch at two precisions, so it isolates what the "
        f"schedule buys on that hardware. 'vs {s['reference_arch']['name']}' compares with the baseline on the "
        "reference array, i.e. what the bit-flexible hardware and the schedule buy together."), 9)
    text_block(p.fig, MARGIN, y, WIDTH, "\n".join(x.strip() for x in format_hardware(s) if x.strip()), 8.5)
    return p


def quality_page(d: RunData) -> Page | None:
    q = (d.summary.get("quality") or {})
    if not q.get("computed"):
        return None
    from earlyq_sim.workloads.quality.metric_registry import METRICS

    s = d.summary
    p = new_page("quality", "Image quality", f"{q['model']}, {q['n_images']} images from seed {q['seed']}, "
                 f"{q['sampler'].upper()} {q['steps']} steps; quantized runs are bit-accurate integer emulation. "
                 + basis_line(s))
    cols = ["run", "schedule", *(m.label for m in METRICS.values()), "sample s", "calib s"]
    rows = [[r["run"], r["schedule"], *(fmt(r.get(m.name), m.fmt) for m in METRICS.values()),
             fmt(r.get("sample_seconds"), ".1f"), fmt(r.get("calib_seconds"), ".1f")] for r in q["runs"]]
    _, y = draw_table(p.fig, (MARGIN, HEADER_BOTTOM - 0.2, WIDTH, 0.2), cols, rows)
    for line in format_quality_check(q):
        y = text_block(p.fig, MARGIN, y - 0.01, WIDTH, line, 9, color="red" if line.startswith("WARNING") else "black")
    notes = [f"{k}: {v}" for k, v in (q.get("basis") or {}).items()]
    text_block(p.fig, MARGIN, y - 0.01, WIDTH, "\n".join(notes), 8.5, color="#333333")
    return p


def samples_page(d: RunData) -> Page | None:
    if not d.images:
        return None
    from earlyq_sim.reports.grids import draw_sample_grids

    s = d.summary
    p = new_page("samples", "Samples from the same seeds: full precision, baseline, schedule",
                 basis_line(s) + " Quantized runs are integer emulation; first 64 images of each run.")
    fd = {} if d.quality is None else dict(zip(d.quality["run"], d.quality.get("fd", [np.nan] * len(d.quality))))
    labels = {"baseline": s["baseline"]["label"], "schedule": s["schedule"]["label"], "full precision": "fp32"}
    titles = {k: f"{k}\n{labels.get(k, '')}\nFD {fmt(fd.get(k), '.2f')}" for k in d.images}
    draw_sample_grids(p.fig, body_axes(p.fig, 1, len(d.images), bottom=0.08, left=MARGIN, right=1 - MARGIN),
                      d.images, titles)
    return p


RUN_PAGES = (title_page, stages_page, steps_page, layers_page, notes_page, quality_page, samples_page)


def build_run_pages(d: RunData) -> list[Page]:
    """Every page of a run's report, in order (pages without data, e.g. quality, left out)."""
    return [p for p in (f(d) for f in RUN_PAGES) if p is not None]
