"""Exact integer GEMM kernels (conv, linear, attention matmuls) with a finite accumulator.

Operands arrive as *centered* integer values ``x = q - z`` (code minus zero point) held in
float32 tensors, together with integer bounds. Real zero is exactly 0 here, so conv zero
padding equals padding the codes with the zero point. All kernels return int64 accumulators
``acc = sum_k x_a * x_b`` (exact) to which the caller adds the int bias, checks the
accumulator width and applies the fixed-point rescale.

Engines (all exact; tests compare each with the int64 NumPy reference bit for bit):

* ``int8``: operands split into int8 limbs (``x = sum_i w_i L_i + c``, ``w_i`` in {1, 256}),
  ``torch._int_mm`` with int32 accumulation (K is chunked below 2^17, so
  ``|sum L L| <= K * 2^14 < 2^31``), limb and offset terms combined in int64. Unsigned 8-bit
  codes are shifted by 128 (one limb plus an offset), 16-bit probabilities use two limbs.
  im2col in NHWC for convs. Fast on CPUs with VNNI; on AVX2-only CPUs ``_int_mm`` falls back to
  a slow kernel (measured here: 16384x288x32 in 150 ms vs 13 ms for float32).
* ``f32`` / ``f64``: the operands are small integers, so a float GEMM/conv is exact whenever
  every partial sum is an integer of magnitude <= 2^24 (f32) or 2^53 (f64), in any summation
  order and with FMA. We check the static bound ``sum_k |x_a||x_b| <= amax_a * max_n sum_k
  |x_b[k,n]|`` before using it. Convolutions run with NNPACK disabled (NNPACK may use
  Winograd/FFT, whose transforms are not exact); oneDNN/MKL direct and GEMM kernels only
  multiply and add.
* ``i16`` (conv and linear layers; ``simulator.native``): int16 codes, int32 accumulation with
  AVX2 ``vpmaddwd`` in C, quantize and rescale fused around it; exact while the static bound
  stays below 2^31. Needs a C compiler and AVX2 (checked at first use).
* ``auto``: i16 for convs and linears where available and exact, else f32 when the bound
  allows it (else f32 over input-channel chunks that each meet it, summed in float64), else
  f64, else int8. Attention's batched matmuls use the torch engines.
* The integer bias is added inside the GEMM (exact under the same bound, which includes it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from earlyq_sim.errors import UserError

ENGINES = ("auto", "i16", "f32", "f64", "int8")
F32_EXACT = 1 << 24
F64_EXACT = 1 << 53
_INT_MM_K = 1 << 16     # K chunk for _int_mm: K * 128 * 128 < 2^31


class AccumulatorOverflow(UserError):
    """A product sum exceeded the accumulator width under the 'error' policy."""


def pick_engine(engine: str, bound: float) -> str:
    """Resolve ``auto`` from the static bound on ``sum_k |a||b|``; reject unsafe float choices.
    ``i16`` (the native conv/linear engine, ``simulator.native``) resolves like ``auto`` here:
    this chooses among the torch engines, which attention's batched matmuls use."""
    if engine in ("auto", "i16"):
        return "f32" if bound <= F32_EXACT else ("f64" if bound <= F64_EXACT else "int8")
    if engine == "f32" and bound > F32_EXACT:
        return "f64" if bound <= F64_EXACT else "int8"
    if engine == "f64" and bound > F64_EXACT:
        return "int8"
    return engine


# -- int8 limb decomposition ------------------------------------------------------------------
def to_limbs(x: torch.Tensor, lo: int, hi: int) -> tuple[list[tuple[int, torch.Tensor]], int]:
    """Centered integers ``x`` in ``[lo, hi]`` -> ([(weight, int8 limb)], offset c) with
    ``x = sum weight * limb + c`` exactly."""
    if -128 <= lo and hi <= 127:
        return [(1, x.to(torch.int8))], 0
    span = hi - lo
    u = (x - lo).to(torch.int32)                      # 0..span
    if span <= 255:
        return [(1, (u - 128).to(torch.int8))], lo + 128
    if span <= 65535:
        h = torch.bitwise_right_shift(u, 8) - 128
        l_ = torch.bitwise_and(u, 255) - 128
        return [(256, h.to(torch.int8)), (1, l_.to(torch.int8))], lo + 128 * 257
    raise ValueError(f"operand span {span} too wide for two int8 limbs")


