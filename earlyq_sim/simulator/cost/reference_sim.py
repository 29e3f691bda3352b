"""A step-by-step reference simulator for small GEMMs, independent of the analytical model.

It does not use ``mapping``/``cycle_model``/``memory``. Instead it

* steps one PE through a MAC to find its behaviour at given bits (bit-serial cycles counted one
  by one, BitBricks allocated one by one, operands split into chunks one by one: each PE type's
  ``reference_behaviour`` in ``pe_types/``, written apart from its vectorised ``factors``);
* shrinks the temporal block one row at a time until its partial sums and its streamed rows
  (at their stored width, at least 8 bits) fit on chip (ws/is; skipped with ``buffers.temporal_blocking: false``), then walks blocks, column folds, row folds and chunk passes (os: one block,
  SCALE-Sim order) and, per fold and pass, steps the systolic wavefront cycle by cycle over
  the whole ``R x C`` grid: a PE starts its next slot when it is free, its stationary value is
  loaded, and its left and upper neighbours started that slot at least one cycle earlier;
* moves tiles through the buffers (an operand that fits stays resident after its first fetch;
  otherwise each fold fetches its slice), spills partial sums that do not fit, and
* for a conv (``x_elems``: its real input, fewer values than the im2col matrix) stores X in
  DRAM and in its buffer as the real input: a streamed ws row holds ``x_elems / M`` values and
  every X slice fetched from DRAM carries its share ``x_elems / (M K)`` of the input; the array
  still reads the im2col view (on-chip window reuse), and
* runs a double-buffered pipeline over the folds on one DRAM channel.

Agreement with the analytical model (tests/test_reference_sim.py): compute cycles, DRAM bytes
and SRAM bytes exactly. Total cycles: exactly ``compute + dram/bw`` without overlap; with
double buffering the pipeline lies in ``[max(compute, mem), compute + mem]``: the analytical
``max`` ignores the pipeline's prologue (first load), epilogue (last store) and bursts.
Wavefront stepping costs O(cycles * R * C); folds with identical stepping inputs reuse the
stepped count within one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlyq_sim.simulator.cost.pe_types import pe_type
from earlyq_sim.simulator.cost.arch import ArchSpec


@dataclass(frozen=True)
class RefResult:
    compute_cycles: int
    dram_bytes: float
    sram_bytes: float
    total_cycles: float  # with DRAM, double-buffered pipeline (or serial when overlap is off)
    folds: int  # folds stepped (all instances and passes)


# --- one PE ------------------------------------------------------------------------------------
def pe_behaviour(pe, x: int, y: int, swappable: bool = False) -> tuple[int, int, int, int]:
    """(cycles per slot, MACs per slot, x chunks, y chunks) found by stepping one PE: each PE
    type's ``reference_behaviour`` (registry entry), which counts step by step."""
    return pe_type(pe.type).reference_behaviour(pe, int(x), int(y), bool(swappable))


# --- one fold: the wavefront, cycle by cycle ----------------------------------------------------
def step_fold(R: int, C: int, preload: int, slots: int, slot_cycles: int) -> int:
    """Cycles until every PE of an R x C array has finished ``slots`` slots."""
    nxt = np.zeros((R, C), np.int64)  # next slot each PE will start
    busy = np.zeros((R, C), np.int64)  # cycle at which each PE becomes free
    big = np.iinfo(np.int64).max
    c = preload  # stationary values are loaded one row per cycle before streaming starts
    while True:
        if (nxt == slots).all() and (busy <= c).all():
            return int(busy.max()) if slots else c
        prev = nxt.copy()  # slots started before this cycle
        left = np.full((R, C), big)
        left[:, 1:] = prev[:, :-1]
        up = np.full((R, C), big)
        up[1:, :] = prev[:-1, :]
        go = (busy <= c) & (nxt < slots) & (left > nxt) & (up > nxt)
        busy[go] = c + slot_cycles
        nxt[go] += 1
        c += 1


