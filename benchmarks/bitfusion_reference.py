"""Bit Fusion's published numbers and closed forms, restated (not its code): the per-layer results
copied into ``benchmarks/data/bitfusion/``, its untiled compute-cycle formula and its energy.

Source: github hsharma35/bitfusion @ 04ec1c87 (``src/simulator/accelerator.py``,
``src/simulator/stats.py``, ``bf_e_conf.ini``, notebook ``bitfusion-generate-graphs.ipynb``).
Their counts are bits; cycles are of the 500 MHz clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "bitfusion" / "bitfusion-eyeriss-sim-sweep-16x32.csv"
N, M = 16, 32  # Fusion Units: inputs (reduction) x outputs (bf_e_conf.ini a, c)
PMAX, PMIN = 8, 2  # high_prec, low_prec
BW_BITS = 192  # bf_e_conf.ini if_width: bits per cycle

# energy (notebook output of Simulator.get_energy_cost for bf_e_conf.ini; stats.get_energy)
CORE_PJ_PER_CYCLE = 235.104  # whole 16x32 array, per compute cycle (stall cycles excluded)
SRAM_PJ_PER_BIT = {"WBUF Read": 0.021, "WBUF Write": 0.029, "IBUF Read": 0.059, "IBUF Write": 0.114,
                   "OBUF Read": 0.033, "OBUF Write": 0.073}
DRAM_PJ_PER_BIT = 15.0


def perf_factor(act_bits: int, weight_bits: int) -> int:
    """MACs per Fusion Unit per cycle: floor(8/max(a,2)) * floor(8/max(w,2))."""
    return (PMAX // max(act_bits, PMIN)) * (PMAX // max(weight_bits, PMIN))


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ConvShape:
    """A layer as Bit Fusion sees it (FC: kernel 1, output 1x1, batch = rows)."""

    batch: int
    ic: int  # input channels (FC: input neurons)
    oc: int  # output channels (FC: output neurons)
    oh: int
    ow: int
    kernel: int  # square kernel side


def shape_of(row) -> ConvShape:
    """The ConvShape of one of our op-table rows (conv: im2col GEMM; linear: M x K @ K x N)."""
    if row["op"] == "conv":
        b = int(row["batch"])
        o = int(round(math.sqrt(int(row["M"]) // b)))
        assert o * o * b == int(row["M"]), "square outputs only (all Bit Fusion benchmarks)"
        return ConvShape(b, int(row["C_in"]), int(row["C_out"]), o, o, int(row["R"]))
    return ConvShape(int(row["M"]), int(row["K"]), int(row["N"]), 1, 1, 1)


def compute_cycles(s: ConvShape, act_bits: int, weight_bits: int, im2col: bool) -> int:
    """Bit Fusion's untiled compute cycles (accelerator.get_compute_cycles with one tile):
    channel-wise ``B * ceil(OC/M) * OW * OH * K^2 * ceil(IC/(N*pf))``; im2col (a layer fed by the
    network input) ``B * OH * OW * ceil(OC/M) * ceil(K^2 * IC/(N*pf))``. No fill/drain."""
    lanes = N * perf_factor(act_bits, weight_bits)
    if im2col:
        return s.batch * s.oh * s.ow * ceil_div(s.oc, M) * ceil_div(s.kernel ** 2 * s.ic, lanes)
    return s.batch * ceil_div(s.oc, M) * s.ow * s.oh * s.kernel ** 2 * ceil_div(s.ic, lanes)


def energy_pj(row) -> dict:
    """Bit Fusion's energy of one published layer (a CSV row), pJ: core, SRAM, DRAM."""
    core = (float(row["Cycles"]) - float(row["Memory wait cycles"])) * CORE_PJ_PER_CYCLE
    sram = sum(float(row[c]) * e for c, e in SRAM_PJ_PER_BIT.items())
    dram = (float(row["DRAM Read"]) + float(row["DRAM Write"])) * DRAM_PJ_PER_BIT
    return {"core": core, "sram": sram, "dram": dram}


def load_published(bandwidth_bits: int = BW_BITS):
    """The published per-layer rows of the 16x32 array at ``bandwidth_bits`` (192: bf_e_conf.ini;
    4096: the notebook's scaled run, nearly stall-free), one row per (Network, Layer)."""
    import pandas as pd

    df = pd.read_csv(DATA)
    df = df[df["Bandwidth (bits/cycle)"] == bandwidth_bits].drop_duplicates(["Network", "Layer"])
    df = df.assign(compute=df["Cycles"] - df["Memory wait cycles"])
    return df.set_index(["Network", "Layer"])