def _int_mm_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """int8 (M,K) @ int8 (K,N) -> int64, chunking K so the int32 accumulation cannot wrap."""
    k = a.shape[1]
    if k <= _INT_MM_K:
        return torch._int_mm(a, b).to(torch.int64)
    out = None
    for s in range(0, k, _INT_MM_K):
        part = torch._int_mm(a[:, s:s + _INT_MM_K].contiguous(), b[s:s + _INT_MM_K].contiguous()).to(torch.int64)
        out = part if out is None else out + part
    return out


def gemm_int8(a: torch.Tensor, a_bounds: tuple[int, int], b: torch.Tensor, b_bounds: tuple[int, int]) -> torch.Tensor:
    """Exact ``a @ b`` for centered integer (M,K), (K,N) via int8 limbs and ``torch._int_mm``."""
    la, ca = to_limbs(a, *a_bounds)
    lb, cb = to_limbs(b, *b_bounds)
    k = a.shape[1]
    acc = None
    for wa, la_i in la:
        for wb, lb_j in lb:
            t = _int_mm_exact(la_i.contiguous(), lb_j.contiguous())
            t = t * (wa * wb) if wa * wb != 1 else t
            acc = t if acc is None else acc + t
    if cb:
        rows = sum(w * li.to(torch.int64).sum(dim=1) for w, li in la)      # (M,)
        acc = acc + cb * rows[:, None]
    if ca:
        cols = sum(w * lj.to(torch.int64).sum(dim=0) for w, lj in lb)      # (N,)
        acc = acc + ca * cols[None, :]
    if ca and cb:
        acc = acc + k * ca * cb
    return acc


# -- public kernels ---------------------------------------------------------------------------
def plan_chunks(cabs: torch.Tensor, amax: int, bias_abs: torch.Tensor | None,
                limit: int = F32_EXACT) -> list[tuple[int, int]] | None:
    """Split input channels into contiguous chunks whose float32 partial sums stay exact.

    ``cabs[n, c]``: sum of |weight codes| of output ``n`` over input channel ``c`` (and the
    kernel window). Chunk ``j`` needs ``amax * max_n sum_{c in j} cabs[n, c] (+ |bias| for the
    first chunk) <= limit``. None when even one channel is too much.
    """
    run = bias_abs.double().clone() if bias_abs is not None else torch.zeros(cabs.shape[0], dtype=torch.float64)
    cols = cabs.double().t() * amax                     # (C, N)
    chunks, start = [], 0
    for c in range(cols.shape[0]):
        nxt = run + cols[c]
        if float(nxt.max()) > limit:
            if c == start:
                return None
            chunks.append((start, c))
            start, nxt = c, cols[c].clone()
            if float(nxt.max()) > limit:
                return None
        run = nxt
    chunks.append((start, cols.shape[0]))
    return chunks


def _float_exact(op, dtype: torch.dtype, a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                 chunks: list[tuple[int, int]] | None, cdim: int) -> torch.Tensor:
    """``op(a, w, bias)`` in ``dtype`` on integer-valued tensors, optionally summed over input
    channel chunks (each chunk exact in ``dtype``; chunk sums added in float64, exact)."""
    a, w = a.to(dtype), w.to(dtype)
    b = None if bias is None else bias.to(dtype)
    with torch.backends.nnpack.flags(enabled=False):   # no Winograd/FFT
        if not chunks or len(chunks) == 1:
            return op(a, w, b)
        out = None
        for j, (c0, c1) in enumerate(chunks):
            part = op(a.narrow(cdim, c0, c1 - c0), w.narrow(1, c0, c1 - c0), b if j == 0 else None).double()
            out = part if out is None else out.add_(part)
        return out


def _finish(acc: torch.Tensor, raw: bool) -> torch.Tensor:
    return acc if raw else acc.to(torch.int64)


def linear_acc(a: torch.Tensor, a_bounds: tuple[int, int], w: torch.Tensor, w_bounds: tuple[int, int],
               engine: str, bias: torch.Tensor | None = None, chunks=None, raw: bool = False) -> torch.Tensor:
    """``a`` (..., K) centered activations, ``w`` (N, K) weight codes, optional integer ``bias``
    (N,) -> exact ``sum_k a w + bias`` (..., N): int64, or with ``raw`` the engine's own dtype
    (float32/float64 holding integers, or int64)."""
    if engine == "int8":
        lead = a.shape[:-1]
        acc = gemm_int8(a.reshape(-1, a.shape[-1]), a_bounds, w.t(), w_bounds)
        if bias is not None:
            acc = acc + bias.to(torch.int64)
        return acc.reshape(*lead, w.shape[0])
    dt = torch.float32 if engine == "f32" else torch.float64
    return _finish(_float_exact(F.linear, dt, a, w, bias, chunks, a.dim() - 1), raw)


