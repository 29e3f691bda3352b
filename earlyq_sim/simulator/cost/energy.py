"""Energy of an op: compute + SRAM + DRAM + leakage, in pJ, vectorised over ops.

* compute, GEMM: ``macs * (steps * step_pj + passes * accumulate_pj)``; ``steps`` per MAC is
  the PE type's multiplier steps (8x8 multiplies per chunk pass, serial cycles of a lane,
  BitBricks), so a bit-serial MAC costs in proportion to its bits. Idle PEs only leak.
* compute, vector: ``elems * passes * vector_pj_per_elem``.
* SRAM: ``sram_bytes * sram_pj_per_byte``; DRAM: ``dram_bytes * dram_pj_per_byte``.
* leakage: ``leakage_mw * time``; with cycles at ``clock_mhz``:
  ``mW * cycles / (MHz * 1e6) s = 1e3 * mW * cycles / MHz`` pJ.

The table's constants are stated at ``technology.tables_nm``/``tables_vdd``; on-chip energy
(compute, vector, SRAM, leakage) is scaled to the design's node and supply by
``technology.energy_factor`` (``technology.py``). DRAM is off chip and keeps its own figure.
"""

from __future__ import annotations

import numpy as np
from earlyq_sim.simulator.cost.arch import ArchSpec


def gemm_compute_pj(arch: ArchSpec, macs, f) -> np.ndarray:
    """Compute energy of GEMMs (pJ); ``f`` is ``cycle_model.BitFactors``."""
    e = arch.energy
    return np.asarray(macs, np.float64) * (f.steps * e.step_pj + f.passes * e.accumulate_pj) \
        * arch.technology.energy_factor


def vector_compute_pj(arch: ArchSpec, elems, passes) -> np.ndarray:
    return np.asarray(elems, np.float64) * np.asarray(passes, np.float64) * (arch.energy.vector_pj_per_elem
                                                                          * arch.technology.energy_factor)


def sram_pj(arch: ArchSpec, sram_bytes) -> np.ndarray:
    return np.asarray(sram_bytes, np.float64) * (arch.energy.sram_pj_per_byte * arch.technology.energy_factor)


def dram_pj(arch: ArchSpec, dram_bytes) -> np.ndarray:
    return np.asarray(dram_bytes, np.float64) * arch.energy.dram_pj_per_byte


def leakage_pj(arch: ArchSpec, cycles) -> np.ndarray:
    mw = arch.energy.leakage_mw * arch.technology.energy_factor
    return 1e3 * mw * np.asarray(cycles, np.float64) / arch.clock_mhz
