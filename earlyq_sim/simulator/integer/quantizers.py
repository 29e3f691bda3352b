"""Quantizers: own scale, zero point, integer grid and rounding rule (observers only propose ranges).

Conventions (real value ``r``, integer code ``q``):

* activations, asymmetric unsigned (default): ``q in [0, 2^b - 1]``, ``r = s (q - z)``,
  ``s = (hi - lo) / (2^b - 1)``, ``z = round(-lo / s)``; the range is widened to include 0 so
  that real zero (conv zero padding) is exactly the code ``z``.
* activations, symmetric signed: ``q in [-(2^(b-1) - 1), 2^(b-1) - 1]``, ``z = 0``,
  ``s = max(|lo|, |hi|) / (2^(b-1) - 1)`` (narrow range, so the grid is symmetric).
* weights: per output channel, symmetric signed, narrow range as above, ``s_n = max|w_n| / qmax``
  (or an MSE-optimal clip per channel).
* attention probabilities: unsigned, ``z = 0``, ``s = 1 / (2^b - 1)`` (softmax output lies in
  [0, 1]); up to 16 bits.
* GEMM outputs: symmetric signed ``out_bits`` (default 16) per tensor, written by the
  fixed-point requantizer (:mod:`fixed_point`).

Rounding of real values to codes: round half to even (``torch.round``), then clamp. The same
function serves the integer path and the fake-quant path, so both see identical codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import check_bits

WEIGHT_BITS = (2, 8)
ACT_BITS = (2, 8)
PROB_BITS = (2, 16)
OUT_BITS = (8, 24)


def check_range(bits: int, allowed: tuple[int, int], what: str) -> int:
    """Validate a bit-width; one-line UserError naming ``what`` and the allowed range."""
    if not isinstance(bits, int):
        raise UserError(f"{what}: {bits!r} bits is out of range; allowed {allowed[0]}..{allowed[1]}")
    return check_bits(bits, what, *allowed)


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization parameters: ``r = scale * (q - zero_point)``, ``q in [qmin, qmax]``."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int
    bits: int

    @property
    def amax_centered(self) -> int:
        """Largest ``|q - z|`` on the grid (bounds for the accumulator and exactness checks)."""
        return max(self.zero_point - self.qmin, self.qmax - self.zero_point)

    @property
    def centered(self) -> tuple[int, int]:
        """Range ``(qmin - z, qmax - z)`` of the centered codes ``q - z``."""
        return self.qmin - self.zero_point, self.qmax - self.zero_point


def act_qparams(lo: float, hi: float, bits: int, signed: bool) -> QParams:
    """QParams for an activation range ``[lo, hi]`` (real units) at ``bits`` bits."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if signed:
        qmax = 2 ** (bits - 1) - 1
        amax = max(-lo, hi)
        scale = amax / qmax if amax > 0 else 1.0
        return QParams(float(torch.tensor(scale, dtype=torch.float32)), 0, -qmax, qmax, bits)
    qmax = 2 ** bits - 1
    scale = (hi - lo) / qmax if hi > lo else 1.0
    scale = float(torch.tensor(scale, dtype=torch.float32))  # stored as float32, like hardware regs
    z = int(min(max(round(-lo / scale), 0), qmax))
    return QParams(scale, z, 0, qmax, bits)


def prob_qparams(bits: int) -> QParams:
    """Attention-probability grid: unsigned, zero point 0, scale 1/(2^b - 1)."""
    check_range(bits, PROB_BITS, "attention-probability bits")
    qmax = 2 ** bits - 1
    return QParams(float(torch.tensor(1.0 / qmax, dtype=torch.float32)), 0, 0, qmax, bits)


def out_qparams(amax: float, bits: int) -> QParams:
    """Symmetric signed grid for a GEMM output with calibrated magnitude ``amax``."""
    return act_qparams(-abs(amax), abs(amax), bits, signed=True)


def quantize(x: torch.Tensor, p: QParams) -> torch.Tensor:
    """Real float tensor -> integer codes, returned as float32 holding integers (exact)."""
    return torch.clamp(torch.round(x / p.scale) + p.zero_point, p.qmin, p.qmax)


def dequantize(q: torch.Tensor, p: QParams) -> torch.Tensor:
    return (q - p.zero_point) * p.scale


def fake_quant(x: torch.Tensor, p: QParams) -> torch.Tensor:
    """Quantize then dequantize (float32)."""
    return dequantize(quantize(x, p), p)


@dataclass(frozen=True)
class WeightQ:
    """Quantized weight: integer codes (float32 holding integers) and per-output-channel scales."""

    codes: torch.Tensor   # same shape as the weight; output channel on dim 0
    scale: torch.Tensor   # (C_out,) float32
    bits: int

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def dequantize(self) -> torch.Tensor:
        shape = (-1,) + (1,) * (self.codes.dim() - 1)
        return self.codes * self.scale.view(shape)


def quantize_weight(w: torch.Tensor, bits: int, method: str = "absmax", grid: int = 80) -> WeightQ:
    """Per-output-channel symmetric signed weight quantization at ``bits`` (2..8).

    ``method``: ``absmax`` (scale from max |w| per channel) or ``mse`` (per-channel clip ratio
    in [0.2, 1] minimising the weight MSE).
    """
    check_range(bits, WEIGHT_BITS, "weight bits")
    qmax = 2 ** (bits - 1) - 1
    w2 = w.detach().float().reshape(w.shape[0], -1)
    amax = w2.abs().amax(dim=1)
    if method == "mse":
        best_err = torch.full_like(amax, float("inf"))
        best = amax.clone()
        for alpha in torch.linspace(0.2, 1.0, grid).tolist():
            a = amax * alpha
            s = torch.where(a > 0, a / qmax, torch.ones_like(a))[:, None]
            err = ((torch.clamp(torch.round(w2 / s), -qmax, qmax) * s - w2) ** 2).mean(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, a, best)
        amax = best
    elif method != "absmax":
        raise UserError(f"weight observer: {method!r} is unknown; allowed absmax, mse")
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).float()
    codes = torch.clamp(torch.round(w2 / scale[:, None]), -qmax, qmax).reshape(w.shape)
    return WeightQ(codes.contiguous(), scale.contiguous(), bits)
