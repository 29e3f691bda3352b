"""Compute cycles of GEMMs and vector ops, vectorised over ops; PE bit scaling lives here.

Per GEMM (one of the op's ``G`` instances), with ``map_gemm``'s ``Sr, Sc, T``, folds, and
``temporal_blocks`` (``nb`` blocks of ``tb`` rows, the last of ``last`` rows; nb = 1 when
partial sums fit on chip):

    fold(t) = preload + (R + C - 2) + slot * ceil(t / lanes)
    cycles  = G * passes * row_folds * col_folds * ((nb - 1) * fold(tb) + fold(last))

* ``slot``: cycles a PE spends per streamed slot (1 for bit-parallel and Bit Fusion PEs,
  ``ceil(bits / bits_per_cycle)`` for bit-serial ones).
* ``lanes``: streamed vectors one PE serves per slot (Stripes/Loom lanes; Bit Fusion:
  ``floor(bricks / bricks_per_MAC)`` fused MACs).
* ``passes``: full repeats of the GEMM for operands wider than the PE takes at once (chunk pairs).

``array.fold_overlap`` (``FOLD_OVERLAPS``) says how consecutive folds of a GEMM instance share
the array: ``none`` (default, SCALE-Sim) as above; ``wavefront``: ``preload + slot * ceil(t /
lanes)`` per fold and one ``R + C - 2`` per instance (ZigZag's accounting); ``shadow``:
``max(slot * ceil(t / lanes), preload)`` per fold, the preload and fill/drain once.

Bit-serial PEs are bit-pipelined: a wavefront hop still takes one cycle, so the fill/drain
term ``R + C - 2`` does not scale with bits; only the streaming term does. With bit-parallel
PEs (slot = lanes = passes = 1) this is exactly SCALE-Sim's per-fold count.

For ``aa``/``pa`` ops (both operands activations) a ``bit_serial_act`` PE feeds the operand
with fewer bits serially (the PE holds both operands in registers, so either can be shifted
out); the array mapping is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlyq_sim.simulator.cost.mapping import ceil_div, map_gemm, stream_value_bytes, temporal_blocks
from earlyq_sim.simulator.cost.pe_types import pe_type
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: arch -> pe_types -> mapping would be an import cycle
    from earlyq_sim.simulator.cost.arch import ArchSpec


@dataclass(frozen=True)
class BitFactors:
    """Per-op bit scaling of a PE type (int64 arrays)."""

    slot: np.ndarray  # cycles per streamed slot
    lanes: np.ndarray  # streamed vectors per slot per PE
    passes: np.ndarray  # full GEMM repeats (= chunks_x * chunks_y)
    chunks_x: np.ndarray  # chunks the streamed operand is split into (each re-reads the stationary one)
    chunks_y: np.ndarray  # chunks the stationary operand is split into (each re-reads the streamed one)
    steps: np.ndarray  # multiplier steps per MAC (energy: multiplies, serial cycles or bricks)


def bit_factors(pe, x_bits, y_bits, swappable=None) -> BitFactors:
    """Bit scaling for operand bits ``x_bits`` (streamed) and ``y_bits`` (stationary), from the
    PE type's registry entry (``pe_types/``).

    ``swappable`` (bool array, default all False) marks ops whose two operands are both
    activations (aa/pa), where a Stripes PE may feed either operand serially.
    """
    x = np.asarray(x_bits, dtype=np.int64)
    y = np.asarray(y_bits, dtype=np.int64)
    x, y = np.broadcast_arrays(x, y)
    sw = np.zeros(x.shape, bool) if swappable is None else np.broadcast_to(np.asarray(swappable, bool), x.shape)
    slot, lanes, cx, cy, steps = pe_type(pe.type).factors(pe, x, y, sw)
    return BitFactors(slot, lanes, cx * cy, cx, cy, steps)


def fold_cycles(R: int, C: int, preload: int, T, slot, lanes) -> np.ndarray:
    """Cycles of one fold: preload, wavefront fill/drain, and ``ceil(T/lanes)`` slots."""
    return preload + (R + C - 2) + np.asarray(slot, np.int64) * ceil_div(T, lanes)


def _wavefront_fold(R, C, preload, T, slot, lanes):
    return preload + np.asarray(slot, np.int64) * ceil_div(T, lanes)


def _shadow_fold(R, C, preload, T, slot, lanes):
    return np.maximum(np.asarray(slot, np.int64) * ceil_div(T, lanes), preload)


def _shadow_ends(R, C, preload, T_last, slot, lanes):
    # the first preload and the fill/drain, less the idle preload slack counted for the last
    # fold (no fold follows it)
    last = np.asarray(slot, np.int64) * ceil_div(T_last, lanes)
    return preload + (R + C - 2) - np.maximum(preload - last, 0)


#: ``array.fold_overlap``: (cycles per fold, cycles once per GEMM instance), each a function of
#: ``(R, C, preload, t, slot, lanes)`` (for the once-term ``t`` is the last fold's extent).
#: none: every fold fills and drains alone (SCALE-Sim). wavefront: folds stream back to back,
#: the next fold's stationary values load after the current fold has streamed (a single
#: stationary register; ZigZag's accounting), one fill/drain per instance. shadow: the next
#: fold's values load into shadow registers while the current one streams (TPU-style).
FOLD_OVERLAPS = {
    "none": (fold_cycles, lambda R, C, pre, t, slot, lanes: 0),
    "wavefront": (_wavefront_fold, lambda R, C, pre, t, slot, lanes: R + C - 2),
    "shadow": (_shadow_fold, _shadow_ends),
}


def blocked_cycles(R: int, C: int, mp, blocks, f, overlap: str = "none") -> np.ndarray:
    """Cycles of one GEMM instance over all passes, folds and temporal blocks, folds overlapping
    per ``overlap`` (``FOLD_OVERLAPS``)."""
    fold, ends = FOLD_OVERLAPS[overlap]
    per = ((blocks.count - 1) * fold(R, C, mp.preload, blocks.size, f.slot, f.lanes)
           + fold(R, C, mp.preload, blocks.last, f.slot, f.lanes))
    return f.passes * mp.row_folds * mp.col_folds * per + ends(R, C, mp.preload, blocks.last, f.slot, f.lanes)


def stream_row_values(dataflow: str, M, K, x_elems=None) -> np.ndarray:
    """Values stored per temporal row of the streamed operand (see ``mapping.temporal_blocks``)."""
    K = np.asarray(K, np.float64)
    if dataflow != "ws" or x_elems is None:
        return K
    return np.asarray(x_elems, np.float64) / np.asarray(M, np.float64)


def gemm_compute_cycles(arch: ArchSpec, M, N, K, G, x_bits, y_bits, swappable=None, x_elems=None) -> np.ndarray:
    """Compute cycles of ``G`` GEMMs ``(M x K) @ (K x N)`` at operand bits (arrays in, int64 out).

    ``x_elems``: real first-operand elements per GEMM (a conv's input tensor, not im2col);
    default ``M * K``. Equals SCALE-Sim's count (times passes and G) whenever one temporal
    block covers ``T`` (``mapping.temporal_blocks``), always with ``buffers.temporal_blocking: false``.
    """
    R, C = arch.array.rows, arch.array.cols
    M, N, K, x_bits, y_bits = np.broadcast_arrays(*(np.asarray(v, np.int64) for v in (M, N, K, x_bits, y_bits)))
    mp = map_gemm(arch.array.dataflow, R, C, M, N, K)
    f = bit_factors(arch.pe, x_bits, y_bits, swappable)
    blocks = temporal_blocks(arch, mp, stream_row_values(arch.array.dataflow, M, K, x_elems),
                             value_bytes=stream_value_bytes(arch.array.dataflow, x_bits, y_bits))
    return np.asarray(G, np.int64) * blocked_cycles(R, C, mp, blocks, f, arch.array.fold_overlap)


def peak_macs_per_cycle(arch: ArchSpec, x_bits, y_bits, swappable=None) -> np.ndarray:
    """Peak MACs per cycle of the whole array at the given bits (no fill, no folds)."""
    f = bit_factors(arch.pe, x_bits, y_bits, swappable)
    return arch.array.rows * arch.array.cols * f.lanes / (f.slot * f.passes)


def vector_cycles(arch: ArchSpec, elems, passes) -> np.ndarray:
    """Vector-unit cycles: ``ceil(elems * passes / elems_per_cycle)``."""
    work = np.asarray(elems, np.float64) * np.asarray(passes, np.float64)
    return np.ceil(work / arch.vector_elems_per_cycle)
