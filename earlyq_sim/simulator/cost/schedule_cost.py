"""Cost of a whole sampling run: per-op costs expanded over a precision schedule.

Cost depends on bits only through the per-op evaluation, so each distinct ``StepBits`` of the
schedule is evaluated once (one vectorised ``evaluate`` call) and the steps that share bits share
the result. Units: cycles of the arch clock, milliseconds, millijoules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.mapper import describe_mappings
from earlyq_sim.schedule import PrecisionSchedule, StepBits
from earlyq_sim.simulator.cost.arch import ArchSpec

_PJ_PER_MJ = 1e9
ENERGY_PARTS = ("compute", "sram", "dram", "leak")


@dataclass(frozen=True)
class StepCost:
    """Totals of one UNet forward at given bits (one denoising step)."""

    bits: StepBits
    cycles: float
    compute_cycles: float  # sum over ops of compute-only cycles
    latency_ms: float
    energy_mj: dict  # part -> mJ, parts from ENERGY_PARTS plus "total"
    mem_bound_ops: int
    per_op: pd.DataFrame  # evaluate() output, one row per op
    dram_bytes: float = 0.0  # DRAM bytes of the forward
    compulsory_dram_bytes: float = 0.0  # the floor: every tensor moved once at its stored bits


@dataclass(frozen=True)
class ScheduleCost:
    """A schedule's cost on one arch: per distinct bits, per step and per stage."""

    arch_name: str
    schedule: PrecisionSchedule
    by_bits: dict  # StepBits -> StepCost
    per_step: pd.DataFrame
    per_stage: pd.DataFrame
    total: dict
    dataflow: str = "ws"  # the arch's dataflow (names the mapper's temporal dimension)


def keep_mask(ops: pd.DataFrame, schedule: PrecisionSchedule | None) -> np.ndarray | None:
    """Ops whose module the schedule holds at its keep bits (None: no op is held)."""
    if schedule is None or not schedule.keep:
        return None
    modules = ops["module"].astype(str).to_numpy()
    schedule.check_keep_matches(dict.fromkeys(modules), "the traced model")
    held = {m: schedule.keeps(m) for m in set(modules)}
    mask = np.fromiter((held[m] for m in modules), bool, len(modules))
    return mask if mask.any() else None


def step_cost(arch: ArchSpec, ops: pd.DataFrame, bits: StepBits, schedule: PrecisionSchedule | None = None) -> StepCost:
    """Evaluate one forward pass of ``ops`` on ``arch`` at ``bits``; ops of layers the
    ``schedule`` holds (``keep``) are evaluated at ``schedule.layer_bits``."""
    mask = keep_mask(ops, schedule)
    if mask is None:
        per_op = evaluate(arch, ops, bits)
    else:
        per_op = pd.concat([evaluate(arch, ops[~mask], bits),
                            evaluate(arch, ops[mask], schedule.held_bits)]).loc[ops.index]
    cycles = float(per_op["cycles"].sum())
    energy = {p: float(per_op[f"energy_{p}_pj"].sum()) / _PJ_PER_MJ for p in ENERGY_PARTS}
    energy["total"] = float(per_op["energy_pj"].sum()) / _PJ_PER_MJ
    mem_bound = int((per_op["mem_cycles"].to_numpy() > per_op["compute_cycles"].to_numpy()).sum())
    return StepCost(bits, cycles, float(per_op["compute_cycles"].sum()),
                    cycles / arch.clock_hz * 1e3, energy, mem_bound, per_op,
                    float(per_op["dram_bytes"].sum()), float(per_op["compulsory_dram_bytes"].sum()))