def step_pipelined(R: int, C: int, preload: int, fold_slots: list[int], slot_cycles: int,
                   shadow: bool = True) -> tuple[int, list[int]]:
    """Folds streamed back to back (``array.fold_overlap`` wavefront/shadow), cycle by cycle: every
    PE runs the slots of fold 0, then fold 1, ... with the wavefront rule of ``step_fold``. The
    stationary values of a fold shift in for ``preload`` cycles: with ``shadow`` registers the
    load starts when the previous fold starts at the corner PE; without, when the corner PE has
    finished the previous fold. Fold 0 starts after its preload. Returns (cycles until every PE
    is done, the cycle each fold starts at the corner PE)."""
    bounds = np.cumsum([0] + list(fold_slots))  # global slot index where each fold starts
    total = int(bounds[-1])
    nxt = np.zeros((R, C), np.int64)
    busy = np.zeros((R, C), np.int64)
    big = np.iinfo(np.int64).max
    starts: list[int] = []
    c = preload
    while True:
        if (nxt == total).all() and (busy <= c).all():
            return int(busy.max()), starts
        prev = nxt.copy()
        left = np.full((R, C), big)
        left[:, 1:] = prev[:, :-1]
        up = np.full((R, C), big)
        up[1:, :] = prev[:-1, :]
        go = (busy <= c) & (nxt < total) & (left > nxt) & (up > nxt)
        f = len(starts)  # the next fold to start at the corner
        if go[0, 0] and f < len(fold_slots) and nxt[0, 0] == bounds[f]:
            if f and c < (starts[-1] if shadow else busy[0, 0]) + preload:
                go[0, 0] = False  # its stationary values are still shifting in
            else:
                starts.append(c)
        busy[go] = c + slot_cycles
        nxt[go] += 1
        c += 1


