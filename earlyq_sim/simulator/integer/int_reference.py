"""Slow int64 NumPy reference for the integer kernels (tests compare the fast path to this).

Everything here is plain integer arithmetic on int64 arrays (NumPy's integer matmul does not
use BLAS), so results are exact as long as values stay below 2^62, which the callers ensure.
"""

from __future__ import annotations

import numpy as np


def gemm(a: np.ndarray, za: int, b: np.ndarray, zb, bias: np.ndarray | None = None) -> np.ndarray:
    """``sum_k (a[m,k] - za) * (b[k,n] - zb) + bias[n]`` as int64; ``a``, ``b`` integer codes."""
    acc = (a.astype(np.int64) - int(za)) @ (b.astype(np.int64) - np.asarray(zb, dtype=np.int64))
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return acc


def conv2d(x: np.ndarray, zx: int, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
           bias: np.ndarray | None = None) -> np.ndarray:
    """Integer conv: ``x`` codes (N,C,H,W) padded with the zero point ``zx``, ``w`` codes
    (Cout,C,R,S) symmetric. Returns int64 accumulators (N,Cout,Ho,Wo)."""
    n, c, h, wd = x.shape
    co, _, r, s = w.shape
    ph, pw = padding
    sh, sw = stride
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), int(zx), dtype=np.int64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    xp -= int(zx)
    ho = (h + 2 * ph - r) // sh + 1
    wo = (wd + 2 * pw - s) // sw + 1
    out = np.zeros((n, co, ho, wo), dtype=np.int64)
    w64 = w.astype(np.int64)
    for i in range(r):
        for j in range(s):
            patch = xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]  # N,C,Ho,Wo
            out += np.einsum("nchw,oc->nohw", patch, w64[:, :, i, j])
    if bias is not None:
        out += bias.astype(np.int64)[None, :, None, None]
    return out


def check_accumulator(acc: np.ndarray, acc_bits: int, policy: str) -> np.ndarray:
    """Signed ``acc_bits`` accumulator: 'error' raises OverflowError, 'saturate' clamps."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if policy == "error":
        if acc.size and (acc.min() < lo or acc.max() > hi):
            raise OverflowError("accumulator overflow")
        return acc
    return np.clip(acc, lo, hi)


def requantize(acc: np.ndarray, m0: np.ndarray, shift: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """Round-half-up fixed-point rescale, computed with Python integers (no overflow at all)."""
    flat_acc = acc.reshape(-1, acc.shape[-1]) if acc.ndim > 1 else acc.reshape(1, -1)
    m0 = np.broadcast_to(np.asarray(m0, dtype=np.int64), (flat_acc.shape[-1],))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (flat_acc.shape[-1],))
    out = np.empty(flat_acc.shape, dtype=np.int64)
    for col in range(flat_acc.shape[1]):
        m, s = int(m0[col]), int(shift[col])
        for row in range(flat_acc.shape[0]):
            v = (int(flat_acc[row, col]) * m + (1 << (s - 1))) >> s  # Python >> floors
            out[row, col] = min(max(v, qmin), qmax)
    return out.reshape(acc.shape)
