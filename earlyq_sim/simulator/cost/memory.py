"""On-chip (SRAM) and DRAM traffic of GEMMs and vector ops, vectorised over ops.

Storage: the streamed operand is stored at its operand bits (activations at the step's
activation bits, attention probabilities at prob bits), the stationary operand at its bits
(weights at weight bits), GEMM outputs are requantised to the step's activation bits, partial
sums are kept at the accumulator width. Bytes are ``elems * bits / 8`` (packed, may be
fractional). No fusion: every op reads its inputs from DRAM and writes its outputs to DRAM.

Buffers: X (first operand) lives in ``ifmap``, W (second) in ``filter``, outputs and partial
sums in ``ofmap``; usable capacity is half the buffer when double-buffered. The array reads
X as the im2col matrix ``M x K`` (SRAM traffic), while DRAM moves the real input tensor
(``in_elems``; for a 3x3 conv about K/9 of im2col), so on-chip window reuse is assumed.

Schedules (``mapping``): ws/is run ``for block: for column fold: for row fold`` with ``nb``
temporal blocks; os runs SCALE-Sim's ``for column fold: for row fold``. With
``buffers.temporal_blocking: false`` there is one block (``tb = T``, ``nb = 1``, SCALE-Sim's
schedule) and the same rules below cost the overflow as traffic: a streamed operand whose
``T`` rows do not fit is refetched per column fold, partial sums that do not fit spill to DRAM.
Per GEMM instance:

* ws: X (streamed) from DRAM once if a block of it (``tb`` of its ``M`` rows, as stored) fits
  ``ifmap``, else once per column fold; W once if it fits ``filter``, else once per block.
  SRAM: X read once per column fold, W once per block.
* is: W (streamed) from DRAM once if a block (``K x tb``) fits ``filter``, else once per column
  fold (``ceil(M/C)``); X once if it fits ``ifmap``, else once per block.
  SRAM: W read once per column fold, X once per block.
* os: X from DRAM once if it fits, else once per column fold (``ceil(N/C)``); W once if it
  fits, else once per row fold (``ceil(M/R)``). SRAM: same counts. Outputs stay in the PEs.

Partial sums (ws/is, ``rounds = row_folds * passes`` > 1) are read and written at accumulator
width ``2 * (rounds - 1)`` times in the ofmap buffer; a column fold whose ``tb x cols`` block
of partial sums does not fit (with blocking only possible when tb = 1; without it whenever
``T x cols`` does not fit) spills them to DRAM as well. Chunk
passes (operands wider than the PE) re-read the other operand from SRAM once per chunk, not
from DRAM. SRAM bytes count the array's reads and writes plus every DRAM byte (it is written
into or read out of a buffer). SRAM bandwidth is assumed to keep up with the array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlyq_sim.simulator.cost.mapping import Blocks, Mapping
from earlyq_sim.simulator.cost.arch import ArchSpec


@dataclass(frozen=True)
class Traffic:
    """Bytes per op (all G instances), float64 arrays."""

    sram_array: np.ndarray  # array-side buffer reads/writes
    dram: np.ndarray  # DRAM reads + writes

    @property
    def sram(self) -> np.ndarray:
        return self.sram_array + self.dram


def gemm_traffic(arch: ArchSpec, mp: Mapping, blocks: Blocks, M, N, K, G, x_bits, y_bits, out_bits, f,
                 x_elems=None) -> Traffic:
    """SRAM and DRAM bytes of ``G`` GEMMs; ``f`` is ``cycle_model.BitFactors``.

    ``x_elems``: elements of the real first-operand tensor per instance (default ``M * K``).
    """
    M, N, K, G = (np.asarray(v, np.float64) for v in (M, N, K, G))
    xb, yb, ob = (np.asarray(v, np.float64) for v in (x_bits, y_bits, out_bits))
    acc_b = arch.accumulator.width_bits / 8.0
    C = arch.array.cols
    bufs = arch.buffers
    cap_i, cap_f, cap_o = bufs.usable_bytes("ifmap"), bufs.usable_bytes("filter"), bufs.usable_bytes("ofmap")
    X = M * K * xb / 8.0  # im2col view, as the array reads it
    Xd = X if x_elems is None else np.asarray(x_elems, np.float64) * xb / 8.0  # as DRAM holds it
    W, O = K * N * yb / 8.0, M * N * ob / 8.0
    rf, cf = mp.row_folds.astype(np.float64), mp.col_folds.astype(np.float64)
    nb, tb = blocks.count.astype(np.float64), blocks.size.astype(np.float64)
    cx, cy = f.chunks_x.astype(np.float64), f.chunks_y.astype(np.float64)
    df = arch.array.dataflow
    if df == "ws":
        x_sram, w_sram = X * cf * cy, W * nb * cx
        # a block of X rows (tb of M rows, as stored) reused by every column fold if it fits, else refetched
        x_dram, w_dram = np.where(tb * Xd / M <= cap_i, Xd, Xd * cf), np.where(W <= cap_f, W, W * nb)
    elif df == "is":
        x_sram, w_sram = X * nb * cy, W * cf * cx
        x_dram, w_dram = np.where(Xd <= cap_i, Xd, Xd * nb), np.where(tb * K * yb / 8.0 <= cap_f, W, W * cf)
    else:  # os
        x_sram, w_sram = X * cf * cy, W * rf * cx
        x_dram, w_dram = np.where(Xd <= cap_i, Xd, Xd * cf), np.where(W <= cap_f, W, W * rf)
    if df == "os":
        o_sram, o_dram = O, O
    else:
        rounds = rf * f.passes
        o_sram = O + 2.0 * (rounds - 1.0) * M * N * acc_b
        # spill decided per column fold: full folds hold tb x C partial sums, the last tb x (Sc % C)
        T, Sc = mp.T.astype(np.float64), mp.Sc.astype(np.float64)
        full, rem = np.floor(Sc / C), Sc % C
        spilled_cols = full * C * (tb * C * acc_b > cap_o) + rem * (tb * rem * acc_b > cap_o)
        o_dram = O + 2.0 * (rounds - 1.0) * T * spilled_cols * acc_b
    return Traffic(G * (x_sram + w_sram + o_sram), G * (x_dram + w_dram + o_dram))


def vector_traffic(in_elems, out_elems, in_bits, out_bits) -> Traffic:
    """Vector op: inputs read from DRAM, outputs written to DRAM, both through a buffer."""
    d = (np.asarray(in_elems, np.float64) * in_bits + np.asarray(out_elems, np.float64) * out_bits) / 8.0
    return Traffic(d.copy(), d)
