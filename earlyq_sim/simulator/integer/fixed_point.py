"""Fixed-point output rescaling, as integer hardware does it.

A GEMM result ``acc`` (integer, in units of ``s_a * s_b``) becomes an output code on a grid of
step ``s_out`` by the real multiplier ``M = s_a * s_b / s_out``. Hardware holds ``M`` as an
integer ``m0`` (``mult_bits`` bits, default 31, i.e. Q31 like gemmlowp/TFLite) and a right
shift ``shift``: ``M ~= m0 / 2^shift``.

Rounding rule (single rounding, TFLite ``TFLITE_SINGLE_ROUNDING`` style, round half up,
i.e. ties toward +infinity)::

    out = clamp( (acc * m0 + 2^(shift-1)) >> shift , qmin, qmax )     # >> is arithmetic (floor)

``acc * m0`` needs ``acc_bits + mult_bits`` bits; we keep that within int64 (62 bits) by
using ``mult_bits = min(31, 62 - acc_bits)``.
"""

from __future__ import annotations

import numpy as np
import torch


def mult_bits_for(acc_bits: int) -> int:
    """Multiplier precision that keeps ``acc * m0`` inside int64."""
    return int(min(31, 62 - acc_bits))


def quantize_multiplier(m: np.ndarray | float, mult_bits: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers ``m >= 0`` -> (``m0``, ``shift``) int64 arrays with ``m ~= m0 / 2^shift``.

    ``m0`` lies in ``[2^(mult_bits-1), 2^mult_bits)`` unless the shift would exceed 62, in which
    case the shift is capped at 62 and ``m0`` is smaller (very small multipliers; ``m0`` may be
    0). ``shift >= 1`` always; a multiplier too large for that raises ValueError.
    """
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ValueError("fixed-point multipliers must be finite and >= 0")
    frac, exp = np.frexp(m)                     # m = frac * 2^exp, frac in [0.5, 1)
    shift = (mult_bits - exp).astype(np.int64)
    m0 = np.rint(np.ldexp(frac, mult_bits)).astype(np.int64)   # exact scaling, then round
    top = m0 == (1 << mult_bits)                # rounding reached 2^mult_bits: renormalise
    m0[top] >>= 1
    shift[top] -= 1
    big = shift > 62
    if np.any(big):
        m0[big] = np.rint(np.ldexp(m[big], 62)).astype(np.int64)
        shift[big] = 62
    zero = m == 0
    m0[zero], shift[zero] = 0, 1
    if np.any(shift < 1):
        raise ValueError(f"fixed-point multiplier {float(m.max()):g} too large (needs a left shift)")
    return m0, shift


def requantize(acc: torch.Tensor, m0: torch.Tensor, shift: torch.Tensor, qmin: int, qmax: int,
               rnd: torch.Tensor | None = None) -> torch.Tensor:
    """Exact-integer ``acc`` (int64, or float holding integers) -> int64 output codes.

    ``m0``, ``shift`` (and the rounding term ``rnd = 2^(shift-1)``, if precomputed) broadcast
    against ``acc`` (per output channel or scalar). Works in place on a fresh int64 copy.
    """
    if rnd is None:
        rnd = torch.bitwise_left_shift(torch.ones_like(shift), shift - 1)
    t = acc.to(torch.int64, copy=True)
    return t.mul_(m0).add_(rnd).bitwise_right_shift_(shift).clamp_(qmin, qmax)
