"""The cost model: (ArchSpec, op table, StepBits) -> per-op cycles, traffic and energy.

Pure and vectorised: one call costs a whole op table with NumPy column arithmetic (no loop over
ops). GEMM ops go to the PE array (``cycle_model``, ``memory``), vector ops to the vector unit.
GEMMs are mapped by ``mapper`` (loop order and tiles searched per op, or a fixed schedule); their
latency overlaps DRAM with compute per ``memory.overlap``. Vector ops stream: ``max(compute,
memory)`` when the arch double-buffers, ``compute + memory`` otherwise; ``memory = dram_bytes /
dram_bytes_per_cycle``.
``latency_s = cycles / arch.clock_hz``.

Operand bits per op come from ``StepBits.operand_bits(kind)``: wa -> (act, weight),
aa -> (act, act), pa -> (prob, act). GEMM outputs and vector-op inputs/outputs are stored at
activation bits; softmax outputs at prob bits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost import energy as en
from earlyq_sim.simulator.cost import fusion
from earlyq_sim.simulator.cost.cycle_model import bit_factors, vector_cycles
from earlyq_sim.simulator.cost.mapper import map_gemms
from earlyq_sim.simulator.cost.memory import vector_traffic
from earlyq_sim.simulator.cost.arch import ArchSpec

#: output columns and their units
OUTPUT_COLUMNS = {
    "compute_cycles": "cycles of the PE array / vector unit, no memory stalls",
    "mem_cycles": "cycles to move dram_bytes at dram_bytes_per_cycle",
    "cycles": "latency in clock cycles: max(compute, mem) if double-buffered else sum",
    "util": "achieved / peak MACs per cycle at the op's bits (vector ops: elem-passes / peak)",
    "sram_bytes": "bytes read or written in on-chip buffers",
    "dram_bytes": "bytes read or written in DRAM",
    "compulsory_dram_bytes": "DRAM bytes if every tensor moved once at its stored bits (the floor)",
    "energy_compute_pj": "pJ in MACs / vector ALUs",
    "energy_sram_pj": "pJ in on-chip buffers",
    "energy_dram_pj": "pJ in DRAM",
    "energy_leak_pj": "pJ of leakage over the op's cycles",
    "energy_pj": "total pJ (sum of the four parts)",
    "map_cand": "GEMMs: mapper candidate (-1 SCALE-Sim one block, -2 temporal blocks, >= 0 tiled); else NaN",
    "map_order": "GEMMs: loop order, index into mapper.ORDERS (tiled only, else -1)",
    "tile_m": "GEMMs: tile rows of the first operand (M)",
    "tile_n": "GEMMs: tile columns of the second operand (N)",
    "tile_k": "GEMMs: tile of the reduction (K)",
}


def operand_bit_arrays(kind: np.ndarray, bits) -> tuple[np.ndarray, np.ndarray, dict]:
    """(x_bits, y_bits, {kind: mask}) per op from operand kinds, following ``StepBits.operand_bits``."""
    masks = {k: kind == k for k in ("wa", "aa", "pa")}
    if not (masks["wa"] | masks["aa"] | masks["pa"]).all():
        raise ValueError(f"GEMM ops need operand_kind in wa/aa/pa, got {sorted(set(kind) - {'wa', 'aa', 'pa'})}")
    x = np.empty(kind.shape, np.int64)
    y = np.empty(kind.shape, np.int64)
    for k, m in masks.items():
        x[m], y[m] = bits.operand_bits(k)
    return x, y, masks


def _check_accumulator(arch: ArchSpec, ops, g, K, x, y, is_pa) -> None:
    """Refuse ops whose worst-case sum needs more bits than the accumulator (policy 'error').

    Worst case: ``x + y + ceil(log2 K)`` bits; attention PV (pa) sums probabilities that add up
    to at most 1, so it needs ``x + y + 1``.
    """
    acc = arch.accumulator
    if acc.overflow != "error" or len(K) == 0:
        return
    need = np.where(is_pa, x + y + 1, x + y + np.ceil(np.log2(np.maximum(K, 1))).astype(np.int64))
    bad = np.flatnonzero(need > acc.width_bits)
    if bad.size:
        i = bad[np.argmax(need[bad])]
        names = _col(ops, "name")[g]
        raise UserError(f"{arch.source or arch.name}: accumulator.width_bits={acc.width_bits} is too narrow "
                        f"for op {names[i]!r} ({x[i]}x{y[i]} bits, K={K[i]}): needs {need[i]} bits; "
                        f"allowed: width_bits >= {need[bad].max()} or accumulator.overflow: saturate")


_OUT_INDEX = pd.Index(list(OUTPUT_COLUMNS))  # built once; an Index is immutable


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column as a NumPy array without building a Series (about 50x cheaper in pandas 3)."""
    try:
        return np.asarray(df._get_column_array(df.columns.get_loc(name)))
    except (AttributeError, TypeError):  # other pandas versions: the public path
        return df[name].to_numpy()


