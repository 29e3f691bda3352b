"""The mapper: per GEMM, search loop orders and tile sizes under the buffer capacities.

A candidate mapping tiles the GEMM ``(M x K) @ (K x N)`` into on-chip tiles ``Mt x Kt x Nt``
and walks the tiles in one of the six loop orders of ``m, n, k`` (outermost first). Inside a
tile the array runs its dataflow's fold schedule (``mapping``): the dataflow fixes which GEMM
dimension is temporal (ws: M, is: N, os: K) and which are spatial (rows in units of ``R``,
columns in units of ``C``), so spatial tiles are whole folds and only the temporal tile adds
fill/drain (``preload + R + C - 2`` per fold and tile). Each buffer holds one tile of its
operand at its stored bits (X in ``ifmap``, W in ``filter``, outputs / partial sums in
``ofmap`` at accumulator width; half the buffer when double-buffered), so a candidate is
feasible when all three tiles fit. For every pair of spatial tile sizes (halvings of the
dimension in fold units) the temporal tile is the largest that fits: a longer one is never worse.

Traffic follows from the loop order with one resident tile per operand: an operand is fetched
again each time its tile index changes, so its DRAM bytes are its size times the product of the
counts of the loops it does not depend on that sit outside its innermost changing loop.
Outputs are visited ``v`` times per tile when the reduction loop ``k`` sits outside the
innermost output loop: every visit but the last writes partial sums at accumulator width, every
visit but the first reads them back (``2 (v-1) M N acc`` bytes), the last writes the output at
its stored bits. Compulsory traffic (each tensor once, as stored) is the floor.

Two more candidates are today's fixed schedules (``memory``): SCALE-Sim's one block and the
temporal blocking that keeps partial sums on chip, both allowing operands that do not fit (they
are refetched per fold, partial sums spill). The mapper returns the best candidate per op for
the arch's objective (``mapping.objective``: latency, energy or edp; ties: fewer DRAM bytes,
then the lower candidate index), or one of the fixed schedules when ``mapping.mapper`` asks.
Everything is vectorised over (ops x candidates).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from earlyq_sim.simulator.cost import energy as en
from earlyq_sim.simulator.cost.arch import ArchSpec
from earlyq_sim.simulator.cost.cycle_model import FOLD_OVERLAPS, blocked_cycles, stream_row_values
from earlyq_sim.simulator.cost.mapping import ceil_div, map_gemm, stream_value_bytes, temporal_blocks
from earlyq_sim.simulator.cost.memory import gemm_traffic

#: loop orders, outermost first; index = position in this tuple
ORDERS = tuple("".join(p) for p in permutations("mnk"))
SPLITS = 6  # spatial tile sizes tried per dimension: the whole dimension and 5 halvings (in folds)
T_SPLITS = 10  # temporal tile sizes tried: the whole dimension and 9 halvings
FIXED = {"scalesim": -1, "blocked": -2}  # candidate ids of the fixed schedules
#: per dataflow: (temporal dim, row dim (units of R), column dim (units of C)) among M, N, K
ROLES = {"ws": ("M", "K", "N"), "is": ("N", "K", "M"), "os": ("K", "M", "N")}


@dataclass(frozen=True)
class GemmMapping:
    """The chosen mapping and its cost per op (arrays; one entry per GEMM op, all G instances)."""

    cand: np.ndarray  # candidate id: >= 0 tiled (order * SPLITS**2 + ...), -1 scalesim, -2 blocked
    order: np.ndarray  # index into ORDERS (tiled only; -1 otherwise)
    Mt: np.ndarray  # tile sizes (fixed schedules: the block as the schedule cuts it)
    Nt: np.ndarray
    Kt: np.ndarray
    compute: np.ndarray  # compute cycles
    dram: np.ndarray  # DRAM bytes
    sram: np.ndarray  # on-chip buffer bytes (array side + every DRAM byte)
    compulsory: np.ndarray  # DRAM bytes if each tensor moved once at its stored bits
    prologue: np.ndarray  # bytes loaded before the first fold can start
    epilogue: np.ndarray  # bytes written after the last fold
    cycles: np.ndarray  # latency (overlap per ``memory.overlap``)
    tdim: str = "M"  # the dataflow's temporal dimension


def describe_mappings(cand, order, Mt, Nt, Kt, dataflow: str) -> list[str]:
    """Readable mapping per op (arrays from ``evaluate``'s ``map_*``/``tile_*`` columns):
    ``n>m>k M=64 N=128 K=288`` (tile loops, outermost first, and tile sizes), ``scalesim (one
    block)``, ``blocked (M in blocks of 512)``, or ``-`` for vector ops."""
    td = ROLES[dataflow][0]
    out = []
    for c, o, m, n, k in zip(cand, order, Mt, Nt, Kt):
        if not np.isfinite(c):
            out.append("-")
        elif c == FIXED["scalesim"]:
            out.append("scalesim (one block)")
        elif c == FIXED["blocked"]:
            out.append(f"blocked ({td} in blocks of {int({'M': m, 'N': n, 'K': k}[td])})")
        else:
            out.append(f"{'>'.join(ORDERS[int(o)])} M={int(m)} N={int(n)} K={int(k)}")
    return out


def latency(arch: ArchSpec, compute, dram, prologue, epilogue) -> np.ndarray:
    """Cycles of a schedule seen as one block of work: ``ideal`` overlap is ``max(compute,
    memory)``; ``tiles`` adds the first fill and the last write-back, which no compute hides;
    without double buffering nothing overlaps (sum)."""
    bw = arch.dram_bytes_per_cycle
    mem = np.asarray(dram, np.float64) / bw
    if not arch.buffers.double_buffered:
        return compute + mem
    if arch.memory.overlap == "ideal":
        return np.maximum(compute, mem)
    pro, epi = np.asarray(prologue, np.float64) / bw, np.asarray(epilogue, np.float64) / bw
    return pro + np.maximum(compute, np.maximum(mem - pro - epi, 0.0)) + epi


def fill_drain_bytes(df: str, R: int, C: int, M, N, K, x_share, xb, yb, ob) -> tuple[np.ndarray, np.ndarray]:
    """Bytes the array needs before its first fold can start and writes after its last one ends.

    The DMA streams in order, so the first fold starts once its stationary block and the first
    streamed row are on chip (os: the first row of each operand); the last write-back is the last
    row of outputs (os: the drained output block). Independent of the tiling, so mappings
    compete on their steady state (per-tile compute against per-tile DRAM), not on how small
    their first tile is."""
    M, N, K = (np.asarray(v, np.float64) for v in (M, N, K))
    xv, yv = np.asarray(x_share * xb, np.float64) / 8.0, np.asarray(yb, np.float64) / 8.0
    o = np.asarray(ob, np.float64) / 8.0
    r = lambda d: np.minimum(R, d)  # noqa: E731
    c = lambda d: np.minimum(C, d)  # noqa: E731
    if df == "ws":
        return r(K) * c(N) * yv + r(K) * xv, c(N) * o
    if df == "is":
        return r(K) * c(M) * xv + r(K) * yv, c(M) * o
    return r(M) * xv + c(N) * yv, r(M) * c(N) * o


def _fetch_mult(counts: dict, order: str, depends: str) -> np.ndarray:
    """Times an operand depending on loops ``depends`` is streamed from DRAM under ``order``."""
    mult = np.ones_like(counts["m"])
    inner_seen = np.zeros(counts["m"].shape, bool)  # an inner relevant loop with count > 1 exists
    for loop in reversed(order):  # innermost first
        c = counts[loop]
        if loop in depends:
            inner_seen |= c > 1
        else:
            mult = np.where(inner_seen, mult * c, mult)
    return mult


def _changes(counts: dict, order: str, depends: str, level: int) -> np.ndarray:
    """Whether an operand's tile changes when loop ``order[level]`` advances (inner loops reset)."""
    ch = np.zeros(counts["m"].shape, bool)
    for j in range(level, 3):
        loop = order[j]
        if loop in depends:
            ch |= (j == level) | (counts[loop] > 1)
    return ch


def _temporal_sum(T, t, fold) -> np.ndarray:
    """Sum over temporal tiles of ``fold(t_l)`` (full tiles plus a remainder)."""
    full, rem = T // t, T % t
    return full * fold(t) + np.where(rem > 0, fold(np.maximum(rem, 1)), 0)


def _grid(D, unit, n: int) -> np.ndarray:
    """Tile sizes tried for a dimension of extent ``D`` (ops,): the whole dimension and its
    halvings in multiples of ``unit`` (folds), shape (ops, n); repeats where the halvings run out."""
    units = ceil_div(D, unit)[:, None]
    return np.minimum(D[:, None], ceil_div(units, 2 ** np.arange(n, dtype=np.int64)[None, :]) * unit)


def tiled_candidates(arch: ArchSpec, dims: dict, x_share, xb, yb, ob, f, fill=None):
    """Every tiled candidate of every op, one GEMM instance each.

    ``dims``: int64 arrays ``M, N, K`` (ops,); ``x_share``: real input values per im2col value;
    bits as float arrays; ``f``: ``BitFactors``. Returns ``(dram, cycles, small)``: DRAM bytes
    and latency cycles of shape (ops, orders, row tiles, column tiles, temporal tiles), and a
    dict of (ops, 1, rows, cols, temporal) arrays: ``compute`` cycles, ``arr`` (array-side SRAM
    bytes), ``fits`` (all three tiles fit their buffers) and the tile sizes ``Mt, Nt, Kt``.
    ``fill``: the op's ``fill_drain_bytes`` when the caller has them (they do not depend on the
    tiling)."""
    R, C, df = arch.array.rows, arch.array.cols, arch.array.dataflow
    td, rd, cd = ROLES[df]
    acc = arch.accumulator.width_bits / 8.0
    b = arch.buffers
    cap = {"X": b.usable_bytes("ifmap"), "W": b.usable_bytes("filter"), "O": b.usable_bytes("ofmap")}
    n = len(dims["M"])
    shp = (n, SPLITS, SPLITS, T_SPLITS)
    tile = {rd: np.broadcast_to(_grid(dims[rd], R, SPLITS)[:, :, None, None], shp),
            cd: np.broadcast_to(_grid(dims[cd], C, SPLITS)[:, None, :, None], shp),
            td: np.broadcast_to(_grid(dims[td], 1, T_SPLITS)[:, None, None, :], shp)}
    if df == "os":  # outputs finish in the PEs: the reduction (temporal) is never split
        tile[td] = np.broadcast_to(dims[td][:, None, None, None], shp)
    tile = {d: v.astype(np.float64) for d, v in tile.items()}
    col = lambda a: np.asarray(a, np.float64)[:, None, None, None]  # noqa: E731  (per-op value)
    per = {"X": col(x_share * xb / 8.0), "W": col(yb / 8.0), "O": col(np.full(n, acc) if df != "os" else ob / 8.0)}
    tb = {"X": tile["M"] * tile["K"] * per["X"], "W": tile["K"] * tile["N"] * per["W"],
          "O": tile["M"] * tile["N"] * per["O"]}
    fits = (tb["X"] <= cap["X"]) & (tb["W"] <= cap["W"]) & (tb["O"] <= cap["O"])
    full = {d: col(dims[d]) for d in "MNK"}
    counts = {d.lower(): np.ceil(full[d] / tile[d]) for d in "MNK"}
    # compute: spatial tiles are whole folds, so only the temporal tiling changes the count
    pre = 0 if df == "os" else R
    slot, lanes = f.slot[:, None, None, None], f.lanes[:, None, None, None]
    T, t = dims[td][:, None, None, None], tile[td].astype(np.int64)
    fold, ends = FOLD_OVERLAPS[arch.array.fold_overlap]
    tsum = _temporal_sum(T, t, lambda tl: fold(R, C, pre, tl, slot, lanes))
    # the last tile's last fold ends the instance: its extent is the remainder if there is one
    compute = col(f.passes * ceil_div(dims[rd], R) * ceil_div(dims[cd], C)) * tsum \
        + ends(R, C, pre, np.where(T % t > 0, T % t, t), slot, lanes)
    Xd, W, O = full["M"] * full["K"] * per["X"], full["K"] * full["N"] * per["W"], full["M"] * full["N"] * col(ob / 8)
    psum = full["M"] * full["N"] * acc
    # array-side SRAM: the streamed operand once per column fold, the stationary one per temporal tile
    X_arr = full["M"] * full["K"] * col(xb / 8.0)
    cx, cy = col(f.chunks_x), col(f.chunks_y)
    tc = counts[td.lower()]
    if df == "ws":
        arr = X_arr * col(ceil_div(dims["N"], C)) * cy + W * tc * cx
    elif df == "is":
        arr = X_arr * tc * cy + W * col(ceil_div(dims["M"], C)) * cx
    else:
        arr = X_arr * col(ceil_div(dims["N"], C)) * cy + W * col(ceil_div(dims["M"], R)) * cx
    rounds = col(ceil_div(dims["K"], R) * f.passes) if df != "os" else 1.0
    arr = arr + O + (2.0 * (rounds - 1.0) * psum if df != "os" else 0.0)
    if fill is None:
        fill = fill_drain_bytes(df, R, C, dims["M"], dims["N"], dims["K"], x_share, xb, yb, ob)
    pro, epi = (col(v) for v in fill)
    bw = arch.dram_bytes_per_cycle
    iters = counts["m"] * counts["n"] * counts["k"]
    comp_it = compute / iters
    res = {k: [] for k in ("dram", "cycles")}
    for order in ORDERS:
        visits = _fetch_mult(counts, order, "mn") if df != "os" else np.ones(shp)
        dram = Xd * _fetch_mult(counts, order, "mk") + W * _fetch_mult(counts, order, "kn") + O \
            + 2.0 * (visits - 1.0) * psum
        if not b.double_buffered or arch.memory.overlap == "ideal":
            cyc = latency(arch, compute, dram, pro, epi)
        else:  # double-buffered tiles: each loop advance costs max(compute of a tile, its DRAM)
            steps, mems = [], []
            for lvl in (2, 1, 0):  # advances of the innermost, middle, outermost loop
                c_l = counts[order[lvl]]
                outer = np.prod([counts[order[j]] for j in range(lvl)], axis=0) if lvl else np.ones(shp)
                steps.append(outer * (c_l - 1))
                m = (np.where(_changes(counts, order, "mk", lvl), tb["X"], 0.0)
                     + np.where(_changes(counts, order, "kn", lvl), tb["W"], 0.0))
                mems.append((m, _changes(counts, order, "mn", lvl)))
            # the rest of the first tile streams in while it computes (the DMA streams in order)
            first = np.maximum(tb["X"] + tb["W"] - pro, 0.0)
            # outputs: whatever DRAM is left once inputs and the final write-back are placed is
            # spread over the advances that change the output tile and the last tile (write-backs,
            # partial sums), so no byte goes uncharged: latency >= DRAM bytes / bandwidth
            in_bytes = sum(s * m for s, (m, _) in zip(steps, mems)) + pro + first
            o_steps = sum(s * och for s, (_, och) in zip(steps, mems))
            o_each = np.maximum(dram - in_bytes - epi, 0.0) / (o_steps + 1.0)
            cyc = (pro + epi) / bw + np.maximum(comp_it, (first + o_each) / bw)
            for s, (m, och) in zip(steps, mems):
                cyc = cyc + s * np.maximum(comp_it, (m + np.where(och, o_each, 0.0)) / bw)
        res["dram"].append(dram)
        res["cycles"].append(cyc)
    # large arrays per (op, order, r, c, t); the rest per (op, 1, r, c, t), broadcast when combined
    small = {"compute": compute, "arr": arr, "fits": fits,
             "Mt": tile["M"], "Nt": tile["N"], "Kt": tile["K"]}
    return np.stack(res["dram"], axis=1), np.stack(res["cycles"], axis=1), \
        {k: np.broadcast_to(v, shp)[:, None] for k, v in small.items()}


def _fixed(arch: ArchSpec, M, N, K, x, y, ob, f, x_el, blocking: bool, value_bytes=1.0):
    """One of today's fixed schedules (per op arrays, one GEMM instance); ``value_bytes`` sizes
    the temporal blocks' streamed values (see ``mapping.temporal_blocks``)."""
    R, C, df = arch.array.rows, arch.array.cols, arch.array.dataflow
    mp = map_gemm(df, R, C, M, N, K)
    blocks = temporal_blocks(arch, mp, stream_row_values(df, M, K, x_el), blocking=blocking,
                             value_bytes=value_bytes)
    comp = blocked_cycles(R, C, mp, blocks, f, arch.array.fold_overlap).astype(np.float64)
    tr = gemm_traffic(arch, mp, blocks, M, N, K, np.ones_like(M), x, y, ob, f, x_elems=x_el)
    return comp, tr.dram, tr.sram, blocks.size


def map_gemms(arch: ArchSpec, M, N, K, G, x_bits, y_bits, out_bits, f, x_elems, e_compute_pj) -> GemmMapping:
    """The best mapping of each GEMM op (arrays in: shapes, bits, ``BitFactors``, real input
    elements per instance, compute energy in pJ of all instances) for the arch's objective.

    Ops with equal inputs (a UNet repeats its layer shapes) are mapped once."""
    cols = [np.asarray(v, np.float64) for v in (M, N, K, G, x_bits, y_bits, np.broadcast_to(out_bits, np.shape(M)),
                                                 x_elems, e_compute_pj, f.slot, f.lanes, f.chunks_x, f.chunks_y)]
    key = np.stack(cols, axis=1)
    uniq, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    if len(uniq) < len(key):
        sub = lambda a: np.asarray(a)[first]  # noqa: E731
        fu = type(f)(*(sub(getattr(f, fld)) for fld in f.__dataclass_fields__))
        gm = _map_unique(arch, sub(M), sub(N), sub(K), sub(G), sub(x_bits), sub(y_bits),
                         sub(np.broadcast_to(out_bits, np.shape(M))), fu, sub(x_elems), sub(e_compute_pj))
        return GemmMapping(*(getattr(gm, fld)[inv] if isinstance(getattr(gm, fld), np.ndarray) else getattr(gm, fld)
                             for fld in gm.__dataclass_fields__))
    return _map_unique(arch, M, N, K, G, x_bits, y_bits, out_bits, f, x_elems, e_compute_pj)


def _map_unique(arch: ArchSpec, M, N, K, G, x_bits, y_bits, out_bits, f, x_elems, e_compute_pj) -> GemmMapping:
    M, N, K = (np.asarray(v, np.int64) for v in (M, N, K))
    Gf = np.asarray(G, np.float64)
    x, y = np.asarray(x_bits, np.float64), np.asarray(y_bits, np.float64)
    ob = np.broadcast_to(np.asarray(out_bits, np.float64), M.shape)
    x_el = np.asarray(x_elems, np.float64)
    n = len(M)
    mode = arch.mapping.mapper
    if mode == "fixed":
        mode = "blocked" if arch.buffers.temporal_blocking else "scalesim"
    fixed = {}
    stream_bytes = stream_value_bytes(arch.array.dataflow, x, y)
    for name, blocking in (("scalesim", False), ("blocked", True)):
        if mode in (name, "search"):
            fixed[name] = _fixed(arch, M, N, K, x, y, ob, f, x_el, blocking, stream_bytes)
    # the first fill and the last write-back do not depend on the mapping: once per op
    pro, epi = fill_drain_bytes(arch.array.dataflow, arch.array.rows, arch.array.cols, M, N, K, x_el / (M * K),
                                x, y, ob)
    bw = arch.dram_bytes_per_cycle
    exposed_on = arch.buffers.double_buffered and arch.memory.overlap == "tiles"
    e_comp = np.asarray(e_compute_pj, np.float64)

    def scored(comp1, dram1, arr1, cyc1, pro, epi, fits, g):
        """Totals over G instances and the objective; inputs per instance (broadcastable)."""
        # G instances run back to back: the fill before the first and the write-back after the last
        # are exposed once, the rest repeats per instance
        exposed = (pro + epi) / bw if exposed_on else 0.0
        dram, sram = dram1 * g, (arr1 + dram1) * g
        cyc = np.maximum(g * (cyc1 - exposed) + exposed, dram / bw)  # the bytes still cross the channel
        if arch.mapping.objective == "latency":
            obj = cyc
        else:
            energy = e_comp.reshape((-1,) + (1,) * (np.ndim(dram) - 1)) + en.sram_pj(arch, sram) \
                + en.dram_pj(arch, dram) + en.leakage_pj(arch, cyc)
            obj = energy if arch.mapping.objective == "energy" else cyc * energy
        return np.where(fits, obj, np.inf), dram, sram, cyc

    # the fixed schedules: one candidate each, columns 0.. of the score table
    fx = []
    td = ROLES[arch.array.dataflow][0]
    for name, (comp, dram, sram, tb) in fixed.items():
        tile = {d: (tb if d == td else v).astype(np.float64) for d, v in (("M", M), ("N", N), ("K", K))}
        cyc1 = latency(arch, comp, dram, pro, epi)
        obj, dram_t, sram_t, cyc = scored(comp, dram, sram - dram, cyc1, pro, epi, True, Gf)
        fx.append({"cand": np.full(n, FIXED[name], np.float64), "order": np.full(n, -1.0), "Mt": tile["M"],
                   "Nt": tile["N"], "Kt": tile["K"], "compute": comp * Gf, "dram": dram_t, "sram": sram_t,
                   "cycles": cyc, "obj": obj})
    objs = [c["obj"][:, None] for c in fx]
    drams = [c["dram"][:, None] for c in fx]
    if mode == "search":
        dram1, cyc1, sm = tiled_candidates(arch, {"M": M, "N": N, "K": K}, x_el / (M * K), x, y, ob, f, (pro, epi))
        g5 = Gf.reshape(-1, 1, 1, 1, 1)
        obj_t, dram_t, sram_t, cyc_t = scored(sm["compute"], dram1, sm["arr"], cyc1, pro.reshape(g5.shape),
                                              epi.reshape(g5.shape), sm["fits"], g5)
        objs.append(obj_t.reshape(n, -1))
        drams.append(dram_t.reshape(n, -1))
    obj, dram_all = np.concatenate(objs, axis=1), np.concatenate(drams, axis=1)
    # lexicographic: objective, then DRAM bytes, then the first candidate (fixed schedules first)
    tie = obj == obj.min(axis=1, keepdims=True)
    best = np.argmin(np.where(tie, dram_all, np.inf), axis=1)
    rows = np.arange(n)
    out = {k: np.zeros(n) for k in ("cand", "order", "Mt", "Nt", "Kt", "compute", "dram", "sram", "cycles")}
    for j, c in enumerate(fx):
        sel = best == j
        for k in out:
            out[k][sel] = np.broadcast_to(c[k], (n,))[sel]
    sel = best >= len(fx)
    if sel.any():
        i = rows[sel]
        o, r, cc, tt = np.unravel_index(best[sel] - len(fx), dram1.shape[1:])
        z = np.zeros_like(o)
        for k, src in (("dram", dram_t), ("sram", sram_t), ("cycles", cyc_t)):
            out[k][sel] = src[i, o, r, cc, tt]
        for k in ("Mt", "Nt", "Kt"):
            out[k][sel] = sm[k][i, z, r, cc, tt]
        out["compute"][sel] = sm["compute"][i, z, r, cc, tt] * Gf[sel]
        out["order"][sel] = o
        out["cand"][sel] = best[sel] - len(fx)
    compulsory = Gf * (x_el * x + K * N * y + M * N * ob) / 8.0
    return GemmMapping(out["cand"], out["order"], out["Mt"], out["Nt"], out["Kt"], out["compute"], out["dram"],
                       out["sram"], compulsory, pro, epi, out["cycles"], td)
