"""Mapping a GEMM onto a systolic array: which dimension is spatial, which temporal, folds.

Follows SCALE-Sim (Samajdar et al., ISPASS 2020; scale-sim-v2 ``compute/systolic_compute_*.py``)
for a GEMM ``(M x K) @ (K x N)`` on an ``R x C`` array:

=========  ==========  ==========  ===========  =======================
dataflow   Sr (rows)   Sc (cols)   T (time)     preload per fold
=========  ==========  ==========  ===========  =======================
``ws``     K           N           M            R cycles (weights)
``os``     M           N           K            0
``is``     K           M           N            R cycles (inputs)
=========  ==========  ==========  ===========  =======================

Folds: ``ceil(Sr / R) * ceil(Sc / C)``. Each fold is scheduled for the whole array (partial
folds pad with idle PEs, as SCALE-Sim does), so one fold takes
``preload + (R + C - 2) + T`` cycles with bit-parallel PEs: SCALE-Sim's ``2R + C + T - 2``
(ws, is) and ``R + C + T - 2`` (os). ``cycle_model`` generalises the ``T`` term for bit-serial
and fused PEs.

Temporal blocking (ws, is): partial sums of a column fold (``T x min(C, Sc)`` values at
accumulator width) must stay in the ofmap buffer while the row folds accumulate, and a block of
streamed rows (``tb`` rows of stored values, sized at the stored width but never below 8 bits)
should stay in its buffer while every column fold reuses it. So ``T`` is cut into blocks of
``tb`` rows, the largest that satisfies both (at least 1), and the loop order is ``for block:
for column fold: for row fold``. Up to 8-bit operands the block does not depend on their bits,
so bits change compute cycles only through the PE.
With one block (``tb = T``, the usual case for small layers) this is exactly SCALE-Sim's
schedule; with more, every block pays its own preload and fill/drain, and the stationary
operand is reloaded once per block.

``buffers.temporal_blocking`` (arch spec) selects the schedule:

* ``true`` (shipped default): the blocking above. It is the schedule an array with a finite
  partial-sum buffer can run without sending partial sums to DRAM, and it keeps a block of
  streamed rows resident for every column fold; the price is ``(nb - 1) * (preload + R + C - 2)``
  cycles per fold. We keep it as the default because it never lets partial sums leave the
  chip: without it, partial sums that do not fit are written to and read back from DRAM at
  accumulator width once per row fold (``2 * (rounds - 1) * T * cols * acc`` bytes), which at the
  shipped 160 pJ/B costs far more energy than the extra fill/drain cycles (leakage only,
  0.05 pJ/cycle at 50 mW and 1 GHz), and it avoids the DRAM time too; a compute count that assumes the
  whole stream is on chip is optimistic exactly for the largest layers. (A block sized for the
  streamed rows only pays off when ``col_folds > 1`` reuses it; we block on it regardless, which
  is the conservative side.)
* ``false``: SCALE-Sim's schedule, always one block (``tb = T``); a stream or partial sums that
  do not fit appear only as refetch/spill traffic in ``memory`` (as in SCALE-Sim's memory
  system). Compute cycles then equal SCALE-Sim's count for every layer (validation mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: arch -> pe_types -> mapping would be an import cycle
    from earlyq_sim.simulator.cost.arch import ArchSpec


@dataclass(frozen=True)
class Mapping:
    """Per-op mapping quantities (int64 arrays, one entry per GEMM)."""

    Sr: np.ndarray  # operand extent mapped on array rows
    Sc: np.ndarray  # operand extent mapped on array columns
    T: np.ndarray  # temporal extent streamed through each fold
    row_folds: np.ndarray  # ceil(Sr / R)
    col_folds: np.ndarray  # ceil(Sc / C)
    preload: int  # cycles to preload the stationary tile of one fold (R for ws/is, 0 for os)


def ceil_div(a, b):
    """Integer ceil(a / b) for non-negative int arrays."""
    return -(-np.asarray(a, dtype=np.int64) // np.asarray(b, dtype=np.int64))


def map_gemm(dataflow: str, R: int, C: int, M, N, K) -> Mapping:
    """Spatial/temporal assignment and fold counts of ``(M x K) @ (K x N)`` on an R x C array."""
    M = np.asarray(M, dtype=np.int64)
    N = np.asarray(N, dtype=np.int64)
    K = np.asarray(K, dtype=np.int64)
    if dataflow == "ws":
        Sr, Sc, T, pre = K, N, M, R
    elif dataflow == "os":
        Sr, Sc, T, pre = M, N, K, 0
    elif dataflow == "is":
        Sr, Sc, T, pre = K, M, N, R
    else:
        raise ValueError(f"unknown dataflow {dataflow!r}; allowed ws, os, is")
    return Mapping(Sr, Sc, T, ceil_div(Sr, R), ceil_div(Sc, C), pre)


@dataclass(frozen=True)
class Blocks:
    """Temporal blocks per op (int64 arrays)."""

    size: np.ndarray  # tb: rows of T per block
    count: np.ndarray  # nb = ceil(T / tb)
    last: np.ndarray  # rows in the last block, T - (nb - 1) * tb


def stream_value_bytes(dataflow: str, x_bits, y_bits) -> np.ndarray:
    """Bytes per streamed value that temporal blocks are sized at: the streamed operand's stored
    width (ws streams X, is streams W), at least one byte so that narrower operands keep the
    8-bit schedule."""
    return np.maximum(1.0, np.asarray(x_bits if dataflow == "ws" else y_bits, np.float64) / 8.0)


def temporal_blocks(arch: ArchSpec, mp: Mapping, row_values, blocking: bool | None = None,
                    value_bytes=1.0) -> Blocks:
    """Temporal blocks for ws/is: a column fold's partial sums and a block of streamed rows on chip.

    ``tb`` is the largest block whose ``tb x min(C, Sc)`` partial sums fit the ofmap buffer and
    whose ``tb x row_values`` streamed values fit the streamed operand's buffer (ifmap for ws,
    filter for is) at ``value_bytes`` per value (``stream_value_bytes``: the stored width, at
    least one byte). ``row_values``: values stored per temporal row (ws: the real input per
    output row, ``in_elems / M``, about K/9 for a 3x3 conv; is: K). At 8 bits or fewer the
    schedule, and so compute cycles, do not depend on operand bits; a wider streamed operand
    gets shorter blocks so its block still fits (sized at 8 bits it would overflow the buffer
    and be refetched per fold, and more buffer could then cost more). os keeps outputs
    in the PEs and is never blocked; with ``blocking`` false (default:
    ``buffers.temporal_blocking``) nothing is (one block of ``T`` rows, SCALE-Sim's schedule).
    """
    T = mp.T
    blocking = arch.buffers.temporal_blocking if blocking is None else blocking
    if arch.array.dataflow == "os" or not blocking:
        return Blocks(T, np.ones_like(T), T)
    acc_b = arch.accumulator.width_bits / 8.0
    bufs = arch.buffers
    by_psum = np.floor(bufs.usable_bytes("ofmap") / (np.minimum(arch.array.cols, mp.Sc) * acc_b))
    cap_s = bufs.usable_bytes("ifmap" if arch.array.dataflow == "ws" else "filter")
    by_stream = np.floor(cap_s / (np.asarray(row_values, np.float64) * value_bytes))
    tb = np.maximum(1, np.minimum(T, np.minimum(by_psum, by_stream))).astype(np.int64)
    nb = ceil_div(T, tb)
    return Blocks(tb, nb, T - (nb - 1) * tb)
