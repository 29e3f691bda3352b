"""Accelerator specs: frozen dataclasses, loaded and validated from YAML at the edge.

``load_arch(name_or_path)`` returns an :class:`ArchSpec`; the cost model never sees raw dicts.
Shipped specs live in ``simulator/cost/archs/*.yaml`` (``list_archs()`` names them).

PE types (``pe.type``) are registry entries, one module each in ``pe_types/`` (bit_parallel,
bit_serial_act = Stripes, bitfusion = Bit Fusion, bit_serial_both = Loom); each declares the
``pe:`` fields it reads, so :func:`parse_arch` validates any registered type the same way.

Shipped specs are iso-throughput at 8x8 bits (same 32x32 array, clock and memory; ``lanes`` set
so peak MACs/cycle at 8x8 equals the int8 array's); their area differs (``area:``, ``area.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from earlyq_sim.errors import UserError
from earlyq_sim.safe_yaml import read_yaml
from earlyq_sim.simulator.cost.cycle_model import FOLD_OVERLAPS
from earlyq_sim.simulator.cost.pe_types import REQUIRED, pe_type, pe_type_names

ARCH_DIR = Path(__file__).resolve().parent / "archs"
DATAFLOWS = ("ws", "os", "is")
MAPPERS = ("search", "fixed")
OBJECTIVES = ("latency", "energy", "edp")
OVERLAPS = ("tiles", "ideal")
OVERFLOW_POLICIES = ("error", "saturate")


@dataclass(frozen=True)
class ArraySpec:
    rows: int  # PE rows
    cols: int  # PE columns
    dataflow: str  # 'ws' | 'os' | 'is'
    fold_overlap: str = "none"  # none | wavefront | shadow (cycle_model.FOLD_OVERLAPS)


@dataclass(frozen=True)
class PESpec:
    """PE type and the values of the fields its registry entry declares (``pe.lanes`` etc.)."""

    type: str
    params: tuple[tuple[str, object], ...] = ()  # (field, value) in the type's declared order

    def __getattr__(self, name: str):
        for k, v in self.__dict__.get("params", ()):
            if k == name:
                return v
        raise AttributeError(f"PE type {self.__dict__.get('type')!r} has no field {name!r}")

    def as_dict(self) -> dict:
        """The ``pe:`` YAML mapping (tuples as lists)."""
        return {"type": self.type, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params}}

    def replace(self, **changes) -> "PESpec":
        """A copy with fields changed (``type`` or declared fields; parse_arch validates the result)."""
        kind = changes.pop("type", self.type)
        params = dict(self.params)
        params.update(changes)
        return PESpec(kind, tuple(params.items()))


@dataclass(frozen=True)
class BufferSpec:
    ifmap_kib: float  # buffer for the streamed (first) operand, KiB
    filter_kib: float  # buffer for the stationary (second) operand, KiB
    ofmap_kib: float  # output / partial-sum buffer, KiB
    double_buffered: bool = True  # overlap compute and DRAM; halves usable capacity
    # True: ws/is cut the temporal dimension into blocks whose partial sums and streamed rows fit
    # on chip, each block repaying preload and fill/drain (``mapping.temporal_blocks``); False:
    # SCALE-Sim's schedule, one block, overflow costed only as DRAM refetch/spill traffic.
    temporal_blocking: bool = True

    def usable_bytes(self, which: str) -> float:
        """Bytes an operand tile may occupy: half the buffer when double-buffered."""
        kib = {"ifmap": self.ifmap_kib, "filter": self.filter_kib, "ofmap": self.ofmap_kib}[which]
        return kib * 1024.0 / (2.0 if self.double_buffered else 1.0)


@dataclass(frozen=True)
class MappingSpec:
    """How GEMMs are mapped (``mapper``): ``search`` picks loop order and tiles per op for
    ``objective`` (``mapper.py``); ``fixed`` runs one schedule for every op, chosen by
    ``buffers.temporal_blocking`` (true: temporal blocks, false: SCALE-Sim's one block)."""

    mapper: str = "search"
    objective: str = "latency"  # latency | energy | edp


@dataclass(frozen=True)
class MemorySpec:
    """``overlap``: ``tiles`` = double-buffered tiles with the first fill and the last write-back
    exposed; ``ideal`` = latency ``max(compute, memory)`` (no prologue/epilogue)."""

    overlap: str = "tiles"


@dataclass(frozen=True)
class FusionSpec:
    """``vector_epilogue``: norm / activation / elementwise ops run in the epilogue of the GEMM
    that produces their input (``fusion.py``): that tensor never goes to DRAM."""

    vector_epilogue: bool = False


@dataclass(frozen=True)
class AccumulatorSpec:
    width_bits: int = 32
    overflow: str = "error"  # 'error': refuse ops whose worst case needs more bits; 'saturate': cost them


@dataclass(frozen=True)
class EnergySpec:
    """Energy table. ``step_pj`` is one multiplier step of the PE type (see module doc)."""

    step_pj: float  # pJ per multiplier step (8x8 multiply, serial cycle of one lane, or one BitBrick)
    accumulate_pj: float  # pJ per accumulation (one per MAC and chunk pass)
    vector_pj_per_elem: float  # pJ per element-pass on the vector unit
    sram_pj_per_byte: float  # pJ per byte read or written in an on-chip buffer
    dram_pj_per_byte: float  # pJ per byte of DRAM traffic
    leakage_mw: float  # static power, mW
    source: str = ""  # where the numbers come from


@dataclass(frozen=True)
class TechnologySpec:
    """The design's node and supply, and those every energy and area constant of the spec is
    stated at (``technology.py`` scales between them; factors computed when the spec is read)."""

    node_nm: float = 45.0
    vdd: float = 0.9  # V
    tables_nm: float = 45.0
    tables_vdd: float = 0.9  # V
    area_factor: float = 1.0  # tables_nm -> node_nm
    energy_factor: float = 1.0  # (tables_nm, tables_vdd) -> (node_nm, vdd); leakage too


@dataclass(frozen=True)
class AreaSpec:
    """Area constants at ``technology.tables_nm`` (``area.py``): a PE is ``pe_fixed_um2`` plus
    ``pe_unit_um2`` per unit its PE type counts (lanes, BitBricks); buffers are built of SRAM
    banks of ``sram_bank_kib`` KiB, ``sram_bank_mm2`` each; ``overhead_mm2`` is the rest."""

    pe_unit_um2: float
    sram_bank_mm2: float
    sram_bank_kib: float = 16.0
    pe_fixed_um2: float = 0.0
    overhead_mm2: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class ArchSpec:
    name: str
    description: str
    normalisation: str
    clock_mhz: float
    array: ArraySpec
    pe: PESpec
    buffers: BufferSpec
    dram_bytes_per_cycle: float
    vector_elems_per_cycle: float
    accumulator: AccumulatorSpec
    energy: EnergySpec
    mapping: MappingSpec = MappingSpec()
    memory: MemorySpec = MemorySpec()
    fusion: FusionSpec = FusionSpec()
    technology: TechnologySpec = TechnologySpec()
    area: AreaSpec | None = None  # None: the spec has no area section (area not modelled)
    source: str = ""  # file the spec was read from

    def with_fixed_schedule(self, blocking: bool) -> "ArchSpec":
        """This spec under one fixed schedule for every op and ideal overlap (the model before the
        mapper; ``blocking`` false is SCALE-Sim's schedule, used to validate against it)."""
        from dataclasses import replace
        return replace(self, buffers=replace(self.buffers, temporal_blocking=blocking),
                       mapping=replace(self.mapping, mapper="fixed"), memory=MemorySpec("ideal"))

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def peak_macs_per_cycle_8x8(self) -> float:
        """Peak MACs per cycle at 8x8 bits (the iso-throughput normalisation point)."""
        from earlyq_sim.simulator.cost.cycle_model import bit_factors  # local: avoids an import cycle
        import numpy as np
        f = bit_factors(self.pe, np.array([8]), np.array([8]))
        return float(self.array.rows * self.array.cols * f.lanes[0] / (f.slot[0] * f.passes[0]))


# ---------------------------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------------------------
_REQ = object()


class _Reader:
    """Reads one section of a YAML mapping, checking keys, types and ranges."""

    def __init__(self, src: str, data, path: str = ""):
        self.src, self.path = src, path
        if not isinstance(data, dict):
            where = path or "top level"
            raise UserError(f"{src}: {where}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.used: set[str] = set()

    def _fp(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def err(self, key: str, msg: str) -> UserError:
        return UserError(f"{self.src}: {self._fp(key)}: {msg}")

    def get(self, key, kind, default=_REQ, lo=None, hi=None, choices=None):
        self.used.add(key)
        allowed = _allowed(kind, lo, hi, choices)
        if key not in self.data:
            if default is _REQ:
                raise self.err(key, f"missing required field; allowed {allowed}")
            return default
        v = self.data[key]
        if kind is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if ok:
                try:
                    v = float(v)
                except OverflowError:  # an integer too large for a float
                    raise self.err(key, f"{str(v)[:20]}... is out of range; allowed {allowed}") from None
                if not math.isfinite(v):  # NaN passes every range check (all comparisons are false)
                    raise self.err(key, f"{v!r} is not a finite number; allowed {allowed}")
        else:
            ok = isinstance(v, kind)
        if not ok:
            shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:36] + "..."
            raise self.err(key, f"wrong type {type(v).__name__} ({shown}); allowed {allowed}")
        if choices is not None and v not in choices:
            raise self.err(key, f"{v!r} is not allowed; allowed {allowed}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            shown = repr(v) if len(repr(v)) <= 24 else repr(v)[:20] + "..."  # a 400-digit number stays one short line
            raise self.err(key, f"{shown} is out of range; allowed {allowed}")
        return v

    def section(self, key: str) -> "_Reader":
        self.used.add(key)
        if key not in self.data:
            raise self.err(key, "missing required section")
        return _Reader(self.src, self.data[key], self._fp(key))

    def done(self, allowed_keys=None) -> None:
        """Reject keys that were not read (unknown or not used by this type)."""
        extra = sorted(str(k) for k in set(self.data) - self.used)
        if extra:
            names = sorted(allowed_keys if allowed_keys is not None else self.used)
            raise self.err(extra[0], f"unknown field; allowed fields here: {', '.join(names)}")


def _allowed(kind, lo, hi, choices) -> str:
    if choices is not None:
        return " | ".join(str(c) for c in choices)
    tname = {int: "integer", float: "number", str: "string", bool: "true | false", list: "list"}.get(kind, str(kind))
    if lo is not None or hi is not None:
        return f"{tname} in {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
    return tname


def _read_pe(r: _Reader) -> PESpec:
    """Read ``pe:`` by the fields its type's registry entry declares; reject the others."""
    entry = pe_type(r.get("type", str, choices=pe_type_names()))
    params = {f.name: r.get(f.name, f.kind, **({} if f.default is REQUIRED else {"default": f.default}),
                            lo=f.lo, hi=f.hi) for f in entry.fields}
    entry.check(params, r.err)
    r.done()
    return PESpec(entry.name, tuple(params.items()))


def parse_arch(data, src: str) -> ArchSpec:
    """Validate a parsed YAML mapping into an :class:`ArchSpec`; ``src`` names it in errors."""
    top = _Reader(src, data)
    arr = top.section("array")
    array = ArraySpec(arr.get("rows", int, lo=1, hi=4096), arr.get("cols", int, lo=1, hi=4096),
                      arr.get("dataflow", str, choices=DATAFLOWS), arr.get("fold_overlap", str, default="none",
                                                                                 choices=tuple(FOLD_OVERLAPS)))
    arr.done()
    pe = _read_pe(top.section("pe"))
    b = top.section("buffers")
    buffers = BufferSpec(b.get("ifmap_kib", float, lo=1e-3, hi=1e7), b.get("filter_kib", float, lo=1e-3, hi=1e7),
                         b.get("ofmap_kib", float, lo=1e-3, hi=1e7), b.get("double_buffered", bool, default=True),
                         b.get("temporal_blocking", bool, default=True))
    b.done()
    # a spec written before the mapper (temporal_blocking set, no mapping/memory sections) keeps its
    # fixed schedule and ideal overlap, so its numbers do not change under it
    legacy = "temporal_blocking" in b.data
    mapping = MappingSpec("fixed" if legacy else "search")
    if "mapping" in top.data:
        m = top.section("mapping")
        mapping = MappingSpec(m.get("mapper", str, default=mapping.mapper, choices=MAPPERS),
                              m.get("objective", str, default="latency", choices=OBJECTIVES))
        m.done()
    memory = MemorySpec("ideal" if legacy and "mapping" not in top.data else "tiles")
    if "memory" in top.data:
        mm = top.section("memory")
        memory = MemorySpec(mm.get("overlap", str, default=memory.overlap, choices=OVERLAPS))
        mm.done()
    fusion = FusionSpec()
    if "fusion" in top.data:
        fu = top.section("fusion")
        fusion = FusionSpec(fu.get("vector_epilogue", bool, default=False))
        fu.done()
    d = top.section("dram")
    dram_bw = d.get("bytes_per_cycle", float, lo=1e-6, hi=1e6)
    d.done()
    v = top.section("vector")
    vec = v.get("elems_per_cycle", float, lo=1e-6, hi=1e6)
    v.done()
    if "accumulator" in top.data:
        a = top.section("accumulator")
        acc = AccumulatorSpec(a.get("width_bits", int, default=32, lo=8, hi=64),
                              a.get("overflow", str, default="error", choices=OVERFLOW_POLICIES))
        a.done()
    else:
        top.used.add("accumulator")
        acc = AccumulatorSpec()
    e = top.section("energy")
    energy = EnergySpec(
        e.get("step_pj", float, lo=0.0, hi=1e6), e.get("accumulate_pj", float, lo=0.0, hi=1e6),
        e.get("vector_pj_per_elem", float, lo=0.0, hi=1e6), e.get("sram_pj_per_byte", float, lo=0.0, hi=1e6),
        e.get("dram_pj_per_byte", float, lo=0.0, hi=1e7), e.get("leakage_mw", float, lo=0.0, hi=1e6),
        e.get("source", str, default=""))
    e.done()
    technology, area = _read_technology(top), _read_area(top)
    spec = ArchSpec(
        name=top.get("name", str), description=top.get("description", str, default=""),
        normalisation=top.get("normalisation", str, default=""),
        clock_mhz=top.get("clock_mhz", float, lo=1e-3, hi=1e5), array=array, pe=pe, buffers=buffers,
        dram_bytes_per_cycle=dram_bw, vector_elems_per_cycle=vec, accumulator=acc, energy=energy,
        mapping=mapping, memory=memory, fusion=fusion, technology=technology, area=area, source=src)
    top.done()
    return spec


def _read_technology(top: _Reader) -> TechnologySpec:
    """``technology:`` (optional): node and supply of the design and of the spec's tables."""
    from earlyq_sim.simulator.cost import technology as tech

    if "technology" not in top.data:
        top.used.add("technology")
        return TechnologySpec()
    t = top.section("technology")
    node = t.get("node_nm", float, default=45.0, lo=tech.MIN_NM, hi=tech.MAX_NM)
    tables = t.get("tables_nm", float, default=45.0, lo=tech.MIN_NM, hi=tech.MAX_NM)
    vdd = t.get("vdd", float, default=0.9, lo=0.3, hi=1.5)
    tables_vdd = t.get("tables_vdd", float, default=0.9, lo=0.3, hi=1.5)
    t.done()
    try:
        ef = tech.energy_factor(tables, tables_vdd, node, vdd)
    except ValueError as e:
        raise t.err("vdd", str(e)) from None
    return TechnologySpec(node, vdd, tables, tables_vdd, tech.area_factor(tables, node), ef)


def _read_area(top: _Reader) -> AreaSpec | None:
    """``area:`` (optional): per-PE, SRAM and fixed area constants at ``technology.tables_nm``."""
    if "area" not in top.data:
        top.used.add("area")
        return None
    a = top.section("area")
    spec = AreaSpec(a.get("pe_unit_um2", float, lo=1e-3, hi=1e9), a.get("sram_bank_mm2", float, lo=1e-9, hi=1e4),
                    a.get("sram_bank_kib", float, default=16.0, lo=1e-3, hi=1e7),
                    a.get("pe_fixed_um2", float, default=0.0, lo=0.0, hi=1e9),
                    a.get("overhead_mm2", float, default=0.0, lo=0.0, hi=1e6), a.get("source", str, default=""))
    a.done()
    return spec


def list_archs() -> list[str]:
    """Names of the shipped specs (file stems in ``simulator/archs``)."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.yaml"))


def load_arch(name_or_path) -> ArchSpec:
    """Load a shipped spec by name (``stripes``) or any spec by file path."""
    if isinstance(name_or_path, ArchSpec):
        return name_or_path
    text = str(name_or_path)
    p = Path(text)
    if not (p.suffix in (".yaml", ".yml") or p.is_file()):
        if text not in list_archs():
            raise UserError(f"unknown arch {text!r}; valid names: {', '.join(list_archs())} "
                            "(or a path to a .yaml spec)")
        p = ARCH_DIR / f"{text}.yaml"
    if not p.is_file():
        raise UserError(f"{p}: arch spec file not found; valid names: {', '.join(list_archs())}")
    data = read_yaml(p)
    return parse_arch(data, str(p))
