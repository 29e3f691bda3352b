"""On-chip (SRAM) and DRAM traffic of GEMMs and vector ops, vectorised over ops.

Storage: the streamed operand is stored at its operand bits (activations at the step's
activation bits, attention probabilities at prob bits), the stationary operand at its bits
(weights at weight bits), GEMM outputs are requantised to the step's activation bits, partial
sums are kept at the accumulator width. Bytes are ``elems * bits / 8`` (packed, may be
fractional). No fusion: every op reads its inputs from DRAM and writes its outputs to DRAM.

Buffers: the streamed operand lives in ``ifmap``, the stationary one in ``filter``, outputs and
partial sums in ``ofmap``; usable capacity is half the buffer when double-buffered. An operand
that fits its buffer is fetched from DRAM once; one that does not is refetched every time the
fold order re-streams it. Per GEMM instance, with folds from ``mapping.map_gemm``:

* ws: X re-streamed once per column fold (``cf = ceil(N/C)``); W read once; outputs accumulate
  over ``rounds = row_folds * passes``.
* is: X stationary, read once; W re-streamed once per column fold (``ceil(M/C)``); outputs
  accumulate over ``rounds = row_folds * passes``.
* os: X re-streamed ``ceil(N/C)`` times, W ``ceil(M/R)`` times; outputs stay in the PEs.

Partial sums (ws/is, rounds > 1) are read and written at accumulator width ``2 * (rounds - 1)``
times in the ofmap buffer; a column fold whose partial sums (``T * cols`` values) do not fit
the ofmap buffer spills them to DRAM as well (decided per fold: full folds and the last one). Chunk passes (operands wider than the PE)
re-read the other operand from SRAM once per chunk, not from DRAM. SRAM bytes count the
array's reads and writes plus every DRAM byte (it is written into or read out of a buffer).
SRAM bandwidth is assumed to keep up with the array (no SRAM stalls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlyq_sim.simulator.mapping import Mapping


@dataclass(frozen=True)
class Traffic:
    """Bytes per op (all G instances), float64 arrays."""

    sram_array: np.ndarray  # array-side buffer reads/writes
    dram: np.ndarray  # DRAM reads + writes

    @property
    def sram(self) -> np.ndarray:
        return self.sram_array + self.dram


def gemm_traffic(arch, mp: Mapping, M, N, K, G, x_bits, y_bits, out_bits, f) -> Traffic:
    """SRAM and DRAM bytes of ``G`` GEMMs; ``f`` is ``cycle_model.BitFactors``."""
    M, N, K, G = (np.asarray(v, np.float64) for v in (M, N, K, G))
    xb, yb, ob = (np.asarray(v, np.float64) for v in (x_bits, y_bits, out_bits))
    acc_b = arch.accumulator.width_bits / 8.0
    C = arch.array.cols
    bufs = arch.buffers
    cap_i, cap_f, cap_o = bufs.usable_bytes("ifmap"), bufs.usable_bytes("filter"), bufs.usable_bytes("ofmap")
    X, W, O = M * K * xb / 8.0, K * N * yb / 8.0, M * N * ob / 8.0
    rf, cf = mp.row_folds.astype(np.float64), mp.col_folds.astype(np.float64)
    cx, cy = f.chunks_x.astype(np.float64), f.chunks_y.astype(np.float64)
    df = arch.array.dataflow
    if df == "ws":
        x_sram, w_sram = X * cf * cy, W * cx
        x_dram, w_dram = np.where(X <= cap_i, X, X * cf), W
    elif df == "is":
        x_sram, w_sram = X * cy, W * cf * cx
        x_dram, w_dram = X, np.where(W <= cap_f, W, W * cf)
    else:  # os
        x_sram, w_sram = X * cf * cy, W * rf * cx
        x_dram, w_dram = np.where(X <= cap_i, X, X * cf), np.where(W <= cap_f, W, W * rf)
    if df == "os":
        o_sram, o_dram = O, O
    else:
        rounds = rf * f.passes
        o_sram = O + 2.0 * (rounds - 1.0) * M * N * acc_b
        # spill decided per column fold: full folds hold T x C partial sums, the last T x (Sc % C)
        T, Sc = mp.T.astype(np.float64), mp.Sc.astype(np.float64)
        full, rem = np.floor(Sc / C), Sc % C
        spilled_cols = full * C * (T * C * acc_b > cap_o) + rem * (T * rem * acc_b > cap_o)
        o_dram = O + 2.0 * (rounds - 1.0) * T * spilled_cols * acc_b
    return Traffic(G * (x_sram + w_sram + o_sram), G * (x_dram + w_dram + o_dram))


def vector_traffic(in_elems, out_elems, in_bits, out_bits) -> Traffic:
    """Vector op: inputs read from DRAM, outputs written to DRAM, both through a buffer."""
    d = (np.asarray(in_elems, np.float64) * in_bits + np.asarray(out_elems, np.float64) * out_bits) / 8.0
    return Traffic(d.copy(), d)
