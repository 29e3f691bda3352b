"""Single-pass (numba) versions of the elementwise steps around each integer GEMM.

Bit for bit the same as the torch reference passes (``quant_modules.quantize_centered`` and
``fixed_point.requantize`` + ``codes * scale``; tests compare them), but one read and one write
per element instead of four to six passes with int64 temporaries:

* :func:`quantize_centered`: ``clamp(round_half_even(x / s), lo, hi)`` in float32. ``x / s`` is
  a float32 division by the float32 value of ``s``, as torch computes ``tensor / python_float``
  (not ``x * (1/s)``, which rounds differently).
* :func:`requant_dequant`: exact accumulator (float32/float64 holding integers, or int64) ->
  optional signed ``acc_bits`` check (count, min, max; saturate by clamping) ->
  ``clamp((acc * m0 + 2^(shift-1)) >> shift, qmin, qmax)`` in int64 -> ``float32(code) *
  float32(s_out)``. ``m0``/``shift`` per channel of a (outer, C, inner) view, any strides, so
  the accumulator may come in channels-last while the output is written in NCHW.

Kernels run single-threaded (no ``parallel``), without fastmath, and release the GIL.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


@njit(cache=True, nogil=True)
def _quantize_flat(x, out, s, lo, hi):
    """out[i] = clamp(rint(x[i] / s), lo, hi); float32, contiguous (vectorises)."""
    for i in range(x.size):
        v = np.rint(x[i] / s)
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        out[i] = v


@njit(cache=True, nogil=True)
def _quantize_t(x, out, s, lo, hi):
    """x (A, R, S) -> out (A, S, R) transposed (NCHW -> NHWC): quantize one sample contiguously,
    then transpose (a strided quantize loop does not vectorise and calls libm's rint)."""
    na, nr, ns = x.shape
    tmp = np.empty((nr, ns), np.float32)
    for a in range(na):
        _quantize_flat(x[a].ravel(), tmp.ravel(), s, lo, hi)
        _transpose(tmp, out[a])


@njit(cache=True, nogil=True, inline="always")
def _transpose(src, dst):
    """dst (S, R) = src (R, S)^T, in strips of 16 source rows: 16 sequential read streams and one
    64-byte write per destination row (a row-by-row loop thrashes L1 on power-of-two strides)."""
    nr, ns = src.shape
    r16 = nr - nr % 16
    for i0 in range(0, r16, 16):
        for j in range(ns):
            for i in range(16):
                dst[j, i0 + i] = src[i0 + i, j]
    for i in range(r16, nr):
        for j in range(ns):
            dst[j, i] = src[i, j]


@njit(cache=True, nogil=True, inline="always")
def _rq1(v, m, r, k, qmin, qmax, s):
    t = (v * m + r) >> k
    if t < qmin:
        t = qmin
    elif t > qmax:
        t = qmax
    return np.float32(t) * s


@njit(cache=True, nogil=True, inline="always")
def _clamp_acc(v, alo, ahi):
    """An accumulator value clamped to [alo, ahi], and 1 if it was outside (else 0)."""
    if v < alo or v > ahi:
        return min(max(v, alo), ahi), 1
    return v, 0


@njit(cache=True, nogil=True)
def _requant_rows(acc, out, m0, sh, rnd, qmin, qmax, s, check, alo, ahi):
    """acc, out (M, C) contiguous, multiplier per column. Returns (n_clamped, min, max) of acc
    when ``check`` (values outside [alo, ahi] are clamped first), else (0, 0, 0)."""
    nm, nc = acc.shape
    nbad, amin, amax = 0, _I64_MAX, _I64_MIN
    for i in range(nm):
        for c in range(nc):
            v = np.int64(acc[i, c])
            if check:
                amin, amax = min(amin, v), max(amax, v)
                v, bad = _clamp_acc(v, alo, ahi)
                nbad += bad
            out[i, c] = _rq1(v, m0[c], rnd[c], sh[c], qmin, qmax, s)
    return (nbad, amin, amax) if check else (0, 0, 0)


@njit(cache=True, nogil=True)
def _requant_mid(acc, out, m0, sh, rnd, qmin, qmax, s, check, alo, ahi):
    """acc, out (A, C, B) contiguous, multiplier per axis-1 index (NCHW convs, scalar case)."""
    na, nc, nb = acc.shape
    nbad, amin, amax = 0, _I64_MAX, _I64_MIN
    for a in range(na):
        for c in range(nc):
            m, r, k = m0[c], rnd[c], sh[c]
            for b in range(nb):
                v = np.int64(acc[a, c, b])
                if check:
                    amin, amax = min(amin, v), max(amax, v)
                    v, bad = _clamp_acc(v, alo, ahi)
                    nbad += bad
                out[a, c, b] = _rq1(v, m, r, k, qmin, qmax, s)
    return (nbad, amin, amax) if check else (0, 0, 0)


@njit(cache=True, nogil=True)
def _requant_nhwc_to_nchw(acc, out, m0, sh, rnd, qmin, qmax, s, check, alo, ahi):
    """acc (N, HW, C) -> out (N, C, HW), per-channel multiplier: rescale one sample in its own
    layout into a scratch buffer, then transpose."""
    na, nb, nc = acc.shape
    tmp = np.empty((nb, nc), np.float32)
    nbad, amin, amax = 0, _I64_MAX, _I64_MIN
    for a in range(na):
        n1, mn1, mx1 = _requant_rows(acc[a], tmp, m0, sh, rnd, qmin, qmax, s, check, alo, ahi)
        nbad += n1
        amin = min(amin, mn1)
        amax = max(amax, mx1)
        _transpose(tmp, out[a])
    return (nbad, amin, amax) if check else (0, 0, 0)


# -- the same rescale in float64 arithmetic, exact under stated limits (vectorises on AVX2,
# which has no 64-bit integer multiply or arithmetic variable shift) ---------------------------
# With m0 = mh 2^16 + ml (mh < 2^15, ml < 2^16), shift k in [16, 53] and |acc| <= 2^36:
#   L = acc ml + 2^(k-1)  (|L| < 2^53, exact),  Lq = floor(L / 2^16)  (exact),
#   floor((acc m0 + 2^(k-1)) / 2^k) = floor((acc mh + Lq) / 2^(k-16))
# because acc m0 + 2^(k-1) = (acc mh + Lq) 2^16 + r with 0 <= r < 2^16, and acc mh + Lq is an
# integer below 2^52 (exact); division by a power of two and floor are exact.
FAST_SHIFT = (16, 53)
FAST_ACC_BITS = 37          # |acc| <= 2^36


@njit(cache=True, nogil=True, inline="always")
def _rqf(v, mh, ml, rr, inv, qmin, qmax, s):
    lq = np.floor((v * ml + rr) * 1.52587890625e-05)        # 2^-16
    t = np.floor((v * mh + lq) * inv)
    return np.float32(min(max(t, qmin), qmax)) * s


@njit(cache=True, nogil=True)
def _requant_rows_f(acc, out, P, qmin, qmax, s):
    """Float64 form of :func:`_requant_rows` without the check; ``P`` = (mh, ml, 2^(k-1), 2^(16-k))."""
    nm, nc = acc.shape
    mh, ml, rr, inv = P[0], P[1], P[2], P[3]
    for i in range(nm):
        for c in range(nc):
            out[i, c] = _rqf(np.float64(acc[i, c]), mh[c], ml[c], rr[c], inv[c], qmin, qmax, s)


@njit(cache=True, nogil=True)
def _requant_mid_f(acc, out, P, qmin, qmax, s):
    na, nc, nb = acc.shape
    for a in range(na):
        for c in range(nc):
            mh, ml, rr, inv = P[0, c], P[1, c], P[2, c], P[3, c]
            for b in range(nb):
                out[a, c, b] = _rqf(np.float64(acc[a, c, b]), mh, ml, rr, inv, qmin, qmax, s)


@njit(cache=True, nogil=True)
def _requant_nhwc_to_nchw_f(acc, out, P, qmin, qmax, s):
    na, nb, nc = acc.shape
    tmp = np.empty((nb, nc), np.float32)
    for a in range(na):
        _requant_rows_f(acc[a], tmp, P, qmin, qmax, s)
        _transpose(tmp, out[a])


def quantize_centered(x: torch.Tensor, scale: float, lo: float, hi: float,
                      channels_last: bool = False) -> torch.Tensor:
    """float32 ``x`` -> float32 codes ``clamp(round(x / scale), lo, hi)`` (half to even).

    ``channels_last``: for a contiguous 4-D ``x``, write the codes in channels-last memory (same
    values and shape), which the conv engines prefer. A channels-last 4-D input always gives
    channels-last codes; any other input gives contiguous codes (the GEMMs are exact in any
    layout).
    """
    if x.dtype != torch.float32:
        raise TypeError(f"quantize_centered: float32 input expected, got {x.dtype}")
    args = (np.float32(scale), np.float32(lo), np.float32(hi))
    nd = x.dim()
    cl4 = nd == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if cl4 or (channels_last and nd == 4 and x.is_contiguous()):
        n, c, h, w = x.shape
        out = torch.empty(x.shape, dtype=torch.float32, memory_format=torch.channels_last)
        onhwc = out.permute(0, 2, 3, 1).view(-1)
        if cl4:         # already channels-last: elementwise over memory
            _quantize_flat(x.permute(0, 2, 3, 1).view(-1).numpy(), onhwc.numpy(), *args)
        else:
            _quantize_t(x.view(n, c, h * w).numpy(), onhwc.view(n, h * w, c).numpy(), *args)
        return out
    out = torch.empty(x.shape, dtype=torch.float32)
    if nd >= 2 and not x.is_contiguous() and x.transpose(-1, -2).is_contiguous():
        # a transposed view (attention's (B, C, L) -> (B, L, C)): contiguous codes for the GEMM
        r, c = x.shape[-2:]
        _quantize_t(x.transpose(-1, -2).reshape(-1, c, r).numpy(), out.view(-1, r, c).numpy(), *args)
        return out
    _quantize_flat(x.contiguous().view(-1).numpy(), out.view(-1).numpy(), *args)
    return out


class RescaleArrays:
    """Flat int64 NumPy copies of a rescale's ``m0``, ``shift`` and ``2^(shift-1)`` (C,), and the
    float64 parameters of the fast form (``fast``: every shift in ``FAST_SHIFT``)."""

    __slots__ = ("m0", "shift", "rnd", "P", "fast")

    def __init__(self, m0: torch.Tensor, shift: torch.Tensor, rnd: torch.Tensor) -> None:
        self.m0 = np.ascontiguousarray(m0.reshape(-1).numpy(), dtype=np.int64)
        self.shift = np.ascontiguousarray(shift.reshape(-1).numpy(), dtype=np.int64)
        self.rnd = np.ascontiguousarray(rnd.reshape(-1).numpy(), dtype=np.int64)
        self.fast = bool(np.all((self.shift >= FAST_SHIFT[0]) & (self.shift <= FAST_SHIFT[1]))
                         and np.all((self.m0 >= 0) & (self.m0 < 1 << 31)))
        k = np.clip(self.shift, *FAST_SHIFT)
        self.P = np.ascontiguousarray(np.stack([(self.m0 >> 16).astype(np.float64),
                                                (self.m0 & 0xFFFF).astype(np.float64),
                                                np.ldexp(1.0, k - 1), np.ldexp(1.0, 16 - k)]))


def requant_dequant(acc: torch.Tensor, ra: RescaleArrays, qmin: int, qmax: int, scale: float, chan_dim: int,
                    acc_bits: int, check: bool,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    force_int: bool = False) -> tuple[torch.Tensor, int, int, int]:
    """Exact accumulator -> float32 ``code * scale``; returns (out, n_clamped, acc_min, acc_max).

    ``acc``: float32/float64 holding integers, or int64. ``chan_dim``: the axis ``ra`` indexes
    (1 for convs, -1 for linear); a single multiplier applies to all elements. ``check``: apply a
    signed ``acc_bits`` accumulator (count and clamp values outside; min and max reported);
    without it the caller guarantees ``|acc| < 2^(acc_bits-1)`` and min and max are reported as
    0. The output has ``acc``'s shape, in ``memory_format`` for 4-D per-channel accumulators,
    else contiguous. ``force_int``: use the int64 kernels even where the float64 form applies.
    """
    shape, nd = acc.shape, acc.dim()
    nch = ra.m0.size
    fast = not check and not force_int and ra.fast and acc_bits <= FAST_ACC_BITS
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    iargs = (ra.m0, ra.shift, ra.rnd, qmin, qmax, np.float32(scale), check, lo, hi)
    fargs = (ra.P, float(qmin), float(qmax), np.float32(scale))
    res = (0, 0, 0)
    if nch == 1:                # one multiplier (attention): flat
        acc = acc.contiguous()
        out = torch.empty(shape, dtype=torch.float32)
        a3, o3 = acc.view(1, 1, -1).numpy(), out.view(1, 1, -1).numpy()
        if fast:
            _requant_mid_f(a3, o3, *fargs)
        else:
            res = _requant_mid(a3, o3, *iargs)
        return (out, *(int(v) for v in res))
    d = chan_dim % nd
    if shape[d] != nch:
        raise ValueError(f"requant_dequant: {nch} channel multipliers for axis {d} of shape {tuple(shape)}")
    if nd == 4 and d == 1:
        n, c, h, w = shape
        out = torch.empty(shape, dtype=torch.float32, memory_format=memory_format)
        acc_cl = acc.is_contiguous(memory_format=torch.channels_last) and not acc.is_contiguous()
        if memory_format == torch.channels_last:        # NHWC rows -> NHWC rows
            a2 = acc.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(-1, c).numpy()
            o2 = out.permute(0, 2, 3, 1).view(-1, c).numpy()
            if fast:
                _requant_rows_f(a2, o2, *fargs)
            else:
                res = _requant_rows(a2, o2, *iargs)
        elif acc_cl:                                    # NHWC -> NCHW, transposed per sample
            a3, o3 = acc.permute(0, 2, 3, 1).view(n, h * w, c).numpy(), out.view(n, c, h * w).numpy()
            if fast:
                _requant_nhwc_to_nchw_f(a3, o3, *fargs)
            else:
                res = _requant_nhwc_to_nchw(a3, o3, *iargs)
        else:                                           # NCHW -> NCHW
            a3, o3 = acc.contiguous().view(n, c, h * w).numpy(), out.view(n, c, h * w).numpy()
            if fast:
                _requant_mid_f(a3, o3, *fargs)
            else:
                res = _requant_mid(a3, o3, *iargs)
        return (out, *(int(v) for v in res))
    acc = acc.contiguous()
    out = torch.empty(shape, dtype=torch.float32)
    outer = int(np.prod(shape[:d], dtype=np.int64))
    inner = int(np.prod(shape[d + 1:], dtype=np.int64))
    a3, o3 = acc.view(outer, nch, inner).numpy(), out.view(outer, nch, inner).numpy()
    if inner == 1:
        if fast:
            _requant_rows_f(a3[:, :, 0], o3[:, :, 0], *fargs)
        else:
            res = _requant_rows(a3[:, :, 0], o3[:, :, 0], *iargs)
    elif fast:
        _requant_mid_f(a3, o3, *fargs)
    else:
        res = _requant_mid(a3, o3, *iargs)
    return (out, *(int(v) for v in res))


# -- 16-bit attention probabilities as two 8-bit limbs (PV in float32 instead of float64) -------
@njit(cache=True, nogil=True)
def _quantize_limbs(x, out, s, hi):
    """x (G, M, K) probabilities -> out (G, 2M, K): rows [0, M) the high limbs ``u >> 8``, rows
    [M, 2M) the low limbs ``u & 255`` of the codes ``u = clamp(rint(x / s), 0, hi)``."""
    ng, nm, nk = x.shape
    for g in range(ng):
        lo_part = out[g, nm:].ravel()
        hi_part = out[g, :nm].ravel()
        _quantize_flat(x[g].ravel(), lo_part, s, np.float32(0.0), hi)
        for i in range(nm * nk):
            u = lo_part[i]
            h = np.floor(u * np.float32(0.00390625))           # 2^-8, exact
            hi_part[i] = h
            lo_part[i] = u - h * np.float32(256.0)


@njit(cache=True, nogil=True)
def _combine_limbs(acc, out):
    """acc (G, 2M, N) float32 limb products -> out (G, M, N) float64 = 256 acc[:M] + acc[M:]."""
    ng, m2, nn = acc.shape
    nm = m2 // 2
    for g in range(ng):
        for i in range(nm):
            for j in range(nn):
                out[g, i, j] = 256.0 * np.float64(acc[g, i, j]) + np.float64(acc[g, nm + i, j])


def quantize_prob_limbs(x: torch.Tensor, scale: float, qmax: int) -> torch.Tensor:
    """float32 probabilities (G, M, K) -> (G, 2M, K) float32: high then low 8-bit limbs of the
    codes ``clamp(round(x / scale), 0, qmax)`` (``qmax < 2^16``); each limb is in [0, 255]."""
    if x.dtype != torch.float32 or x.dim() != 3 or not 0 < qmax < 1 << 16:
        raise ValueError("quantize_prob_limbs: float32 (G, M, K) input and 0 < qmax < 2^16 expected")
    g, m, k = x.shape
    out = torch.empty((g, 2 * m, k), dtype=torch.float32)
    _quantize_limbs(x.contiguous().numpy(), out.numpy(), np.float32(scale), np.float32(qmax))
    return out


def combine_limbs(acc: torch.Tensor) -> torch.Tensor:
    """(G, 2M, N) float32 products of the high and low limbs -> exact (G, M, N) float64 sums."""
    g, m2, n = acc.shape
    out = torch.empty((g, m2 // 2, n), dtype=torch.float64)
    _combine_limbs(acc.contiguous().numpy(), out.numpy())
    return out


# -- torch references (the definitions the fused kernels must match bit for bit) ---------------
def quantize_centered_torch(x: torch.Tensor, scale: float, lo: float, hi: float) -> torch.Tensor:
    """``clamp(round(x / scale), lo, hi)`` in three in-place torch passes."""
    return (x / scale).round_().clamp_(lo, hi)


def requant_dequant_torch(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, rnd: torch.Tensor, qmin: int,
                          qmax: int, scale: float, acc_bits: int | None = None, policy: str = "error",
                          where: str = "gemm") -> tuple[torch.Tensor, int]:
    """Torch passes: optional accumulator check (``acc_bits``), ``requantize``, ``codes * scale``.
    ``m0``/``shift``/``rnd`` broadcast against ``acc``. Returns (float32 output, n clamped)."""
    from earlyq_sim.simulator.integer.fixed_point import requantize
    from earlyq_sim.simulator.integer.int_kernels import check_accumulator
    n = 0
    if acc_bits is not None:
        acc, n = check_accumulator(acc, acc_bits, policy, where)
    return requantize(acc, m0, shift, qmin, qmax, rnd) * scale, n