def schedule_cost(arch: ArchSpec, ops: pd.DataFrame, schedule: PrecisionSchedule) -> ScheduleCost:
    """Cost of every step of ``schedule`` on ``arch``; stages and totals summed from steps."""
    by_bits = {b: step_cost(arch, ops, b, schedule) for b in schedule.distinct_bits()}
    stages = schedule.stages()
    step_rows = []
    for st in stages:
        c = by_bits.get(st.bits)
        for i in range(st.step_start, st.step_end):
            row = {"step": i, "stage": st.index, "position": i / schedule.num_steps,
                   "weight_bits": st.bits.weight, "act_bits": st.bits.act, "prob_bits": st.bits.prob,
                   "cycles": c.cycles, "compute_cycles": c.compute_cycles, "latency_ms": c.latency_ms}
            row.update({f"energy_{p}_mj": c.energy_mj[p] for p in ENERGY_PARTS})
            row["energy_mj"] = c.energy_mj["total"]
            step_rows.append(row)
    per_step = pd.DataFrame(step_rows)
    per_step["cum_latency_ms"] = per_step["latency_ms"].cumsum()

    stage_rows = []
    for st in stages:
        c = by_bits.get(st.bits)
        n = st.steps
        row = {"stage": st.index, "start": st.start, "end": st.end, "steps": n,
               "step_start": st.step_start, "step_end": st.step_end,
               "weight_bits": st.bits.weight, "act_bits": st.bits.act, "prob_bits": st.bits.prob,
               "cycles": n * c.cycles if c else 0.0,
               "compute_cycles": n * c.compute_cycles if c else 0.0,
               "latency_ms": n * c.latency_ms if c else 0.0,
               "energy_mj": n * c.energy_mj["total"] if c else 0.0,
               "mem_bound_ops": c.mem_bound_ops if c else 0}
        row.update({f"energy_{p}_mj": (n * c.energy_mj[p] if c else 0.0) for p in ENERGY_PARTS})
        stage_rows.append(row)
    per_stage = pd.DataFrame(stage_rows)
    total = {"cycles": float(per_step["cycles"].sum()),
             "compute_cycles": float(per_step["compute_cycles"].sum()),
             "latency_ms": float(per_step["latency_ms"].sum()),
             "energy_mj": float(per_step["energy_mj"].sum())}
    total.update({f"energy_{p}_mj": float(per_step[f"energy_{p}_mj"].sum()) for p in ENERGY_PARTS})
    return ScheduleCost(arch.name, schedule, by_bits, per_step, per_stage, total, arch.array.dataflow)


def _ratio(num, den):
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def compare_totals(run: dict, baseline: dict, reference: dict | None = None) -> dict:
    """The comparison's definitions on totals (dicts with ``latency_ms``, ``compute_cycles``,
    ``energy_mj`` of the same steps; ``latency_ms`` alone gives ``speedup`` only): ``speedup`` and ``compute_speedup`` (latency and compute
    cycles, baseline / run), ``energy_saving`` (baseline / run energy) and, with ``reference``,
    ``speedup_vs_ref``. Used by :func:`compare` and by sweeps, so both state them once."""
    def r(num, den) -> float:  # scalar twin of _ratio (same IEEE division; sweeps call this per point)
        return float(num) / float(den) if den > 0 else float("nan")

    out = {"speedup": r(baseline["latency_ms"], run["latency_ms"])}
    if "compute_cycles" in run:
        out["compute_speedup"] = r(baseline["compute_cycles"], run["compute_cycles"])
    if "energy_mj" in run:
        out["energy_saving"] = r(baseline["energy_mj"], run["energy_mj"])
    if reference is not None:
        out["speedup_vs_ref"] = r(reference["latency_ms"], run["latency_ms"])
    return out


