"""Compute cycles of GEMMs and vector ops, vectorised over ops; PE bit scaling lives here.

Per GEMM (one of the op's ``G`` instances), with ``map_gemm``'s ``Sr, Sc, T`` and folds:

    fold   = preload + (R + C - 2) + slot * ceil(T / lanes)
    cycles = G * passes * row_folds * col_folds * fold

* ``slot``: cycles a PE spends per streamed slot (1 for bit-parallel and Bit Fusion PEs,
  ``ceil(bits / bits_per_cycle)`` for bit-serial ones).
* ``lanes``: streamed vectors one PE serves per slot (Stripes/Loom lanes; Bit Fusion:
  ``floor(bricks / bricks_per_MAC)`` fused MACs).
* ``passes``: full repeats of the GEMM for operands wider than the PE takes at once (chunk pairs).

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

from earlyq_sim.simulator.mapping import ceil_div, map_gemm


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
    """Bit scaling for operand bits ``x_bits`` (streamed) and ``y_bits`` (stationary).

    ``swappable`` (bool array, default all False) marks ops whose two operands are both
    activations (aa/pa), where a Stripes PE may feed either operand serially.
    """
    x = np.asarray(x_bits, dtype=np.int64)
    y = np.asarray(y_bits, dtype=np.int64)
    x, y = np.broadcast_arrays(x, y)
    one = np.ones_like(x)
    t = pe.type
    if t == "bit_parallel":
        cx, cy = ceil_div(x, pe.parallel_bits), ceil_div(y, pe.parallel_bits)
        slot, lanes, steps = one, one * pe.lanes, cx * cy
    elif t == "bit_serial_act":
        sw = np.zeros(x.shape, bool) if swappable is None else np.broadcast_to(np.asarray(swappable, bool), x.shape)
        swap = sw & (y < x)  # the stationary operand is narrower: feed it serially instead
        serial = np.where(swap, y, x)
        par_chunks = ceil_div(np.where(swap, x, y), pe.parallel_bits)
        cx, cy = np.where(swap, par_chunks, 1), np.where(swap, 1, par_chunks)
        slot, lanes = ceil_div(serial, pe.bits_per_cycle), one * pe.lanes
        steps = slot * cx * cy
    elif t == "bitfusion":
        widths = np.asarray(pe.fusion_widths, dtype=np.int64)
        wmax = int(widths[-1])
        cx, cy = ceil_div(x, wmax), ceil_div(y, wmax)
        rx = widths[np.searchsorted(widths, np.minimum(x, wmax))]  # round up to a fusion width
        ry = widths[np.searchsorted(widths, np.minimum(y, wmax))]
        per_mac = (rx // pe.brick_bits) * (ry // pe.brick_bits)
        slot, lanes = one, pe.bricks // per_mac
        steps = per_mac * cx * cy
    elif t == "bit_serial_both":
        cx, cy = one, one
        slot = ceil_div(x, pe.bits_per_cycle) * ceil_div(y, pe.stationary_bits_per_cycle)
        lanes, steps = one * pe.lanes, slot
    else:
        raise ValueError(f"unknown PE type {t!r}")
    return BitFactors(slot, lanes, cx * cy, cx, cy, steps)


def fold_cycles(R: int, C: int, preload: int, T, slot, lanes) -> np.ndarray:
    """Cycles of one fold: preload, wavefront fill/drain, and ``ceil(T/lanes)`` slots."""
    return preload + (R + C - 2) + np.asarray(slot, np.int64) * ceil_div(T, lanes)


def gemm_compute_cycles(arch, M, N, K, G, x_bits, y_bits, swappable=None) -> np.ndarray:
    """Compute cycles of ``G`` GEMMs ``(M x K) @ (K x N)`` at operand bits (arrays in, int64 out)."""
    R, C = arch.array.rows, arch.array.cols
    mp = map_gemm(arch.array.dataflow, R, C, M, N, K)
    f = bit_factors(arch.pe, x_bits, y_bits, swappable)
    per = fold_cycles(R, C, mp.preload, mp.T, f.slot, f.lanes)
    return np.asarray(G, np.int64) * f.passes * mp.row_folds * mp.col_folds * per


def peak_macs_per_cycle(arch, x_bits, y_bits, swappable=None) -> np.ndarray:
    """Peak MACs per cycle of the whole array at the given bits (no fill, no folds)."""
    f = bit_factors(arch.pe, x_bits, y_bits, swappable)
    return arch.array.rows * arch.array.cols * f.lanes / (f.slot * f.passes)


def vector_cycles(arch, elems, passes) -> np.ndarray:
    """Vector-unit cycles: ``ceil(elems * passes / elems_per_cycle)``."""
    work = np.asarray(elems, np.float64) * np.asarray(passes, np.float64)
    return np.ceil(work / arch.vector_elems_per_cycle)