def evaluate(arch: ArchSpec, ops: pd.DataFrame, bits) -> pd.DataFrame:
    """Cost every op of ``ops`` on ``arch`` at ``bits``; one row per op, same index and order.

    Columns and units: see ``OUTPUT_COLUMNS`` (cycles of the arch clock, bytes, pJ).
    """
    n = len(ops)
    unit = _col(ops, "unit")
    g = unit == "gemm"
    v = unit == "vector"
    if not (g | v).all():
        raise ValueError(f"op table has unknown units {sorted(set(unit[~(g | v)]))}; allowed gemm, vector")
    out = np.zeros((n, len(OUTPUT_COLUMNS)))
    compute, cycles, sram_b, dram_b, compulsory, e_comp, util = (np.zeros(n) for _ in range(7))
    mapping = np.full((n, 5), np.nan)  # GEMMs: mapper candidate id, loop order, tile M, N, K
    if g.any():
        G, M, N, K, macs = (_col(ops, c)[g].astype(np.int64) for c in ("G", "M", "N", "K", "macs"))
        if min(G.min(), M.min(), N.min(), K.min()) <= 0:
            raise ValueError("GEMM ops need G, M, N, K > 0 (a GEMM is never costed as zero)")
        kind = _col(ops, "operand_kind")[g]
        x, y, kmask = operand_bit_arrays(kind, bits)
        _check_accumulator(arch, ops, g, K, x, y, kmask["pa"])
        R, C = arch.array.rows, arch.array.cols
        f = bit_factors(arch.pe, x, y, swappable=~kmask["wa"])
        in_el = _col(ops, "in_elems")[g]  # real input tensor (conv: not im2col); 0 = unknown
        x_el = np.where(in_el > 0, in_el / G, M * K)
        e_comp[g] = en.gemm_compute_pj(arch, macs, f)
        gm = map_gemms(arch, M, N, K, G, x, y, bits.act, f, x_el, e_comp[g])
        compute[g], cycles[g] = gm.compute, gm.cycles
        sram_b[g], dram_b[g], compulsory[g] = gm.sram, gm.dram, gm.compulsory
        mapping[g] = np.stack([gm.cand, gm.order, gm.Mt, gm.Nt, gm.Kt], axis=1)
        util[g] = macs * (f.slot * f.passes) / (R * C * f.lanes * gm.compute)
    if v.any():
        elems, passes, ine, oute = (_col(ops, c)[v].astype(np.int64)
                                    for c in ("elems", "passes", "in_elems", "out_elems"))
        if min(elems.min(), passes.min()) <= 0:
            raise ValueError("vector ops need elems > 0 and passes > 0 (never costed as zero)")
        ine = np.where(ine > 0, ine, elems)
        oute = np.where(oute > 0, oute, elems)
        out_bits = np.where(_col(ops, "op")[v] == "softmax", bits.prob, bits.act)
        vc = vector_cycles(arch, elems, passes)
        tr = vector_traffic(ine, oute, bits.act, out_bits)
        compute[v] = vc
        sram_b[v], dram_b[v], compulsory[v] = tr.sram, tr.dram, tr.dram
        vmem = tr.dram / arch.dram_bytes_per_cycle  # a stream: no tile worth a separate fill
        cycles[v] = np.maximum(vc, vmem) if arch.buffers.double_buffered else vc + vmem
        e_comp[v] = en.vector_compute_pj(arch, elems, passes)
        util[v] = elems * passes / (arch.vector_elems_per_cycle * vc)
    if arch.fusion.vector_epilogue and "fuse_into" in ops.columns:
        # fused pairs: the GEMM's output stays on chip for the vector op that consumes it
        saved_g, saved_v = fusion.savings(ops, bits.act)
        saved = saved_g + saved_v
        dram_b, compulsory = dram_b - saved, compulsory - saved
        bw = arch.dram_bytes_per_cycle
        if arch.buffers.double_buffered:
            cycles = np.where(g, np.maximum(compute, cycles - saved / bw), np.maximum(compute, dram_b / bw))
        else:
            cycles = np.where(g, cycles - saved / bw, compute + dram_b / bw)
    mem = dram_b / arch.dram_bytes_per_cycle
    e_sram, e_dram, e_leak = en.sram_pj(arch, sram_b), en.dram_pj(arch, dram_b), en.leakage_pj(arch, cycles)
    for j, col in enumerate((compute, mem, cycles, util, sram_b, dram_b, compulsory, e_comp, e_sram, e_dram, e_leak,
                             e_comp + e_sram + e_dram + e_leak)):
        out[:, j] = col
    out[:, len(OUTPUT_COLUMNS) - 5:] = mapping
    # one float64 block: much cheaper to build than a dict of columns
    return pd.DataFrame(out, columns=_OUT_INDEX, index=ops.index)