def compare(run: ScheduleCost, baseline: ScheduleCost, reference: ScheduleCost | None = None) -> ScheduleCost:
    """Add speedup columns to ``run``'s tables.

    ``speedup`` = baseline latency / run latency for the same steps on the same arch (the baseline
    is a uniform schedule, so per-step baseline cost is constant). ``compute_speedup`` uses compute
    cycles only, which shows what memory stalls and vector ops take away. ``speedup_vs_ref`` compares
    with ``reference`` (the baseline schedule on the reference arch, int8-systolic by default).
    """
    if not baseline.schedule.is_uniform:
        raise ValueError("the baseline must be a uniform schedule")
    if reference is not None and not reference.schedule.is_uniform:
        raise ValueError("the reference must be a uniform schedule")
    b = next(iter(baseline.by_bits.values()))
    ps, pst = run.per_step.copy(), run.per_stage.copy()
    ps["baseline_latency_ms"] = b.latency_ms
    ps["speedup"] = _ratio(b.latency_ms, ps["latency_ms"])
    ps["compute_speedup"] = _ratio(b.compute_cycles, ps["compute_cycles"])
    ps["energy_saving"] = _ratio(b.energy_mj["total"], ps["energy_mj"])
    pst["baseline_latency_ms"] = pst["steps"] * b.latency_ms
    pst["baseline_energy_mj"] = pst["steps"] * b.energy_mj["total"]
    pst["speedup"] = _ratio(pst["baseline_latency_ms"], pst["latency_ms"])
    pst["compute_speedup"] = _ratio(pst["steps"] * b.compute_cycles, pst["compute_cycles"])
    pst["energy_saving"] = _ratio(pst["baseline_energy_mj"], pst["energy_mj"])
    total = dict(run.total)
    total["baseline_latency_ms"] = baseline.total["latency_ms"]
    total["baseline_energy_mj"] = baseline.total["energy_mj"]
    ratios = compare_totals(run.total, baseline.total, None if reference is None else reference.total)
    total.update({k: ratios[k] for k in ("speedup", "compute_speedup", "energy_saving")})
    if reference is not None:
        r = next(iter(reference.by_bits.values()))
        ps["speedup_vs_ref"] = _ratio(r.latency_ms, ps["latency_ms"])
        pst["ref_latency_ms"] = pst["steps"] * r.latency_ms
        pst["speedup_vs_ref"] = _ratio(pst["ref_latency_ms"], pst["latency_ms"])
        total["ref_latency_ms"] = reference.total["latency_ms"]
        total["speedup_vs_ref"] = ratios["speedup_vs_ref"]
    return ScheduleCost(run.arch_name, run.schedule, run.by_bits, ps, pst, total, run.dataflow)


def per_layer_table(ops: pd.DataFrame, run: ScheduleCost, baseline: ScheduleCost) -> pd.DataFrame:
    """One row per (op, stage): shapes, cycles, traffic, utilisation and energy (by part) of one
    UNet forward (one denoising step) at the stage's bits, its mapping, and speedup."""
    b = next(iter(baseline.by_bits.values())).per_op
    frames = []
    for st in run.schedule.stages():
        if st.bits not in run.by_bits:
            continue
        c = run.by_bits[st.bits].per_op
        f = ops[["name", "module", "op", "unit", "operand_kind", "G", "M", "N", "K", "in_elems", "macs"]].copy()
        f.insert(0, "stage", st.index)
        f.insert(1, "values_per", "one UNet forward")  # the CSV says what its numbers count
        f["act_bits"], f["weight_bits"], f["prob_bits"] = st.bits.act, st.bits.weight, st.bits.prob
        f["cycles"] = c["cycles"].to_numpy()
        f["compute_cycles"] = c["compute_cycles"].to_numpy()
        f["mem_cycles"] = c["mem_cycles"].to_numpy()
        f["latency_cycles"] = c["cycles"].to_numpy()
        f["bound"] = np.where(f["mem_cycles"] > f["compute_cycles"], "memory", "compute")
        f["dram_bytes"] = c["dram_bytes"].to_numpy()
        f["compulsory_dram_bytes"] = c["compulsory_dram_bytes"].to_numpy()
        f["traffic_x_compulsory"] = _ratio(f["dram_bytes"], f["compulsory_dram_bytes"])
        f["mapping"] = describe_mappings(*(c[k].to_numpy() for k in ("map_cand", "map_order", "tile_m", "tile_n",
                                                                       "tile_k")), run.dataflow)
        f["sram_bytes"] = c["sram_bytes"].to_numpy()
        f["util"] = c["util"].to_numpy()
        for part in ("compute", "sram", "dram", "leak"):
            f[f"energy_{part}_uj"] = c[f"energy_{part}_pj"].to_numpy() / 1e6
        f["energy_uj"] = c["energy_pj"].to_numpy() / 1e6
        f["baseline_cycles"] = b["cycles"].to_numpy()
        f["speedup"] = _ratio(f["baseline_cycles"], f["cycles"])
        frames.append(f)
    return pd.concat(frames, ignore_index=True)
