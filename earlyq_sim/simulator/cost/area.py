"""Silicon area of an arch and its efficiency figures (pure functions of the spec).

Area (mm^2, at the design's node ``technology.node_nm``):

* PE array: ``rows * cols * (pe_fixed_um2 + units * pe_unit_um2)``, ``units`` from the PE type
  (``PEType.area_units``: lanes, or BitBricks for Bit Fusion);
* buffers: each of ifmap/filter/ofmap rounded up to whole SRAM banks of ``sram_bank_kib``,
  ``sram_bank_mm2`` each (a buffer is an array of banks, so area grows with capacity in steps);
* ``overhead_mm2``: vector unit, control, DMA, everything else;

each stated at ``technology.tables_nm`` and scaled by ``technology.area_factor``
(Stillmaker & Baas, ``technology.py``). Double buffering is inside the stated capacity (it halves
what a tile may use, not the silicon).

Efficiency: peak TOPS counts 2 ops per MAC at 8x8 bits (the normalisation point) at the clock;
peak TOPS/W is core-only (compute energy of an 8x8 MAC plus leakage at that rate, no SRAM or
DRAM, which depend on the workload); achieved figures divide a run's ops by its latency and its
energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import ArchSpec
from earlyq_sim.simulator.cost.pe_types import pe_type

BUFFERS = ("ifmap", "filter", "ofmap")


@dataclass(frozen=True)
class ArchArea:
    """Area of an arch at its node, mm^2, by component."""

    pe_um2: float  # one PE
    pes: int
    array_mm2: float
    buffers_mm2: dict  # per buffer (ifmap, filter, ofmap)
    overhead_mm2: float
    node_nm: float

    @property
    def sram_mm2(self) -> float:
        return float(sum(self.buffers_mm2.values()))

    @property
    def total_mm2(self) -> float:
        return self.array_mm2 + self.sram_mm2 + self.overhead_mm2


def require_area(arch: ArchSpec, why: str):
    """The spec's ``area`` section, or a one-line error naming the file and what needs it."""
    if arch.area is None:
        raise UserError(f"{arch.source or arch.name}: area: missing section; {why} needs pe_unit_um2 and "
                        "sram_bank_mm2 (see the shipped archs)")
    return arch.area


def pe_area_um2(arch: ArchSpec) -> float:
    """One PE at the design's node, um^2."""
    a = require_area(arch, "the PE area")
    units = pe_type(arch.pe.type).area_units(arch.pe)
    return (a.pe_fixed_um2 + units * a.pe_unit_um2) * arch.technology.area_factor


def buffer_area_mm2(arch: ArchSpec, which: str) -> float:
    """One on-chip buffer at the design's node, mm^2 (whole banks)."""
    a = require_area(arch, "the buffer area")
    kib = {"ifmap": arch.buffers.ifmap_kib, "filter": arch.buffers.filter_kib, "ofmap": arch.buffers.ofmap_kib}[which]
    return math.ceil(kib / a.sram_bank_kib - 1e-9) * a.sram_bank_mm2 * arch.technology.area_factor


def arch_area(arch: ArchSpec) -> ArchArea:
    """Area of ``arch`` by component (a one-line error when the spec has no ``area:`` section)."""
    a = require_area(arch, "the area model")
    pe = pe_area_um2(arch)
    pes = arch.array.rows * arch.array.cols
    return ArchArea(pe, pes, pes * pe * 1e-6, {b: buffer_area_mm2(arch, b) for b in BUFFERS},
                    a.overhead_mm2 * arch.technology.area_factor, arch.technology.node_nm)


def peak_tops(arch: ArchSpec) -> float:
    """Peak tera-operations per second at 8x8 bits (2 ops per MAC)."""
    return 2.0 * arch.peak_macs_per_cycle_8x8 * arch.clock_hz / 1e12


def peak_core_tops_per_w(arch: ArchSpec) -> float:
    """Peak TOPS/W of the core at 8x8 bits: compute energy per MAC plus leakage, no SRAM/DRAM."""
    from earlyq_sim.simulator.cost import energy as en
    from earlyq_sim.simulator.cost.cycle_model import bit_factors

    f = bit_factors(arch.pe, np.array([8]), np.array([8]))
    macs = arch.peak_macs_per_cycle_8x8  # one cycle at peak
    pj = float(en.gemm_compute_pj(arch, np.array([macs]), f)[0] + en.leakage_pj(arch, np.array([1.0]))[0])
    return 2.0 * macs / pj  # ops per pJ = 1e12 ops/J = TOPS/W


def efficiency(arch: ArchSpec, macs: float, latency_s: float, energy_j: float) -> dict:
    """Peak and achieved efficiency of a run of ``macs`` MACs; area figures only with an area
    section. Non-finite inputs stay NaN rather than turning into a plausible figure."""
    out = {"peak_tops": peak_tops(arch), "peak_core_tops_per_w": peak_core_tops_per_w(arch)}
    ops = 2.0 * float(macs)
    out["achieved_tops"] = ops / latency_s / 1e12 if latency_s > 0 else float("nan")
    out["achieved_tops_per_w"] = ops / energy_j / 1e12 if energy_j > 0 else float("nan")
    if arch.area is not None:
        total = arch_area(arch).total_mm2
        out["peak_tops_per_mm2"] = out["peak_tops"] / total
        out["achieved_tops_per_mm2"] = out["achieved_tops"] / total
    return out
