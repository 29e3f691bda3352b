"""How archs are made comparable: one registry entry per normalisation.

A normalisation resizes an arch's PE array (rows x cols, aspect ratio kept) against a reference
arch, leaving everything else (PE type, buffers, clock, memory) as specified:

* ``as-specified``: the arch as written (the shipped specs are iso-throughput at 8x8 bits by
  construction, so for them this equals ``iso-throughput``);
* ``iso-throughput``: the same peak MACs per second at 8x8 bits as the reference;
* ``iso-area``: the same total silicon area as the reference (``area.py``): the reference's
  area minus this arch's buffers and fixed overhead, divided by its PE area, gives the PE count.

PE counts are whole, so the match is to within one row or column of PEs; the note each entry
returns says what it did, and the report prints it beside every number.
"""

from __future__ import annotations

import dataclasses
import math

from earlyq_sim.errors import UserError
from earlyq_sim.registry import Registry
from earlyq_sim.simulator.cost.arch import ArchSpec
from earlyq_sim.simulator.cost.area import arch_area, pe_area_um2

NORMALISATIONS = Registry("normalise", " | ")
MAX_SIDE = 4096  # the arch schema's bound on rows and cols


def normalisation_names() -> tuple[str, ...]:
    return NORMALISATIONS.names()


def normalise(arch: ArchSpec, ref: ArchSpec, mode: str) -> tuple[ArchSpec, str]:
    """``arch`` resized by normalisation ``mode`` against ``ref``; returns (spec, note)."""
    return NORMALISATIONS.lookup(mode)(arch, ref)


def resize(arch: ArchSpec, pes: float, note: str) -> tuple[ArchSpec, str]:
    """``arch`` with about ``pes`` PEs: the aspect ratio kept, the count nearest ``pes``."""
    where = arch.source or arch.name
    if not (math.isfinite(pes) and pes >= 1):
        raise UserError(f"{where}: cannot normalise ({note}): it leaves {pes:.3g} PEs")
    if pes > MAX_SIDE ** 2:
        raise UserError(f"{where}: cannot normalise ({note}): {pes:.3g} PEs exceed {MAX_SIDE}x{MAX_SIDE}")
    R, C = arch.array.rows, arch.array.cols
    rows = min(MAX_SIDE, max(1, round(math.sqrt(pes * R / C)), math.ceil(pes / MAX_SIDE)))
    cols = min(MAX_SIDE, max(1, min((math.floor(pes / rows), math.ceil(pes / rows)),
                                    key=lambda c: (abs(rows * c - pes), c))))
    spec = dataclasses.replace(arch, array=dataclasses.replace(arch.array, rows=rows, cols=cols))
    return spec, f"{note}: {R}x{C} -> {rows}x{cols} PEs"


def _as_specified(arch: ArchSpec, ref: ArchSpec) -> tuple[ArchSpec, str]:
    return arch, f"as specified ({arch.array.rows}x{arch.array.cols} PEs)"


def _iso_throughput(arch: ArchSpec, ref: ArchSpec) -> tuple[ArchSpec, str]:
    mine = arch.peak_macs_per_cycle_8x8 * arch.clock_hz
    target = ref.peak_macs_per_cycle_8x8 * ref.clock_hz
    if arch.name == ref.name and mine == target:
        return arch, f"iso-throughput with {ref.name} (the reference itself)"
    pes = arch.array.rows * arch.array.cols * target / mine
    return resize(arch, pes, f"iso-throughput with {ref.name} ({target / 1e12:.4g} T MACs/s at 8x8 bits)")


def _iso_area(arch: ArchSpec, ref: ArchSpec) -> tuple[ArchSpec, str]:
    target = arch_area(ref).total_mm2
    a = arch_area(arch)
    if arch.name == ref.name and abs(a.total_mm2 - target) <= 1e-12 * target:
        return arch, f"iso-area with {ref.name} (the reference itself, {target:.4g} mm^2)"
    budget = target - a.sram_mm2 - a.overhead_mm2
    pes = budget * 1e6 / pe_area_um2(arch)
    return resize(arch, pes, f"iso-area with {ref.name} ({target:.4g} mm^2)")


NORMALISATIONS.register("as-specified", _as_specified)
NORMALISATIONS.register("iso-throughput", _iso_throughput)
NORMALISATIONS.register("iso-area", _iso_area)
