"""The ``i16`` engine: exact int16 x int16 -> int32 conv/linear (AVX2 ``vpmaddwd``) in C, with
the quantize pass and the fixed-point rescale fused around it (source: ``igemm.c``).

Why C: on AVX2 CPUs without VNNI, ``torch._int_mm`` falls back to a slow kernel and exact float
GEMMs cost as much as the float model, plus one pass before and one after every GEMM. Here the
quantize writes int16 codes straight into the padded NHWC layout the kernel reads (no im2col),
and the epilogue (bias, accumulator check, ``(acc m0 + 2^(k-1)) >> k``, ``code * s_out``)
writes the float32 output in the caller's layout, so each layer is two calls and no extra pass.

The library is compiled on first use with the system C compiler (``$CC``, default ``cc``) into
``$EARLYQ_NATIVE_CACHE`` (default ``~/.cache/earlyq-sim/native``), keyed by a hash of the source
and flags, written atomically, and loaded only from a private directory with the hash recorded
when it was built (``build.py``). Without a compiler, on CPUs without AVX2, or with
``EARLYQ_NATIVE=0``, :func:`available` is False (:func:`reason` says why) and ``auto`` keeps
the float engines; results are the same bit for bit either way.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from earlyq_sim.simulator.integer.native.build import SRC, build as build_library

FLAGS = ["-O3", "-mavx2", "-mfma", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared"]
NR = 16                 # output channels per packed weight block (igemm.c)
MAX_ACC = (1 << 31) - 1  # int32 accumulation is exact while every partial sum fits

_lib = None
_reason = ""
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _cpu_has_avx2() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    except Exception:       # older torch: read the flags
        try:
            return " avx2" in Path("/proc/cpuinfo").read_text()
        except OSError:
            return False


def _build() -> Path:
    """Compile (once per source, compiler and flags) and return the library's path. With OpenMP
    when the compiler has it: the library then binds to the libgomp torch has loaded (same
    soname), so its threads are torch's own pool rather than a second one competing for cores.
    Built and loaded only from a private directory, with its recorded hash (``build.py``)."""
    return build_library([FLAGS + ["-fopenmp"], FLAGS])


def _load():
    global _lib, _reason
    with _lock:
        if _lib is not None or _reason:
            return _lib
        if os.environ.get("EARLYQ_NATIVE", "1") == "0":
            _reason = "disabled by EARLYQ_NATIVE=0"
            return None
        if not _cpu_has_avx2():
            _reason = "the CPU has no AVX2"
            return None
        try:
            lib = ctypes.CDLL(str(_build()))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            _reason = f"could not build {SRC.name}: {e}"
            return None
        P, I, J, F = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float
        lib.eq_quantize_nhwc.argtypes = [P, J, J, J, J, I, I, I, I, I, I, I, F, F, F, P, P, I]
        lib.eq_quantize_rows.argtypes = [P, J, I, J, I, F, F, F, P, I]
        lib.eq_conv_i16.argtypes = [P, I, I, I, I, P, I, I, I, I, I, I, I, P, P, P, P, J, J, F, I, J, J,
                                    P, J, J, J, J, J, J, P, I]
        for f in (lib.eq_quantize_nhwc, lib.eq_quantize_rows, lib.eq_conv_i16):
            f.restype = None
        lib.eq_openmp.restype = I
        lib.openmp = bool(lib.eq_openmp())
        _lib = lib
        return _lib


def available() -> bool:
    """True when the compiled kernels can be used on this machine."""
    return _load() is not None


def reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    _load()
    return _reason


def fits(act_bounds: tuple[int, int], w_qmax: int, bound: float) -> bool:
    """Whether a GEMM is exact on this engine: int16 operands and every partial sum (at most
    ``bound``, the static bound on ``sum_k |a||w| + |bias|``) inside int32."""
    lo, hi = act_bounds
    return -32768 <= lo and hi <= 32767 and w_qmax <= 32767 and bound <= MAX_ACC


def pack_weight(codes: torch.Tensor) -> np.ndarray:
    """Weight codes (Co, C, R, S) or (Co, K) -> int16 ``[ceil(Co/16)][R*S][Cp/2][16][2]`` with
    ``Cp`` = C rounded up to even; padding channels and outputs are zero."""
    w = codes.detach().to(torch.int64).numpy()
    if w.ndim == 2:
        w = w[:, :, None, None]
    co, c, r, s = w.shape
    cp, nb = c + (c & 1), -(-co // NR)
    full = np.zeros((nb * NR, cp, r, s), np.int16)
    full[:co, :c] = w
    packed = full.reshape(nb, NR, cp // 2, 2, r, s).transpose(0, 4, 5, 2, 1, 3).reshape(nb, r * s, cp // 2, NR, 2)
    # 64-byte aligned: each k-pair row is one cache line (two 32-byte loads that never split a line)
    raw = np.empty(packed.size + 32, np.int16)
    off = (-raw.ctypes.data % 64) // 2
    out = raw[off:off + packed.size].reshape(packed.shape)
    out[...] = packed
    return out


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _parallel(fn, n_items: int, grain: int) -> list:
    """Run ``fn(begin, end, nthreads)`` over ``[0, n_items)``: one call that threads inside (an
    OpenMP build), else split across a Python thread pool (ctypes releases the GIL)."""
    global _pool
    if _lib.openmp:
        return [fn(0, n_items, _threads())]
    nt = min(_threads(), max(1, n_items // grain))
    if nt <= 1:
        return [fn(0, n_items, 1)]
    if _pool is None or _pool._max_workers < nt:
        _pool = ThreadPoolExecutor(max_workers=nt, thread_name_prefix="earlyq-i16")
    step = -(-n_items // nt)
    futs = [_pool.submit(fn, b, min(n_items, b + step), 1) for b in range(0, n_items, step)]
    return [f.result() for f in futs]


_tls = threading.local()


def _scratch(shape: tuple[int, ...]) -> np.ndarray:
    """An int16 array of ``shape`` in a per-thread buffer that only grows. The codes live only
    for one layer call; a fresh multi-MB allocation per call would be paged in (faulted) anew
    every time, which cost more than the quantization itself."""
    size = int(np.prod(shape))
    buf = getattr(_tls, "buf", None)
    if buf is None or buf.size < size:
        buf = _tls.buf = np.empty(max(size, 1 << 16), np.int16)
    return buf[:size].reshape(shape)


def _check_input(x: torch.Tensor) -> None:
    if _load() is None:
        raise RuntimeError(f"native kernels unavailable: {_reason}")
    if x.dtype != torch.float32 or x.device.type != "cpu":
        raise TypeError(f"native: float32 CPU input expected, got {x.dtype} on {x.device}")


def _quantize_4d(x: torch.Tensor, scale: float, lo: float, hi: float, ph: int, pw: int) -> tuple[np.ndarray, int]:
    """float32 (N, C, H, W), any strides -> int16 padded NHWC codes (N, H+2ph, W+2pw, Cp), in
    this thread's scratch buffer (valid until the next call)."""
    lib = _lib
    n, c, h, w = x.shape
    cp = c + (c & 1)
    xp = _scratch((n, h + 2 * ph, w + 2 * pw, cp))
    sn, sc, sh, sw = x.stride()
    per = xp[0].size
    base, obase = x.data_ptr(), xp.ctypes.data

    def part(b: int, e: int, nt: int) -> None:
        dst = np.empty(h * w, np.int64)
        lib.eq_quantize_nhwc(base + 4 * b * sn, sn, sc, sh, sw, e - b, c, h, w, ph, pw, cp,
                             scale, lo, hi, obase + 2 * b * per, dst.ctypes.data, nt)
    _parallel(part, n, 4)
    return xp, cp