def conv2d_acc(x: torch.Tensor, x_bounds: tuple[int, int], w: torch.Tensor, w_bounds: tuple[int, int],
               stride: tuple[int, int], padding: tuple[int, int], engine: str,
               bias: torch.Tensor | None = None, chunks=None, raw: bool = False) -> torch.Tensor:
    """``x`` (N,C,H,W) centered activations, ``w`` (Cout,C,R,S) codes -> exact (N,Cout,Ho,Wo)."""
    if engine != "int8":
        dt = torch.float32 if engine == "f32" else torch.float64
        op = lambda a, b, c: F.conv2d(a, b, c, stride, padding)  # noqa: E731
        return _finish(_float_exact(op, dt, x, w, bias, chunks, 1), raw)
    n, c, h, wd = x.shape
    co, _, r, s = w.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (h + 2 * ph - r) // sh + 1, (wd + 2 * pw - s) // sw + 1
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))          # NHWC, zero = real zero
    xp = xp.contiguous()
    st = xp.stride()
    cols = xp.as_strided((n, ho, wo, r, s, c), (st[0], sh * st[1], sw * st[2], st[1], st[2], st[3]))
    a2 = cols.reshape(n * ho * wo, r * s * c)
    w2 = w.permute(2, 3, 1, 0).reshape(r * s * c, co)
    acc = gemm_int8(a2, x_bounds, w2, w_bounds)
    if bias is not None:
        acc = acc + bias.to(torch.int64)
    # same memory format as F.conv2d would give (it follows the input's): the float ops that
    # follow (GroupNorm) round differently per layout, which would make results engine-dependent
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if cl else torch.contiguous_format
    return acc.reshape(n, ho, wo, co).permute(0, 3, 1, 2).contiguous(memory_format=fmt)


def bmm_acc(a: torch.Tensor, a_bounds: tuple[int, int], b: torch.Tensor, b_bounds: tuple[int, int],
            engine: str, raw: bool = False) -> torch.Tensor:
    """Batched ``a`` (G,M,K) @ ``b`` (G,K,N), centered integers -> int64 (G,M,N) (with ``raw``
    the engine's own dtype, as in :func:`linear_acc`)."""
    if engine != "int8":
        dt = torch.float32 if engine == "f32" else torch.float64
        with torch.backends.nnpack.flags(enabled=False):
            return _finish(torch.bmm(a.to(dt), b.to(dt)), raw)
    return torch.stack([gemm_int8(a[g], a_bounds, b[g], b_bounds) for g in range(a.shape[0])])


def check_accumulator(acc: torch.Tensor, acc_bits: int, policy: str, where: str) -> tuple[torch.Tensor, int]:
    """Apply a signed ``acc_bits`` accumulator to exact sums; returns (acc, saturated count).

    Only the final sum is checked: a two's-complement accumulator that wraps in between still
    ends exact when the final value fits (addition is associative modulo 2^acc_bits). A final
    value outside the range raises (``error``) or is clamped (``saturate``); never wrapped.
    """
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    amin, amax = (int(v) for v in torch.aminmax(acc))
    if lo <= amin and amax <= hi:
        return acc, 0
    if policy == "error":
        raise_overflow(where, amax if amax > hi else amin, acc_bits)
    n = int(((acc < lo) | (acc > hi)).sum())
    # float32 accumulators reach here only when acc_bits <= 25 (f32 sums are <= 2^24), so the
    # limits are exact in the tensor's dtype
    return acc.clamp(lo, hi), n


def raise_overflow(where: str, bad: int, acc_bits: int) -> None:
    """Raise the one-line AccumulatorOverflow for a final sum ``bad`` outside ``acc_bits``."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    raise AccumulatorOverflow(
        f"{where}: accumulator overflow, value {bad} does not fit {acc_bits} bits "
        f"(range {lo}..{hi}); widen accumulator_bits or set overflow='saturate'")
