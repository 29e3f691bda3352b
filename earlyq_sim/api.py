"""The Python API shared by the CLI and users.

Cost lane in one call::

    from earlyq_sim.api import cost_run
    r = cost_run("sd-v1.5", "stripes", "a4@0-0.4,a8@0.4-1")
    print(r.summary["total"]["speedup"])
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.fusion import costing_ops
from earlyq_sim.simulator.cost.schedule_cost import ScheduleCost, compare, per_layer_table, schedule_cost
from earlyq_sim.simulator.cost.topology import is_topology, read_topology
from earlyq_sim.simulator.cost.tracer import trace_model
from earlyq_sim.schedule import PrecisionSchedule, expand_keep

REFERENCE_ARCH = "int8-systolic"


@dataclass(frozen=True)
class CostRun:
    """Everything the cost lane computed for one (model, arch, schedule) design point."""

    model_name: str
    params: int
    ops: pd.DataFrame
    batch: int
    cfg: bool
    arch: object  # ArchSpec
    ref_arch: object  # ArchSpec
    schedule: PrecisionSchedule
    baseline: PrecisionSchedule
    run: ScheduleCost  # with speedup columns
    base: ScheduleCost
    ref: ScheduleCost
    per_layer: pd.DataFrame

    @property
    def macs_per_step(self) -> int:
        return int(self.ops["macs"].sum())

    @property
    def summary(self) -> dict:
        from earlyq_sim.reports.summary import cost_summary

        return cost_summary(self)


def default_num_steps(model: str) -> int:
    """The per-model default step count (DDIM 100 CIFAR-10, 200 LDM-4, 50 SD), 50 otherwise."""
    from earlyq_sim.models.registry import MODELS

    info = MODELS.get(model)
    return int(getattr(info, "default_steps", 50)) if info is not None else 50


def make_schedule(spec: str | PrecisionSchedule | None, num_steps: int, *, early_bits: int | None = None,
                  late_bits: int = 8, boundary: float = 0.4, weight_bits: int = 8,
                  prob_bits: int | None = None, keep: str | tuple[str, ...] | None = None) -> PrecisionSchedule:
    """Build a schedule from the interval form, or from the two-stage shorthand when spec is None.

    ``keep``: layer patterns held at 8 bits (added to any ``k8:`` token of ``spec``)."""
    if isinstance(spec, PrecisionSchedule):
        sch = spec.with_steps(num_steps)
    elif spec:
        sch = PrecisionSchedule.parse(spec, num_steps, weight_bits=weight_bits, prob_bits=prob_bits)
    else:
        sch = PrecisionSchedule.two_stage(4 if early_bits is None else early_bits, late_bits, boundary,
                                          num_steps, weight_bits=weight_bits, prob_bits=prob_bits)
    if keep:
        sch = sch.with_keep(sch.keep + expand_keep(keep), sch.keep_bits)
    return sch


def cost_run(model: str, arch: str, schedule: str | PrecisionSchedule | None = None, *,
             baseline: str = "W8A8", num_steps: int | None = None, batch: int = 1, cfg: bool = False,
             ref_arch: str = REFERENCE_ARCH, **schedule_kw) -> CostRun:
    """Trace ``model``, cost ``schedule`` and ``baseline`` on ``arch`` and the baseline on ``ref_arch``.

    ``model`` may also be a SCALE-Sim topology CSV (``simulator/cost/topology.py``): its layers
    are costed as one UNet call, one step unless ``num_steps`` says otherwise."""
    if is_topology(model):
        if batch != 1 or cfg:
            from earlyq_sim.errors import UserError
            raise UserError(f"{model}: --batch and --cfg apply to traced models; a topology CSV lists its layers as run")
        trace = read_topology(model)
        steps = num_steps or 1
    else:
        trace = trace_model(model, batch=batch, cfg=cfg)
        steps = num_steps or default_num_steps(model)
    sched = make_schedule(schedule, steps, **schedule_kw)
    base = PrecisionSchedule.parse(baseline, steps, prob_bits=schedule_kw.get("prob_bits"))
    if not base.is_uniform:
        from earlyq_sim.errors import UserError

        raise UserError(f"--baseline {baseline!r}: the baseline must be uniform, e.g. W8A8 or W4A8")
    spec = load_arch(arch)
    ref_spec = spec if ref_arch == spec.name else load_arch(ref_arch)
    ops = costing_ops(trace)  # the op table plus the GEMM epilogue each vector op may fuse into
    run_c = schedule_cost(spec, ops, sched)
    base_c = schedule_cost(spec, ops, base)
    ref_c = base_c if ref_spec is spec else schedule_cost(ref_spec, ops, base)
    run_c = compare(run_c, base_c, ref_c)
    layers = per_layer_table(ops, run_c, base_c)
    return CostRun(trace.model_name, int(trace.params), ops, batch, cfg, spec, ref_spec, sched, base,
                   run_c, base_c, ref_c, layers)