def _quantize_rows(x: torch.Tensor, scale: float, lo: float, hi: float) -> tuple[np.ndarray, int]:
    """float32 (..., K) -> int16 rows (M, Kp), Kp = K rounded up to even (scratch buffer)."""
    k = x.shape[-1]
    kp = k + (k & 1)
    if x.dim() == 3 and x.stride(-1) != 1 and x.stride(-2) == 1:
        # a transposed view (B, C, L) -> (B, L, C): NCHW with H = 1 -> NHWC rows
        t = x.transpose(-1, -2).unsqueeze(2)            # (B, C, 1, L), W contiguous
        xp, _ = _quantize_4d(t, scale, lo, hi, 0, 0)
        return xp.reshape(-1, kp), kp
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    out = _scratch((m, kp))
    ld, base, obase = x2.stride(0), x2.data_ptr(), out.ctypes.data
    _parallel(lambda b, e, nt: _lib.eq_quantize_rows(base + 4 * b * ld, e - b, k, ld, kp, scale, lo, hi,
                                                     obase + 2 * b * kp, nt), m, 256)
    return out, kp


def _padded(a: np.ndarray, n: int, fill: int) -> np.ndarray:
    out = np.full(n, fill, np.int64)
    out[:a.size] = a
    return out


class Epilogue:
    """Per-GEMM constants of the fused rescale (from a ``fused_kernels.RescaleArrays``), int64
    per output channel, padded to whole 16-channel blocks for the vector epilogue."""

    __slots__ = ("co", "bias", "m0", "shift", "rnd", "qmin", "qmax", "s_out")

    def __init__(self, bias: torch.Tensor | None, ra, qmin: int, qmax: int, s_out: float) -> None:
        self.co = co = ra.m0.size
        n = -(-co // NR) * NR
        b = np.zeros(co, np.int64) if bias is None else bias.to(torch.int64).reshape(-1).numpy()
        if b.size != co:
            raise ValueError(f"native: {b.size} bias values for {co} outputs")
        self.bias, self.m0 = _padded(b, n, 0), _padded(ra.m0, n, 0)
        self.shift, self.rnd = _padded(ra.shift, n, 1), _padded(ra.rnd, n, 1)
        self.qmin, self.qmax, self.s_out = int(qmin), int(qmax), float(np.float32(s_out))


def _run(xp: np.ndarray, geo: tuple, wpk: np.ndarray, co: int, ep: Epilogue, check: bool, acc_bits: int,
         out: torch.Tensor, ostr: tuple[int, int, int, int], rows: int) -> tuple[int, int, int]:
    n, hp, wp, cp, r, s, sy, sx, ho, wo = geo
    alo, ahi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if ep.co != co:
        raise ValueError(f"native: {ep.co} rescale multipliers for {co} outputs")
    bptr = ep.bias.ctypes.data
    args = (xp.ctypes.data, n, hp, wp, cp, wpk.ctypes.data, co, r, s, sy, sx, ho, wo, bptr,
            ep.m0.ctypes.data, ep.shift.ctypes.data, ep.rnd.ctypes.data, ep.qmin, ep.qmax, ep.s_out,
            int(check), alo, ahi, out.data_ptr(), *ostr)

    def part(b: int, e: int, nt: int) -> tuple[int, int, int]:
        st = np.zeros(3, np.int64)
        _lib.eq_conv_i16(*args, b, e, st.ctypes.data, nt)
        return int(st[0]), int(st[1]), int(st[2])
    parts = _parallel(part, rows, 96)
    if not check:
        return 0, 0, 0
    return sum(p[0] for p in parts), min(p[1] for p in parts), max(p[2] for p in parts)


def conv2d(x: torch.Tensor, scale: float, lo: float, hi: float, wpk: np.ndarray, co: int, ksize: tuple[int, int],
           stride: tuple[int, int], padding: tuple[int, int], ep: Epilogue, check: bool, acc_bits: int,
           channels_last_out: bool) -> tuple[torch.Tensor, int, int, int]:
    """Quantize float32 ``x`` (N, C, H, W) with ``clamp(rint(x / scale), lo, hi)`` (centered
    codes), convolve exactly with the packed weight codes, add the integer bias, check the
    ``acc_bits`` accumulator, rescale and dequantize. Returns (out, n_clamped, acc_min, acc_max);
    min/max are only meaningful with ``check``."""
    _check_input(x)
    n, c, h, w = x.shape
    (r, s), (sy, sx), (ph, pw) = ksize, stride, padding
    xp, cp = _quantize_4d(x, scale, lo, hi, ph, pw)
    ho, wo = (h + 2 * ph - r) // sy + 1, (w + 2 * pw - s) // sx + 1
    fmt = torch.channels_last if channels_last_out else torch.contiguous_format
    out = torch.empty((n, co, ho, wo), dtype=torch.float32, memory_format=fmt)
    on, oc, oh, ow = out.stride()
    res = _run(xp, (n, h + 2 * ph, w + 2 * pw, cp, r, s, sy, sx, ho, wo), wpk, co, ep, check, acc_bits,
               out, (on, oc, oh, ow), n * ho * wo)
    return (out, *res)


def linear(x: torch.Tensor, scale: float, lo: float, hi: float, wpk: np.ndarray, n_out: int, ep: Epilogue,
           check: bool, acc_bits: int) -> tuple[torch.Tensor, int, int, int]:
    """The same for ``x`` (..., K) and a linear layer's packed codes; output (..., n_out)."""
    _check_input(x)
    xq, kp = _quantize_rows(x, scale, lo, hi)
    m = xq.shape[0]
    out = torch.empty((*x.shape[:-1], n_out), dtype=torch.float32)
    res = _run(xq, (m, 1, 1, kp, 1, 1, 1, 1, 1, 1), wpk, n_out, ep, check, acc_bits, out, (n_out, 1, 0, 0), m)
    return (out, *res)