# --- the whole GEMM: folds, buffers, pipeline ---------------------------------------------------
def simulate_gemm(arch: ArchSpec, M: int, N: int, K: int, x_bits: int, y_bits: int, out_bits: int,
                  G: int = 1, swappable: bool = False, x_elems: float | None = None,
                  value_bytes: float | None = None) -> RefResult:
    """Step ``G`` GEMMs ``(M x K) @ (K x N)`` through ``arch``; small shapes only.

    ``x_elems``: elements of the real first-operand tensor per instance (a conv's input, not
    im2col); default ``M * K``. ``value_bytes``: bytes per streamed value when sizing temporal
    blocks; default the streamed operand's stored width, at least one byte.
    """
    R, C, df = arch.array.rows, arch.array.cols, arch.array.dataflow
    slot_c, lanes, cx, cy = pe_behaviour(arch.pe, x_bits, y_bits, swappable)
    passes = cx * cy
    b = arch.buffers
    cap = {"i": b.usable_bytes("ifmap"), "f": b.usable_bytes("filter"), "o": b.usable_bytes("ofmap")}
    acc = arch.accumulator.width_bits / 8.0
    xb, yb, ob = x_bits / 8.0, y_bits / 8.0, out_bits / 8.0
    x_real = M * K if x_elems is None else x_elems  # X values as stored in DRAM and the ifmap buffer
    share = x_real / (M * K)  # real input values per im2col value a slice carries from DRAM
    X_fits, W_fits = x_real * xb <= cap["i"], K * N * yb <= cap["f"]

    # spatial rows/cols and the temporal length, by what each dataflow holds still
    if df == "ws":
        rows_dim, cols_dim, T, preload = K, N, M, R
    elif df == "os":
        rows_dim, cols_dim, T, preload = M, N, K, 0
    else:
        rows_dim, cols_dim, T, preload = K, M, N, R
    # values one temporal row of the streamed operand occupies in its buffer: a ws row of X is
    # one output pixel's share of the real input; an is row of W is one column of K weights
    row_vals = x_real / M if df == "ws" else K
    if value_bytes is None:  # blocks hold the streamed operand at its stored width, >= 1 byte
        value_bytes = max(1.0, (x_bits if df == "ws" else y_bits) / 8.0)
    tb = T  # shrink the temporal block until its partial sums and streamed rows fit
    if df != "os" and arch.buffers.temporal_blocking:
        cap_s = cap["i"] if df == "ws" else cap["f"]
        while tb > 1 and (tb * min(C, cols_dim) * acc > cap["o"] or tb * row_vals * value_bytes > cap_s):
            tb -= 1
    block_fits = tb * row_vals * (xb if df == "ws" else yb) <= (cap["i"] if df == "ws" else cap["f"])
    memo: dict = {}
    folds = []  # (compute cycles, DRAM load bytes, DRAM store bytes) per fold
    sram = 0.0
    nfolds = 0
    piped, shadow = arch.array.fold_overlap != "none", arch.array.fold_overlap == "shadow"
    for _g in range(G):
        resident_x, resident_w = set(), set()
        run: list[int] = []  # pipelined: slots of every fold pass of this instance, in order
        first_fold = len(folds)
        for t0 in range(0, T, tb):
            t = min(tb, T - t0)
            slots = _slots(t, lanes)
            for c0 in range(0, cols_dim, C):
                cols = min(C, cols_dim - c0)
                r_idx = 0
                n_rounds = -(-rows_dim // R) * passes
                psum_fits = t * cols * acc <= cap["o"]
                for r0 in range(0, rows_dim, R):
                    rows = min(R, rows_dim - r0)
                    load = store = cyc = 0.0
                    # tiles this fold needs: ((key, bytes), stays resident once fetched?)
                    if df == "ws":  # X block slice streamed (kept for the block), W tile stationary
                        need_x, need_w = (("x", t0, r0), t * rows * xb), (("w", r0, c0), rows * cols * yb)
                        keep_x, keep_w = block_fits, W_fits
                    elif df == "os":
                        need_x, need_w = (("x", r0), rows * K * xb), (("w", c0), K * cols * yb)
                        keep_x, keep_w = X_fits, W_fits
                    else:  # is: X tile stationary, W block slice streamed
                        need_x, need_w = (("x", r0, c0), rows * cols * xb), (("w", t0, r0), rows * t * yb)
                        keep_x, keep_w = X_fits, block_fits
                    for (key, nbytes), res, keep, dram_share in ((need_x, resident_x, keep_x, share),
                                                                 (need_w, resident_w, keep_w, 1.0)):
                        if key not in res:
                            load += nbytes * dram_share
                            if keep:
                                res.add(key)
                    for _p in range(passes):
                        if piped:
                            run.append(slots)
                        else:
                            cyc += _fold_cycles(memo, R, C, preload, slots, slot_c)
                        nfolds += 1
                        sram += need_x[1] / cx + need_w[1] / cy  # one chunk of each operand per pass
                        if df != "os":
                            ps = t * cols * acc
                            if r_idx > 0:  # read back the partial sums of the previous round
                                sram += ps
                                if not psum_fits:
                                    load += ps
                            if r_idx < n_rounds - 1:  # write partial sums for the next round
                                sram += ps
                                if not psum_fits:
                                    store += ps
                            else:
                                sram += t * cols * ob
                                store += t * cols * ob
                            r_idx += 1
                    if df == "os":
                        sram += rows * cols * ob
                        store += rows * cols * ob
                    folds.append((cyc, load, store))
        if piped:  # each fold's compute: the cycles until the next one starts (the last: the drain)
            total, starts = step_pipelined(R, C, preload, run, slot_c, shadow)
            ends = starts[1:] + [total]
            for i in range(first_fold, len(folds)):
                j = (i - first_fold) * passes
                folds[i] = (ends[j + passes - 1] - (starts[j] if j else 0), *folds[i][1:])
    bw = arch.dram_bytes_per_cycle
    compute = int(sum(f[0] for f in folds))
    dram = float(sum(f[1] + f[2] for f in folds))
    total = _pipeline(folds, bw, arch.buffers.double_buffered)
    return RefResult(compute, dram, sram + dram, total, nfolds)


def _pipeline(folds, bw: float, overlap: bool) -> float:
    """Run folds through load -> compute -> store on one DRAM channel."""
    if not overlap:
        return float(sum(c + (ld + st) / bw for c, ld, st in folds))
    comp_end = [0.0, 0.0]  # compute end of the last two folds (their buffer halves)
    load_end = dram_free = folds[0][1] / bw if folds else 0.0
    for i, (c, _ld, st) in enumerate(folds):
        start = max(load_end, comp_end[-1])
        end = start + c
        if i + 1 < len(folds):  # next load: a buffer half frees when fold i-1 has computed
            ls = max(dram_free, comp_end[-1])
            load_end = dram_free = ls + folds[i + 1][1] / bw
        dram_free = max(dram_free, end) + st / bw
        comp_end = [comp_end[-1], end]
    return max(dram_free, comp_end[-1])


# --- a tiled mapping, tile by tile ----------------------------------------------------------------
def simulate_tiled(arch: ArchSpec, M: int, N: int, K: int, x_bits: int, y_bits: int, out_bits: int,
                   order: str, Mt: int, Nt: int, Kt: int, G: int = 1, swappable: bool = False,
                   x_elems: float | None = None) -> RefResult:
    """Walk a mapper candidate (``order`` of the tile loops ``m, n, k``, outermost first, over tiles
    of ``Mt x Nt x Kt``) through one resident tile per operand: a tile is fetched from DRAM when
    the loops move to a tile index it does not hold; an output tile left before its reduction is
    done is written as partial sums at accumulator width and read back when visited again; each
    tile's folds are stepped on the wavefront. Counts compute cycles and DRAM bytes (SRAM and
    the pipeline are not modelled here: ``total_cycles`` is compute + DRAM time)."""
    R, C, df = arch.array.rows, arch.array.cols, arch.array.dataflow
    slot_c, lanes, cx, cy = pe_behaviour(arch.pe, x_bits, y_bits, swappable)
    passes = cx * cy
    acc = arch.accumulator.width_bits / 8.0
    share = (M * K if x_elems is None else x_elems) / (M * K)
    preload = 0 if df == "os" else R
    extent = {"m": M, "n": N, "k": K}
    size = {"m": Mt, "n": Nt, "k": Kt}
    tiles = {d: [(s, min(size[d], extent[d] - s)) for s in range(0, extent[d], size[d])] for d in "mnk"}
    memo: dict = {}
    compute, dram, nfolds = 0, 0.0, 0
    for _g in range(G):
        held = {"x": None, "w": None, "o": None}
        o_size = (0, 0)  # extent of the held output tile
        done_k: dict = {}  # output tile -> k tiles accumulated so far
        run: list[int] = []  # pipelined: slots of every fold of this instance, in order
        for i0 in tiles[order[0]]:
            for i1 in tiles[order[1]]:
                for i2 in tiles[order[2]]:
                    at = dict(zip(order, (i0, i1, i2)))
                    (m0, mt), (n0, nt), (k0, kt) = at["m"], at["n"], at["k"]
                    if held["x"] != (m0, k0):
                        held["x"] = (m0, k0)
                        dram += mt * kt * share * x_bits / 8.0
                    if held["w"] != (k0, n0):
                        held["w"] = (k0, n0)
                        dram += kt * nt * y_bits / 8.0
                    if held["o"] != (m0, n0):
                        if held["o"] is not None:  # leave the previous output tile
                            dram += _leave_output(done_k[held["o"]], len(tiles["k"]), *o_size, acc, out_bits)
                        held["o"], o_size = (m0, n0), (mt, nt)
                        if done_k.get((m0, n0), 0) > 0:  # partial sums come back
                            dram += mt * nt * acc
                    done_k[(m0, n0)] = done_k.get((m0, n0), 0) + 1
                    # the tile's folds: spatial rows x columns of the dataflow, the temporal extent streamed
                    rows, cols, t = {"ws": (kt, nt, mt), "is": (kt, mt, nt), "os": (mt, nt, kt)}[df]
                    slots = _slots(t, lanes)
                    for _fold in range(len(range(0, rows, R)) * len(range(0, cols, C)) * passes):
                        if arch.array.fold_overlap != "none":
                            run.append(slots)
                        else:
                            compute += _fold_cycles(memo, R, C, preload, slots, slot_c)
                        nfolds += 1
        dram += _leave_output(done_k[held["o"]], len(tiles["k"]), *o_size, acc, out_bits)
        if run:
            compute += step_pipelined(R, C, preload, run, slot_c, arch.array.fold_overlap == "shadow")[0]
    return RefResult(compute, dram, float("nan"), compute + dram / arch.dram_bytes_per_cycle, nfolds)


def _slots(t: int, lanes: int) -> int:
    """Slots a PE needs for ``t`` streamed rows, ``lanes`` rows per slot, counted one by one."""
    slots = 0
    while slots * lanes < t:
        slots += 1
    return slots


def _fold_cycles(memo: dict, R: int, C: int, preload: int, slots: int, slot_c: int) -> int:
    """``step_fold``, stepped once per distinct (slots, slot cycles) of a call."""
    key = (slots, slot_c)
    if key not in memo:
        memo[key] = step_fold(R, C, preload, slots, slot_c)
    return memo[key]


def _leave_output(done: int, k_tiles: int, mt: int, nt: int, acc: float, out_bits: int) -> float:
    """Bytes written when an output tile of ``mt x nt`` is left: final values or partial sums."""
    return mt * nt * (out_bits / 8.0 if done == k_tiles else acc)
