"""The summary of a run as a plain dict (written as summary.json, printed with --json) and as text.

Every number names its unit in its key (``latency_ms``, ``energy_mj``) and the ``basis`` block
says what it was measured on: which arch, which schedule, which baseline.
"""

from __future__ import annotations

import numpy as np

from earlyq_sim.provenance import provenance
from earlyq_sim.simulator.cost.arch_dict import arch_to_dict


def _f(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def cost_summary(r) -> dict:
    """Summary dict of a :class:`earlyq_sim.api.CostRun`."""
    stages = []
    for row in r.run.per_stage.to_dict("records"):
        stages.append({
            "stage": int(row["stage"]), "start": float(row["start"]), "end": float(row["end"]),
            "steps": int(row["steps"]), "step_start": int(row["step_start"]), "step_end": int(row["step_end"]),
            "act_bits": int(row["act_bits"]), "weight_bits": int(row["weight_bits"]),
            "prob_bits": int(row["prob_bits"]),
            "cycles": float(row["cycles"]), "latency_ms": float(row["latency_ms"]),
            "energy_mj": float(row["energy_mj"]),
            "energy_breakdown_mj": {p: float(row[f"energy_{p}_mj"]) for p in ("compute", "sram", "dram", "leak")},
            "baseline_latency_ms": float(row["baseline_latency_ms"]),
            "speedup": _f(row["speedup"]), "compute_speedup": _f(row["compute_speedup"]),
            "energy_saving": _f(row["energy_saving"]),
            "speedup_vs_ref": _f(row["speedup_vs_ref"]),
            "mem_bound_ops": int(row["mem_bound_ops"]),
        })
    t = r.run.total
    gemm = r.ops["unit"] == "gemm"
    return {
        "model": {
            "name": r.model_name, "params": int(r.params), "macs_per_step": int(r.macs_per_step),
            "macs_per_step_conv_linear": int(r.ops.loc[r.ops["op"].isin(["conv", "linear"]), "macs"].sum()),
            "gemm_ops": int(gemm.sum()), "vector_ops": int((~gemm).sum()),
            "batch": r.batch, "cfg": r.cfg,
        },
        "arch": {"name": r.arch.name, "clock_mhz": r.arch.clock_hz / 1e6},
        "reference_arch": {"name": r.ref_arch.name},
        "schedule": r.schedule.to_dict(),
        "baseline": r.baseline.to_dict(),
        "stages": stages,
        "total": {
            "steps": r.schedule.num_steps,
            "cycles": float(t["cycles"]), "latency_ms": float(t["latency_ms"]),
            "energy_mj": float(t["energy_mj"]),
            "energy_breakdown_mj": {p: float(t[f"energy_{p}_mj"]) for p in ("compute", "sram", "dram", "leak")},
            "baseline_latency_ms": float(t["baseline_latency_ms"]),
            "baseline_energy_mj": float(t["baseline_energy_mj"]),
            "speedup": _f(t["speedup"]), "compute_speedup": _f(t["compute_speedup"]),
            "energy_saving": _f(t["energy_saving"]),
            "ref_latency_ms": _f(t["ref_latency_ms"]), "speedup_vs_ref": _f(t["speedup_vs_ref"]),
        },
        "basis": {
            "speedup": f"latency of baseline {r.baseline.label} / latency of the schedule, both on arch "
                       f"{r.arch.name}, same steps",
            "compute_speedup": "same ratio using compute cycles only (no memory stalls)",
            "speedup_vs_ref": f"latency of baseline {r.baseline.label} on arch {r.ref_arch.name} / latency of "
                              f"the schedule on arch {r.arch.name}",
            "energy_saving": f"energy of baseline {r.baseline.label} / energy of the schedule on arch {r.arch.name}",
            "units": {"cycles": f"cycles of the {r.arch.name} clock", "latency_ms": "milliseconds",
                      "energy_mj": "millijoules", "macs_per_step": "multiply-accumulates per UNet forward",
                      "area_mm2": "mm^2 at the arch's node", "tops": "2 ops per MAC, 1e12 per second",
                      "tops_per_w": "peak: core only (8x8-bit MAC energy + leakage); achieved: whole run energy"},
            "normalisation": r.normalisation.get("note", "as specified"),
        },
        "hardware": {"arch": hardware_block(r.arch, r.run.total, r.macs_per_step * r.schedule.num_steps,
                                            f"schedule {r.schedule.label}"),
                     "reference_arch": hardware_block(r.ref_arch, r.ref.total, r.macs_per_step * r.schedule.num_steps,
                                                      f"baseline {r.baseline.label}"),
                     "normalisation": dict(r.normalisation),
                     "speedup_vs_ref_by_normalisation": {k: {kk: v[kk] for kk in ("note", "speedup_vs_ref",
                                                                                   "stage_speedup_vs_ref")}
                                                         for k, v in r.normalisations.items()}},
        "quality": {"computed": False,
                    "note": "image quality is not computed for this model in the cost lane"},
        "provenance": {**provenance(), "arch_spec": arch_to_dict(r.arch), "reference_arch_spec": arch_to_dict(r.ref_arch),
                       "arch_source": r.arch.source},
    }


def hardware_block(arch, total, macs, run: str) -> dict:
    """Node, area (mm^2 by component, or null without an ``area:`` section) and efficiency of
    ``arch`` running ``macs`` MACs in ``total`` (a schedule-cost total of ``run``)."""
    from earlyq_sim.simulator.cost import technology as tech
    from earlyq_sim.simulator.cost.area import arch_area, efficiency

    t = arch.technology
    area = None
    if arch.area is not None:
        a = arch_area(arch)
        area = {"total": a.total_mm2, "pe_array": a.array_mm2, "sram": a.sram_mm2, "overhead": a.overhead_mm2,
                "pe_um2": a.pe_um2, "source": arch.area.source}
    eff = efficiency(arch, macs, float(total["latency_ms"]) / 1e3, float(total["energy_mj"]) / 1e3)
    return {"name": arch.name, "pes": arch.array.rows * arch.array.cols,
            "array": f"{arch.array.rows}x{arch.array.cols}", "node_nm": t.node_nm, "vdd": t.vdd,
            "tables_nm": t.tables_nm, "scaling_model": tech.MODEL if t.node_nm != t.tables_nm or t.vdd != t.tables_vdd
            else "none (the design is at the tables' node and supply)",
            "area_mm2": area, "efficiency": {k: _f(v) for k, v in eff.items()}, "achieved_by": run}


def format_stage_table(summary: dict) -> str:
    """The per-stage table as aligned text, with units and basis in the header and footer."""
    s = summary
    head = (f"model {s['model']['name']} ({s['model']['params'] / 1e6:.2f} M params, "
            f"{s['model']['macs_per_step'] / 1e9:.2f} GMACs/step), arch {s['arch']['name']} @ "
            f"{s['arch']['clock_mhz']:g} MHz, schedule {s['schedule']['label']}, baseline {s['baseline']['label']}, "
            f"{s['total']['steps']} steps")
    t = s["total"]
    # one unit per column, scaled so the largest figure reads without an exponent
    lat_u, lat_k = ("s", 1e-3) if t["latency_ms"] >= 1e3 else ("ms", 1.0)
    en_u, en_k = ("J", 1e-3) if t["energy_mj"] >= 1e3 else ("mJ", 1.0)
    cols = ["stage", "steps", "bits", "cycles", f"latency {lat_u}", f"energy {en_u}", "speedup", "compute x",
            f"vs {s['reference_arch']['name']}"]
    rows = []

    def num(x, k):
        x *= k
        return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"

    def fmt(x, spec):
        return "n/a" if x is None else format(x, spec)

    for st in s["stages"]:
        rows.append([f"{st['start']:g}-{st['end']:g}", str(st["steps"]),
                     f"W{st['weight_bits']}A{st['act_bits']}" + ("" if st["prob_bits"] == st["act_bits"]
                                                                 else f"P{st['prob_bits']}"),
                     f"{round(st['cycles']):,}", num(st["latency_ms"], lat_k), num(st["energy_mj"], en_k),
                     fmt(st["speedup"], ".3f"), fmt(st["compute_speedup"], ".3f"), fmt(st["speedup_vs_ref"], ".3f")])
    rows.append(["total", str(t["steps"]), "", f"{round(t['cycles']):,}", num(t["latency_ms"], lat_k),
                 num(t["energy_mj"], en_k), fmt(t["speedup"], ".3f"), fmt(t["compute_speedup"], ".3f"),
                 fmt(t["speedup_vs_ref"], ".3f")])
    q = s.get("quality", {})
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = [head, ""]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    lines.append("")
    lines.append(f"speedup: baseline {s['baseline']['label']} latency / schedule latency on {s['arch']['name']}; "
                 "compute x: the same with compute cycles only;")
    lines.append(f"vs {s['reference_arch']['name']}: baseline latency on {s['reference_arch']['name']} / "
                 f"schedule latency on {s['arch']['name']}.")
    lines.append(f"energy: {num(t['energy_mj'], en_k)} {en_u} vs baseline {num(t['baseline_energy_mj'], en_k)} {en_u} "
                 f"(saving x{fmt(t['energy_saving'], '.3f')}); cycles of the {s['arch']['name']} clock "
                 "(rounded to whole cycles).")
    lines += format_hardware(s)
    if s["schedule"].get("chosen_by"):
        lines.append(f"schedule: {s['schedule']['chosen_by']}")
    if q.get("computed"):
        from earlyq_sim.reports.quality import format_quality_table

        lines += ["", format_quality_table(q)]
        lines += format_quality_check(q)
    else:
        lines.append(f"quality: not computed ({q.get('note', '')})")
    lines += format_provenance(s)
    return "\n".join(lines)


def format_hardware(s: dict) -> list[str]:
    """Lines on area, node, normalisation, TOPS/W, and speedup vs the reference at iso-throughput
    and iso-area, for the arch and the reference arch."""
    h = s.get("hardware")
    if not h:
        return []
    lines = ["", f"hardware (normalisation: {h['normalisation'].get('note', 'as specified')}):"]
    for key in ("arch", "reference_arch"):
        b = h[key]
        a = b["area_mm2"]
        area = ("area not modelled (no area: section)" if a is None else
                f"{a['total']:.3f} mm^2 (PE array {a['pe_array']:.3f}, SRAM {a['sram']:.3f}, other {a['overhead']:.3f})")
        e = b["efficiency"]
        tpw = "n/a" if e["achieved_tops_per_w"] is None else f"{e['achieved_tops_per_w']:.3f}"
        lines.append(f"  {b['name']}: {b['array']} PEs, {b['node_nm']:g} nm {b['vdd']:g} V, {area}; peak "
                     f"{e['peak_tops']:.4g} TOPS, {e['peak_core_tops_per_w']:.3f} TOPS/W core; {b['achieved_by']} "
                     f"{tpw} TOPS/W")
    ref = s["reference_arch"]["name"]
    for mode, v in h["speedup_vs_ref_by_normalisation"].items():
        if v["speedup_vs_ref"] is None:
            lines.append(f"  vs {ref} at {mode}: n/a ({v['note']})")
            continue
        stages = ", ".join("n/a" if x is None else f"{x:.3f}" for x in v["stage_speedup_vs_ref"])
        lines.append(f"  vs {ref} at {mode}: {v['speedup_vs_ref']:.3f}x in total, per stage {stages} ({v['note']})")
    return lines


def format_provenance(s: dict) -> list[str]:
    """One or two lines: tool version and commit, date, command line, where the arch came from."""
    p = s.get("provenance")
    if not p:
        return []
    g = p.get("git") or {}
    commit = "" if not g.get("commit") else f", git {g['commit'][:10]}{' (modified)' if g.get('dirty') else ''}"
    lines = ["", f"provenance: earlyq-sim {p['version']}{commit}, {p['date_utc']}; arch file {p['arch_source']}"]
    if p.get("command_line"):
        lines.append(f"command: {p['command_line']}")
    return lines


def format_quality_check(q: dict) -> list[str]:
    """The quality verdict: a warning line when the schedule loses the baseline's quality."""
    if not q.get("check"):
        return []
    c = q["check"]
    detail = _check_detail(c)
    if c["ok"]:
        return [f"quality check: kept. {detail}"]
    return ["WARNING: image quality is not kept: " + "; ".join(c["reasons"]), f"quality check: {detail}"]


def _check_detail(c: dict) -> str:
    lo, hi = c["fd_delta_ci95"]
    return (f"FD {c['fd_schedule']:.2f} vs baseline {c['fd_baseline']:.2f} (difference {c['fd_delta']:+.2f}, 95% "
              f"paired interval [{lo:.2f}, {hi:.2f}], limit {c['fd_limit']:.2f}); PSNR vs full precision "
              f"{c['psnr_db']:.1f} dB (minimum {c['psnr_min_db']:g})")
