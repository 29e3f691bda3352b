"""The Python API shared by the CLI and users.

Cost lane in one call::

    from earlyq_sim.api import cost_run
    r = cost_run("sd-v1.5", "stripes", "a4@0-0.4,a8@0.4-1")
    print(r.summary["total"]["speedup"])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.fusion import costing_ops
from earlyq_sim.simulator.cost.normalise import normalise as normalise_arch
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
    #: normalisation applied to ``arch`` against ``ref_arch``: mode, reference, note; and, per
    #: comparison normalisation (iso-throughput, iso-area), the schedule's speedup vs the reference
    normalisation: dict = field(default_factory=dict)
    normalisations: dict = field(default_factory=dict)

    @property
    def macs_per_step(self) -> int:
        return int(self.ops["macs"].sum())

    @property
    def summary(self) -> dict:
        from earlyq_sim.reports.summary import cost_summary

        return cost_summary(self)


def default_num_steps(model: str) -> int:
    """The per-model default step count (``ModelInfo.default_steps``: DDIM 100 CIFAR-10, 200 LDM-4,
    50 SD/SDXL/DiT, 28 SD3, 20 PixArt-alpha, 4 FLUX.1 schnell), 50 otherwise."""
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
    return sch.check_stages()  # an interval rounding to no step is an error, not a dropped stage


def cost_run(model: str, arch: str, schedule: str | PrecisionSchedule | None = None, *,
             baseline: str = "W8A8", num_steps: int | None = None, batch: int = 1, cfg: bool = False,
             ref_arch: str = REFERENCE_ARCH, normalise: str = "as-specified", **schedule_kw) -> CostRun:
    """Trace ``model``, cost ``schedule`` and ``baseline`` on ``arch`` and the baseline on ``ref_arch``.

    ``normalise`` (``normalise.py``: as-specified, iso-throughput, iso-area) resizes ``arch``'s PE
    array against ``ref_arch`` first; the schedule's speedup vs the reference is also reported at
    iso-throughput and at iso-area (``CostRun.normalisations``).

    ``model`` may also be a SCALE-Sim topology CSV (``simulator/cost/topology.py``): its layers
    are costed as one UNet call, one step unless ``num_steps`` says otherwise."""
    if is_topology(model):
        if batch != 1 or cfg:
            from earlyq_sim.errors import UserError
            raise UserError(f"{model}: --batch and --cfg apply to traced models; a topology CSV lists its layers as run")
        steps = num_steps or 1
    else:
        steps = num_steps or default_num_steps(model)
    sched = make_schedule(schedule, steps, **schedule_kw)  # a bad schedule fails before the trace
    trace = read_topology(model) if is_topology(model) else trace_model(model, batch=batch, cfg=cfg)
    base = PrecisionSchedule.parse(baseline, steps, prob_bits=schedule_kw.get("prob_bits"))
    if not base.is_uniform:
        from earlyq_sim.errors import UserError

        raise UserError(f"--baseline {baseline!r}: the baseline must be uniform, e.g. W8A8 or W4A8")
    written = load_arch(arch)
    ref_spec = written if ref_arch == written.name else load_arch(ref_arch)
    spec, note = normalise_arch(written, ref_spec, normalise)
    ops = costing_ops(trace)  # the op table plus the GEMM epilogue each vector op may fuse into
    run_c = schedule_cost(spec, ops, sched)
    base_c = schedule_cost(spec, ops, base)
    ref_c = base_c if ref_spec is spec else schedule_cost(ref_spec, ops, base)
    run_c = compare(run_c, base_c, ref_c)
    layers = per_layer_table(ops, run_c, base_c)
    return CostRun(trace.model_name, int(trace.params), ops, batch, cfg, spec, ref_spec, sched, base,
                   run_c, base_c, ref_c, layers,
                   {"mode": normalise, "reference": ref_spec.name, "note": note},
                   _compare_normalisations(written, ref_spec, ops, sched, ref_c, (spec, run_c)))


def _compare_normalisations(written, ref_spec, ops, sched, ref_c, done) -> dict:
    """Speedup vs the reference of the schedule on ``written`` at iso-throughput and iso-area
    (an entry says why when a normalisation does not apply, e.g. a spec without area)."""
    from earlyq_sim.errors import UserError

    out = {}
    for mode in ("iso-throughput", "iso-area"):
        try:
            spec, note = normalise_arch(written, ref_spec, mode)
        except UserError as e:
            out[mode] = {"note": str(e), "speedup_vs_ref": None, "stage_speedup_vs_ref": None}
            continue
        run_c = done[1] if spec == done[0] else schedule_cost(spec, ops, sched)
        r = _vs_ref(run_c, ref_c)
        out[mode] = {"note": note, "speedup_vs_ref": r["total"],
                     "stage_speedup_vs_ref": r["stages"], "rows": spec.array.rows, "cols": spec.array.cols}
    return out


def _vs_ref(run_c, ref_c) -> dict:
    """Latency of the reference's baseline / latency of the run, in total and per stage."""
    r = next(iter(ref_c.by_bits.values())).latency_ms
    st = run_c.per_stage
    ratio = lambda a, b: float(a / b) if b > 0 else None  # noqa: E731  (never a plausible figure from 0)
    return {"total": ratio(ref_c.total["latency_ms"], run_c.total["latency_ms"]),
            "stages": [ratio(n * r, lat) for n, lat in zip(st["steps"], st["latency_ms"])]}
