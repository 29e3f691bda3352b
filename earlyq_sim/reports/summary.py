"""The summary of a run as a plain dict (written as summary.json, printed with --json) and as text.

Every number names its unit in its key (``latency_ms``, ``energy_mj``) and the ``basis`` block
says what it was measured on: which arch, which schedule, which baseline.
"""

from __future__ import annotations

import numpy as np


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
                      "energy_mj": "millijoules", "macs_per_step": "multiply-accumulates per UNet forward"},
        },
        "quality": {"computed": False,
                    "note": "image quality is not computed for this model in the cost lane"},
    }


def format_stage_table(summary: dict) -> str:
    """The per-stage table as aligned text, with units and basis in the header and footer."""
    s = summary
    head = (f"model {s['model']['name']} ({s['model']['params'] / 1e6:.2f} M params, "
            f"{s['model']['macs_per_step'] / 1e9:.2f} GMACs/step), arch {s['arch']['name']} @ "
            f"{s['arch']['clock_mhz']:g} MHz, schedule {s['schedule']['label']}, baseline {s['baseline']['label']}, "
            f"{s['total']['steps']} steps")
    cols = ["stage", "steps", "bits", "cycles", "latency ms", "energy mJ", "speedup", "compute x",
            f"vs {s['reference_arch']['name']}"]
    rows = []

    def fmt(x, spec):
        return "n/a" if x is None else format(x, spec)

    for st in s["stages"]:
        rows.append([f"{st['start']:g}-{st['end']:g}", str(st["steps"]),
                     f"W{st['weight_bits']}A{st['act_bits']}" + ("" if st["prob_bits"] == st["act_bits"]
                                                                 else f"P{st['prob_bits']}"),
                     f"{st['cycles']:.4g}", f"{st['latency_ms']:.4g}", f"{st['energy_mj']:.4g}",
                     fmt(st["speedup"], ".3f"), fmt(st["compute_speedup"], ".3f"), fmt(st["speedup_vs_ref"], ".3f")])
    t = s["total"]
    rows.append(["total", str(t["steps"]), "", f"{t['cycles']:.4g}", f"{t['latency_ms']:.4g}",
                 f"{t['energy_mj']:.4g}", fmt(t["speedup"], ".3f"), fmt(t["compute_speedup"], ".3f"),
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
    lines.append(f"energy: {t['energy_mj']:.4g} mJ vs baseline {t['baseline_energy_mj']:.4g} mJ "
                 f"(saving x{fmt(t['energy_saving'], '.3f')}); cycles of the {s['arch']['name']} clock.")
    if q.get("computed"):
        from earlyq_sim.reports.quality import format_quality_table

        lines += ["", format_quality_table(q)]
    else:
        lines.append(f"quality: not computed ({q.get('note', '')})")
    return "\n".join(lines)
