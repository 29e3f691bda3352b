"""Sweep specs: a YAML grid of models x archs x arch overrides x schedules, validated at the edge.

Example (``examples/sweeps/arch_x_schedule.yaml``)::

    name: arch-x-schedule
    models: [ddpm-cifar10, sd-v1.5]
    archs: [stripes, loom, bitfusion]          # shipped names or paths to arch YAMLs
    overrides:                                 # grid over dotted ArchSpec fields
      array.rows: [16, 32]
      dram_bytes_per_cycle: [16, 32]           # alias: dram.bytes_per_cycle
    schedules:
      - W8A8                                   # interval form or uniform shorthand
      - a4@0-0.4,a8@0.4-1
      - two_stage: {early_bits: [2, 4], boundary: [0.2, 0.4], late_bits: 8, weight_bits: 8}
    baseline: W8A8
    steps: null                                # null: each model's default step count
    batch: 1
    cfg: false
    ref_arch: int8-systolic
    chunk_size: 64                             # points per result part file
    metrics: [cost]                            # [cost, quality]: image quality per schedule (fmnist16)

Overrides are applied to the frozen :class:`ArchSpec` with ``dataclasses.replace`` and the result
goes back through :func:`parse_arch`, so an override is held to the same ranges as a YAML spec.
The arch and schedule axes are lazy sequences (:mod:`grids`): up to 4096 arch variants are built
and validated when the spec is loaded; a larger grid is checked value by value and each
combination is built when the sweep reaches it. ``metrics``/``quality`` (:mod:`quality_spec`) ask
for image quality per schedule. Bad input raises a one-line :class:`UserError` naming the sweep
file and field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from earlyq_sim.errors import UserError
from earlyq_sim.safe_yaml import read_yaml
from earlyq_sim.simulator.cost import arch as _arch
from earlyq_sim.simulator.cost.arch import ArchSpec, load_arch, parse_arch
from earlyq_sim.simulator.cost.arch_dict import COMPUTED_FIELDS, arch_to_dict
from earlyq_sim.simulator.cost.pe_types import pe_type, pe_type_names
from earlyq_sim.schedule import PrecisionSchedule, check_bits
from earlyq_sim.workloads.sweeps.grids import ArchGrid, ArchVariant, ScheduleEntry, ScheduleGrid, TwoStageGroup
from earlyq_sim.workloads.sweeps.quality_spec import QualitySettings, read_metrics, read_quality

__all__ = ["ArchVariant", "ScheduleEntry", "SweepSpec", "load_sweep", "parse_sweep"]

TOP_FIELDS = ("name", "models", "archs", "overrides", "normalise", "schedules", "baseline", "steps", "batch", "cfg",
              "ref_arch", "chunk_size", "metrics", "quality")
TWO_STAGE_FIELDS = ("early_bits", "boundary", "late_bits", "weight_bits", "prob_bits")
#: YAML spellings of top-level ArchSpec fields
ALIASES = {"dram.bytes_per_cycle": "dram_bytes_per_cycle", "vector.elems_per_cycle": "vector_elems_per_cycle"}
_NOT_SWEEPABLE = ("name", "description", "normalisation", "source")
MAX_POINTS = 1_000_000  # a larger grid needs an explicit --max-points


class _NESTED:  # ArchSpec field -> its nested spec class (pe: fields from the PE-type registry)
    array, buffers = _arch.ArraySpec, _arch.BufferSpec
    accumulator, energy = _arch.AccumulatorSpec, _arch.EnergySpec
    mapping, memory, fusion = _arch.MappingSpec, _arch.MemorySpec, _arch.FusionSpec
    technology, area = _arch.TechnologySpec, _arch.AreaSpec


def pe_fields(type_name: str) -> tuple[str, ...]:
    """The ``pe:`` fields a PE type reads (its registry entry's declaration)."""
    return tuple(f.name for f in pe_type(type_name).fields)


def override_paths() -> tuple[str, ...]:
    """Dotted ArchSpec field paths a sweep may override, e.g. ``array.rows``, ``clock_mhz``."""
    out = []
    for f in dataclasses.fields(ArchSpec):
        if f.name in _NOT_SWEEPABLE:
            continue
        sub = getattr(_NESTED, f.name, None)
        if f.name == "pe":
            names = ["type"] + [n for t in pe_type_names() for n in pe_fields(t)]
            out += [f"pe.{n}" for n in dict.fromkeys(names)]
        elif sub is None:
            out.append(f.name)
        else:
            out += [f"{f.name}.{g.name}" for g in dataclasses.fields(sub) if g.name not in COMPUTED_FIELDS]
    return tuple(out)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # file the spec came from ('<dict>' for an in-memory mapping)
    models: tuple[str, ...]
    archs: ArchGrid  # every base arch x override combination x normalisation (a lazy sequence)
    override_fields: tuple[str, ...]
    schedules: ScheduleGrid  # a lazy sequence of ScheduleEntry
    baseline: str
    steps: int | None  # None: each model's default
    batch: int
    cfg: bool
    ref_arch: ArchSpec
    chunk_size: int
    metrics: tuple[str, ...] = ("cost",)  # "cost", and "quality" for image quality per schedule
    quality: QualitySettings | None = None  # set when "quality" is in metrics

    @property
    def num_points(self) -> int:
        return len(self.models) * len(self.archs) * len(self.schedules)


# ---------------------------------------------------------------------------------------------
def apply_overrides(spec: ArchSpec, overrides, src: str) -> ArchSpec:
    """``dataclasses.replace`` each (dotted path, value) into ``spec``, then re-validate via parse_arch."""
    allowed = override_paths()
    for path, value in overrides:
        if path not in allowed:
            raise UserError(f"{src}: overrides.{path}: unknown arch field; allowed: {', '.join(allowed)}")
        if isinstance(value, list):
            value = tuple(value)
        head, _, leaf = path.partition(".")
        if leaf:
            if head == "pe":
                if leaf not in pe_fields(spec.pe.type) and leaf != "type":
                    raise UserError(f"{src}: overrides.{path}: arch {spec.name!r} (pe.type {spec.pe.type}) does not "
                                    f"use it; allowed pe fields for it: {', '.join(pe_fields(spec.pe.type))}")
                spec = dataclasses.replace(spec, pe=spec.pe.replace(**{leaf: value}))
            elif getattr(spec, head) is None:
                raise UserError(f"{src}: overrides.{path}: arch {spec.name!r} has no {head}: section to override")
            else:
                spec = dataclasses.replace(spec, **{head: dataclasses.replace(getattr(spec, head), **{leaf: value})})
        else:
            spec = dataclasses.replace(spec, **{head: value})
    where = ", ".join(f"{p}={v!r}" for p, v in overrides)
    label = f"<arch {spec.name}>"
    try:
        checked = parse_arch(arch_to_dict(spec), label)
    except UserError as e:  # name the sweep file and the field, keep parse_arch's reason
        reason = str(e).removeprefix(f"{label}: ")
        raise UserError(f"{src}: overrides.{reason} (arch {spec.name!r} with {where})") from None
    return dataclasses.replace(checked, source=spec.source)


def _listify(v, src: str, field: str) -> list:
    out = v if isinstance(v, list) else [v]
    if not out:
        raise UserError(f"{src}: {field}: empty list; allowed a value or a non-empty list")
    return out


def _int(v, src, field, lo=1, hi=None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise UserError(f"{src}: {field}: {v!r} is not allowed; allowed an integer {rng}")
    return v


def _str_list(data, key, src, default=None) -> tuple[str, ...]:
    if key not in data:
        if default is None:
            raise UserError(f"{src}: {key}: missing required field; allowed a name or a list of names")
        return default
    vals = _listify(data[key], src, key)
    for i, v in enumerate(vals):
        if not isinstance(v, str) or not v:
            raise UserError(f"{src}: {key}[{i}]: {v!r} is not allowed; allowed a non-empty string")
    if len(set(vals)) != len(vals):
        raise UserError(f"{src}: {key}: duplicate entries {vals}; allowed each entry once")
    return tuple(vals)


def _read_schedules(data, src) -> ScheduleGrid:
    raw = _listify(data.get("schedules", ["a4@0-0.4,a8@0.4-1"]), src, "schedules")
    out: list[ScheduleEntry | TwoStageGroup] = []
    for i, item in enumerate(raw):
        field = f"schedules[{i}]"
        if isinstance(item, str):
            try:
                sched = PrecisionSchedule.parse(item, 100)  # syntax and coverage; steps fixed per point later
            except UserError as e:
                raise UserError(f"{src}: {field}: {e}") from None
            # the canonical label (it parses back to the same schedule): equivalent spellings (W8A8,
            # w8a8, a8@0-1,w8) are one point with one key, and a repeat is refused as one
            out.append(ScheduleEntry(text=sched.label))
            continue
        if not (isinstance(item, dict) and set(item) == {"two_stage"} and isinstance(item["two_stage"], dict)):
            raise UserError(f"{src}: {field}: {item!r} is not allowed; allowed an interval-form string "
                            "(a4@0-0.4,a8@0.4-1 or W8A8) or {two_stage: {early_bits, boundary, late_bits, weight_bits}}")
        ts = item["two_stage"]
        extra = sorted(set(ts) - set(TWO_STAGE_FIELDS))
        if extra:
            raise UserError(f"{src}: {field}.two_stage.{extra[0]}: unknown field; allowed: {', '.join(TWO_STAGE_FIELDS)}")
        grid = {}
        for k, default in (("early_bits", None), ("boundary", None), ("late_bits", 8), ("weight_bits", 8)):
            if k not in ts and default is None:
                raise UserError(f"{src}: {field}.two_stage.{k}: missing required field")
            vals = _listify(ts.get(k, default), src, f"{field}.two_stage.{k}")
            for v in vals:
                if k == "boundary":
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                        raise UserError(f"{src}: {field}.two_stage.boundary: {v!r} is not allowed; allowed a number in 0..1")
                else:
                    try:
                        check_bits(v, f"{field}.two_stage.{k}")
                    except UserError as e:
                        raise UserError(f"{src}: {e}") from None
            grid[k] = [float(v) if k == "boundary" else int(v) for v in vals]
        prob = ts.get("prob_bits")
        if prob is not None:
            try:
                check_bits(prob, f"{field}.two_stage.prob_bits")
            except UserError as e:
                raise UserError(f"{src}: {e}") from None
        out.append(TwoStageGroup(*(tuple(grid[k]) for k in ("early_bits", "boundary", "late_bits", "weight_bits")),
                                 prob))
    grid = ScheduleGrid(out)  # two-stage groups expand lazily
    dup = grid.first_repeat()
    if dup is not None:
        raise UserError(f"{src}: schedules: {dup.text or dup} is listed twice; allowed each schedule once")
    return grid


def _read_archs(data, src, ref: ArchSpec) -> tuple[ArchGrid, tuple[str, ...]]:
    from earlyq_sim.simulator.cost.normalise import NORMALISATIONS

    bases = _str_list(data, "archs", src)
    modes = _str_list(data, "normalise", src, default=("as-specified",))
    for m in modes:
        if m not in NORMALISATIONS:
            raise UserError(f"{src}: normalise: {m!r} is unknown; allowed {' | '.join(NORMALISATIONS.names())}")
    ov = data.get("overrides") or {}
    if not isinstance(ov, dict):
        raise UserError(f"{src}: overrides: expected a mapping of dotted arch fields to value lists, "
                        f"e.g. array.rows: [16, 32]; got {type(ov).__name__}")
    fields = []
    grids = []
    for k, vals in ov.items():
        path = ALIASES.get(str(k), str(k))
        if path not in override_paths():
            raise UserError(f"{src}: overrides.{k}: unknown arch field; allowed: {', '.join(override_paths())}")
        fields.append(path)
        # a list of lists is a grid of list values (pe.fusion_widths); a flat list is a grid of scalars
        vals = _listify(vals, src, f"overrides.{k}")
        if len({repr(v) for v in vals}) != len(vals):
            raise UserError(f"{src}: overrides.{k}: duplicate values {vals}; allowed each value once")
        grids.append(vals)
    if len(set(fields)) != len(fields):
        raise UserError(f"{src}: overrides: a field is given twice (once under its alias); allowed each once")
    loaded = []
    for base in bases:
        try:
            loaded.append((base, load_arch(base)))
        except UserError as e:
            raise UserError(f"{src}: archs: {e}") from None
    return ArchGrid(tuple(loaded), tuple(fields), tuple(tuple(g) for g in grids), modes, ref, src), tuple(fields)


def grid_size(data) -> int:
    """Points a sweep mapping asks for (models x archs x override values x normalisations x
    schedules, two-stage grids expanded), counted from the raw lists before anything is built,
    in Python ints (no overflow)."""
    n = lambda v: len(v) if isinstance(v, list) else 1  # noqa: E731
    size = n(data.get("models")) * n(data.get("archs")) * n(data.get("normalise"))
    ov = data.get("overrides")
    for vals in (ov.values() if isinstance(ov, dict) else ()):
        size *= n(vals)
    scheds = data.get("schedules", [""])
    total = 0
    for item in scheds if isinstance(scheds, list) else [scheds]:
        ts = item.get("two_stage") if isinstance(item, dict) else None
        total += math.prod(n(v) for v in ts.values()) if isinstance(ts, dict) else 1
    return size * total


def parse_sweep(data, src: str = "<dict>", max_points: int = MAX_POINTS) -> SweepSpec:
    """Validate a parsed YAML mapping into a :class:`SweepSpec`; ``src`` names it in errors.

    A grid above ``max_points`` is refused before any point is built (``--max-points`` raises it)."""
    if not isinstance(data, dict):
        raise UserError(f"{src}: top level: expected a mapping with fields {', '.join(TOP_FIELDS)}")
    extra = sorted(str(k) for k in set(data) - set(TOP_FIELDS))
    if extra:
        raise UserError(f"{src}: {extra[0]}: unknown field; allowed: {', '.join(TOP_FIELDS)}")
    size = grid_size(data)
    if size > max_points:
        raise UserError(f"{src}: the grid has {size:,} points, above the limit of {max_points:,}; allowed: "
                        f"fewer values, or pass --max-points {size} to run it")
    from earlyq_sim.models.registry import resolve_model

    models = _str_list(data, "models", src)
    for m in models:
        try:
            resolve_model(m)
        except UserError as e:
            raise UserError(f"{src}: models: {e}") from None
    ref_name = data.get("ref_arch", "int8-systolic")
    try:
        ref = load_arch(ref_name)
    except UserError as e:
        raise UserError(f"{src}: ref_arch: {e}") from None
    archs, fields = _read_archs(data, src, ref)
    schedules = _read_schedules(data, src)
    baseline = data.get("baseline", "W8A8")
    try:
        if not isinstance(baseline, str) or not PrecisionSchedule.parse(baseline, 100).is_uniform:
            raise UserError(f"{baseline!r} is not uniform")
    except UserError as e:
        raise UserError(f"{src}: baseline: {e}; allowed a uniform schedule such as W8A8 or W4A8") from None
    steps = data.get("steps")
    steps = None if steps is None else _int(steps, src, "steps", 1, 100000)
    batch = _int(data.get("batch", 1), src, "batch", 1, 4096)
    cfg = data.get("cfg", False)
    if not isinstance(cfg, bool):
        raise UserError(f"{src}: cfg: {cfg!r} is not allowed; allowed true | false")
    chunk = _int(data.get("chunk_size", 64), src, "chunk_size", 1, 1_000_000)
    name = data.get("name", Path(src).stem if src != "<dict>" else "sweep")
    if not isinstance(name, str):
        raise UserError(f"{src}: name: {name!r} is not allowed; allowed a string")
    metrics = read_metrics(data, src)
    quality = read_quality(data, src, metrics)
    return SweepSpec(name, src, models, archs, fields, schedules, baseline, steps, batch, cfg, ref, chunk, metrics,
                     quality)


def load_sweep(spec, max_points: int = MAX_POINTS) -> SweepSpec:
    """A SweepSpec from a path to a YAML file, a mapping, or a SweepSpec (returned as is)."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_sweep(spec, max_points=max_points)
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"{p}: sweep spec file not found; allowed a path to a .yaml sweep spec")
    data = read_yaml(p)
    return parse_sweep(data, str(p), max_points)
