"""The pages of a sweep's report (`earlyq-sim report DIR` on a `sweep --out` folder): what was
swept, Pareto fronts (speed and energy against FD per arch when the sweep measured quality, else
speedup against energy and area), the best point of every arch variant, and the top results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from earlyq_sim.reports.inputs import SweepData
from earlyq_sim.reports.plots import LEGEND_ABOVE
from earlyq_sim.reports.page import HEADER_BOTTOM, MARGIN, Page, body_axes, new_page, text_block
from earlyq_sim.reports.run_pages import fmt
from earlyq_sim.reports.table import draw_facts, draw_table
from earlyq_sim.workloads.sweeps.pareto import pareto_front

WIDTH = 1 - 2 * MARGIN
ARCHS_PER_PAGE = 4
TOP_RESULTS = 30
MAX_VARIANTS = 24


@dataclass(frozen=True)
class Objective:
    column: str
    label: str  # axis label, with its unit and basis
    short: str  # table header and page titles, with its unit
    better: str  # "higher" | "lower"
    spec: str = ".4g"


OBJECTIVES = {o.column: o for o in (
    Objective("speedup", "speedup over the baseline, same arch (x)", "speedup x", "higher", ".3f"),
    Objective("speedup_vs_ref", "speedup vs the baseline on the reference arch (x)", "vs ref x", "higher", ".3f"),
    Objective("energy_mj", "energy per sampling run (mJ)", "energy mJ", "lower"),
    Objective("area_mm2", "arch area (mm^2)", "area mm^2", "lower", ".3f"),
    Objective("fd", "FD vs the test statistics (lower is better)", "FD", "lower", ".2f"),
    Objective("psnr_db", "PSNR vs full precision (dB)", "PSNR dB", "higher", ".2f"),
    Objective("psnr_db_mean", "PSNR vs full precision (dB)", "PSNR dB", "higher", ".2f"),
    Objective("ssim_mean", "SSIM vs full precision", "SSIM", "higher", ".4f"),
)}
QUALITY_COLUMNS = ("fd", "psnr_db", "psnr_db_mean", "ssim_mean", "precision", "recall")


def has_values(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any()


def override_columns(df: pd.DataFrame) -> list[str]:
    """Arch-override columns (dotted field paths) and the normalisation, where they vary."""
    cols = [c for c in df.columns if "." in c or c == "normalise"]
    return [c for c in cols if df[c].nunique(dropna=False) > 1]


def variant_labels(df: pd.DataFrame) -> pd.Series:
    """'arch' or 'arch (field=value, ...)' per row: one arch variant of the sweep."""
    cols = override_columns(df)
    lab = df["arch"].astype(str)
    if cols:
        lab = lab + " (" + df[cols].astype(str).apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items()),
                                                      axis=1) + ")"
    return lab


def _basis(df: pd.DataFrame) -> str:
    base = ", ".join(sorted(map(str, df["baseline"].unique())))
    steps = ", ".join(sorted({str(int(s)) for s in df["num_steps"].dropna()}))
    return (f"Sweep of {len(df)} points; baseline {base} on each point's own arch; {steps} steps. "
            "Latency ms, energy mJ per whole sampling run; ratios x over the baseline (> 1 is better).")


def title_page(d: SweepData) -> Page:
    df = d.results
    name = d.manifest.get("name") or Path(d.source).name or "sweep"
    p = new_page("title", f"earlyq-sim sweep report: {name}", _basis(df))
    scheds = list(dict.fromkeys(map(str, df["schedule"])))
    overrides = override_columns(df)
    m = d.manifest
    quality = [c for c in QUALITY_COLUMNS if has_values(df, c)]
    facts = [
        ["models", ", ".join(dict.fromkeys(map(str, df["model"])))],
        ["archs", ", ".join(dict.fromkeys(map(str, df["arch"])))],
        ["arch overrides", "; ".join(f"{c}: {', '.join(map(str, sorted(df[c].unique(), key=str)))}" for c in overrides)
         or "none"],
        ["normalisation", ", ".join(map(str, df["normalise"].unique())) if "normalise" in df else "as specified"],
        ["schedules", f"{len(scheds)}: " + "; ".join(scheds[:40]) + (" ..." if len(scheds) > 40 else "")],
        ["baseline", ", ".join(map(str, df["baseline"].unique())) + " (uniform, on each point's arch)"],
        ["steps", ", ".join(sorted({str(int(s)) for s in df["num_steps"].dropna()}))],
        ["quality", ", ".join(quality) + " (per point)" if quality else "not measured (cost-only sweep)"],
        ["Pareto column", "present (marked in the results table)" if "pareto" in df else "absent"],
        ["spec, run", f"{m.get('source', '?')}; {m.get('points', len(df))} points, {m.get('computed', '?')} computed, "
                      f"{fmt(m.get('seconds'), '.1f')} s" if m else "no manifest.json"],
        ["units", "latency_ms: milliseconds per sampling run; energy_mj: millijoules per run; area_mm2: mm^2 at the "
                  "arch's node; speedup, speedup_vs_ref, energy_saving: x over the baseline"],
    ]
    y = draw_facts(p.fig, MARGIN, HEADER_BOTTOM - 0.01, WIDTH, facts)
    text_block(p.fig, MARGIN, y - 0.02, WIDTH, (
        "speedup: baseline latency / point latency on the same arch variant; speedup_vs_ref: baseline latency on the "
        "sweep's reference arch / point latency; energy_saving: baseline energy / point energy. Pareto fronts are "
        "computed here per model (and per arch on quality plots) with workloads/sweeps/pareto.pareto_front."), 8.5)
    return p


@dataclass(frozen=True)
class Panel:
    """One Pareto plot: ``y`` against ``x`` over ``rows`` (index labels of the results), front per ``by``."""

    title: str
    x: str
    y: str
    rows: pd.Index
    by: tuple = ("model",)


def pareto_layouts(df: pd.DataFrame) -> list[tuple[str, list[Panel]]]:
    """(page title, panels) per Pareto page of one model's rows: with a quality column, speedup
    and energy against it, one panel per arch (front per arch); without, speedup vs the
    reference arch against energy and (where it varies) area, all arch variants together."""
    q = next((c for c in ("fd", "psnr_db", "psnr_db_mean") if has_values(df, c)), None)
    if q:
        out = []
        for y in ("speedup", "energy_mj"):
            m = df.dropna(subset=[q, y])
            archs = list(dict.fromkeys(m["arch"]))
            for k in range(0, len(archs), ARCHS_PER_PAGE):
                chunk = archs[k:k + ARCHS_PER_PAGE]
                title = f"{'Speedup' if y == 'speedup' else 'Energy'} vs {OBJECTIVES[q].short} per arch" + (
                    f" ({', '.join(chunk)})" if len(archs) > ARCHS_PER_PAGE else "")
                out.append((title, [Panel(f"arch {a}", q, y, m.index[m["arch"] == a], ("model", "arch"))
                                    for a in chunk]))
        return out
    panels = [Panel("speedup vs energy", "energy_mj", "speedup_vs_ref", df.dropna(subset=["energy_mj"]).index)]
    if has_values(df, "area_mm2") and df["area_mm2"].nunique() > 1:
        panels.append(Panel("speedup vs area", "area_mm2", "speedup_vs_ref", df.dropna(subset=["area_mm2"]).index))
    return [("Speed against energy and area, all arch variants", panels)]


def _front(df: pd.DataFrame, x: str, y: str, by: tuple) -> pd.Series:
    ox, oy = OBJECTIVES[x], OBJECTIVES[y]
    mx = tuple(o.column for o in (ox, oy) if o.better == "higher")
    mn = tuple(o.column for o in (ox, oy) if o.better == "lower")
    return pareto_front(df, mx, mn, by)


def _scatter(ax, df, x, y, front, numbers, color_by):
    groups = list(dict.fromkeys(df[color_by]))
    cmap = plt_cmap(len(groups))
    for i, g in enumerate(groups):
        s = df[df[color_by] == g]
        ax.scatter(s[x], s[y], s=14, color=cmap[i], alpha=0.55, label=str(g))
    f = df[front].sort_values(x)
    ax.plot(f[x], f[y], ":", color="black", lw=0.9, zorder=3)
    ax.scatter(f[x], f[y], s=40, facecolors="none", edgecolors="black", lw=1.1, zorder=4, label="Pareto front")
    for k, (idx, r) in enumerate(f.iterrows()):  # alternate sides so neighbours' numbers do not collide
        ax.annotate(str(numbers[idx]), (r[x], r[y]), textcoords="offset points",
                    xytext=(5, 3) if k % 2 else (-5, -9), ha="left" if k % 2 else "right", fontsize=7,
                    annotation_clip=True)
    base = f"baseline_{x}"
    if x in QUALITY_COLUMNS and base in df and df[base].notna().any():  # the baseline's quality, for scale
        ax.axvline(float(df[base].median()), color="grey", ls="--", lw=0.8, label=f"baseline {OBJECTIVES[x].short}")
    ax.set_xlabel(OBJECTIVES[x].label, fontsize=8)
    ax.set_ylabel(OBJECTIVES[y].label, fontsize=8)
    ax.tick_params(labelsize=7)


def plt_cmap(n: int) -> list:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def pareto_pages(d: SweepData) -> list[Page]:
    """A plot page and a table page of its numbered front points, per model and layout."""
    pages = []
    df = d.results.copy()
    df["variant"] = variant_labels(df)
    for model, mdf in df.groupby("model", sort=False):
        for title, panels in pareto_layouts(mdf):
            panels = [pn for pn in panels if len(pn.rows)]
            if panels:
                pages += _pareto_page(mdf, model, title, panels)
    return pages


def _pareto_page(m, model, title, panels: list[Panel]) -> list[Page]:
    fronts = [_front(m.loc[pn.rows], pn.x, pn.y, pn.by) for pn in panels]
    on = [idx for f in fronts for idx in f.index[f.to_numpy()]]
    numbers = {idx: i + 1 for i, idx in enumerate(dict.fromkeys(on))}
    objectives = list(dict.fromkeys(c for pn in panels for c in (pn.x, pn.y)))
    basis = (f"{model}: {'; '.join(dict.fromkeys(f'{OBJECTIVES[pn.y].label} against {OBJECTIVES[pn.x].label}' for pn in panels))}"
             f"; circled and numbered: the Pareto front ({'per arch' if panels[0].by != ('model',) else 'over all arch variants'}"
             f", numbers listed on the next page). " + _basis(m))
    p = new_page(f"pareto_{'_'.join(objectives)}", f"{title}: {model}", basis)
    n = len(panels)
    axes = body_axes(p.fig, 2 if n > 2 else 1, 1 if n == 1 else 2, bottom=0.1, hspace=0.45, wspace=0.25)
    for ax, pn, f in zip(axes, panels, fronts):
        s = m.loc[pn.rows]
        _scatter(ax, s, pn.x, pn.y, f, numbers, "schedule" if pn.by != ("model",) and s["schedule"].nunique() <= 10
                 else "variant")
        ax.set_title(pn.title, fontsize=9)
        ax.legend(fontsize=6, loc="best")
    for ax in axes[n:]:
        ax.axis("off")
    return [p, _front_table_page(m, numbers, fronts, panels, model, title, objectives)]


def _front_table_page(m, numbers, fronts, panels, model, title, objectives) -> Page:
    extra = [c for c in ("fd", "psnr_db", "psnr_db_mean") if has_values(m, c) and c not in objectives]
    shown = [*objectives, *extra]
    cols = ["#", "arch variant", "schedule", *(OBJECTIVES[c].short for c in shown), "latency ms", "energy saving x",
            "on the front of"]
    rows = []
    for idx, k in numbers.items():
        r = m.loc[idx]
        where = ", ".join(pn.title for pn, f in zip(panels, fronts) if idx in f.index and f.loc[idx])
        rows.append([str(k), r["variant"], str(r["schedule"]), *(fmt(r[c], OBJECTIVES[c].spec) for c in shown),
                     fmt(r["latency_ms"]), fmt(r.get("energy_saving"), ".3f"), where])
    p = new_page(f"front_{'_'.join(objectives)}", f"Pareto front points: {title.lower()}, {model}",
                 f"{len(rows)} points on a front. " + _basis(m))
    n, _ = draw_table(p.fig, (MARGIN, 0.08, WIDTH, HEADER_BOTTOM - 0.1), cols, rows)
    if n < len(rows):
        text_block(p.fig, MARGIN, 0.075, WIDTH, f"{len(rows) - n} more front points did not fit; `earlyq-sim pareto "
                   "DIR` marks them in a pareto column of the results.", 8, bottom=0.03)
    return p


def best_page(d: SweepData) -> Page:
    df = d.results.copy()
    df["variant"] = variant_labels(df)
    best = df.loc[df.groupby(["model", "variant"], sort=False)["speedup"].idxmax().dropna()]
    best = best.sort_values("speedup", ascending=False).head(MAX_VARIANTS)
    multi = df["model"].nunique() > 1
    labels = [(f"{r.model}: " if multi else "") + r.variant for r in best.itertuples()]
    p = new_page("best", "Best schedule of each arch variant (highest speedup)",
                 f"Bars: ratios over the baseline on the same arch variant, and speedup vs the reference arch. "
                 f"{min(len(best), MAX_VARIANTS)} variants shown. " + _basis(df))
    ax, = body_axes(p.fig, 1, 1, left=0.36, bottom=0.08)
    yy = np.arange(len(best))[::-1]
    for i, (col, name, c) in enumerate((("speedup", "speedup", "#4C72B0"),
                                        ("speedup_vs_ref", "speedup vs reference arch", "#DD8452"),
                                        ("energy_saving", "energy saving", "#55A868"))):
        if col in best:
            ax.barh(yy + (1 - i) * 0.27, best[col].astype(float), 0.26, color=c, label=name)
    from earlyq_sim.reports.page import ellipsize

    ax.set_yticks(yy, [ellipsize(p.fig, f"{lab} | {s}", 7, 0.3) for lab, s in zip(labels, best["schedule"])],
                  fontsize=7)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("ratio over the baseline (x)")
    ax.set_ylabel("arch variant | its best schedule", fontsize=8)
    ax.legend(**LEGEND_ABOVE)
    return p


def _yes_no(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else ("yes" if bool(v) else "NO")


def results_page(d: SweepData) -> Page:
    df = d.results.copy()
    df["variant"] = variant_labels(df)
    top = df.sort_values("speedup", ascending=False).head(TOP_RESULTS)
    q = [c for c in QUALITY_COLUMNS if has_values(df, c)]
    cols = ["model", "arch variant", "schedule", "latency ms", "energy mJ", "speedup x", "vs ref x", "energy saving x",
            *q, *(["quality kept"] if "quality_ok" in df else []), *(["Pareto"] if "pareto" in df else [])]
    rows = [[str(r["model"]), r["variant"], str(r["schedule"]), fmt(r["latency_ms"]), fmt(r["energy_mj"]),
             fmt(r["speedup"], ".3f"), fmt(r.get("speedup_vs_ref"), ".3f"), fmt(r.get("energy_saving"), ".3f"),
             *(fmt(r[c], ".3g") for c in q), *([_yes_no(r["quality_ok"])] if "quality_ok" in df else []),
             *(["yes" if r["pareto"] else ""] if "pareto" in df else [])]
            for _, r in top.iterrows()]
    marked = {i for i, (_, r) in enumerate(top.iterrows()) if "pareto" in df and bool(r["pareto"])}
    p = new_page("results", f"Top {len(top)} of {len(df)} points by speedup",
                 ("Highlighted: on the front of the table's pareto column. " if "pareto" in df else "") + _basis(df))
    draw_table(p.fig, (MARGIN, 0.06, WIDTH, HEADER_BOTTOM - 0.08), cols, rows, highlight=marked)
    return p


def build_sweep_pages(d: SweepData) -> list[Page]:
    """Every page of a sweep's report, in order."""
    return [title_page(d), *pareto_pages(d), best_page(d), results_page(d)]
