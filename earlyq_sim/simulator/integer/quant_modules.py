"""Quantized drop-in modules: conv, linear and a diffusers attention processor.

Which tensors are integer and which are float (integer path, mode ``int``):

* integer: conv/linear input codes (act bits, per tensor), weight codes (weight bits, per
  output channel), Q/K/V codes (act bits), attention-probability codes (prob bits, up to 16),
  the bias (int, in units of ``s_a * s_w``), every product sum (exact, then checked against a
  signed ``acc_bits`` accumulator), and the output codes (``out_bits``, default 16, written by a
  fixed-point multiplier + round-half-up shift; attention's ``1/sqrt(d)`` is folded into it).
* float32: everything between GEMMs: GroupNorm, SiLU, LayerNorm, softmax, GELU/GEGLU, residual
  adds, up/down-sampling by interpolation, time-step sinusoids, attention masks. Their inputs
  are GEMM outputs dequantized as ``code * s_out``.

Mode ``fake`` uses the same codes, scales and quantized bias but computes each GEMM in float32
on dequantized operands and rounds the output to the same ``out_bits`` grid; mode ``float`` is
the original model; mode ``calibrate`` is ``float`` plus observers.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer import int_kernels as ik
from earlyq_sim.simulator.integer import fused_kernels as fk
from earlyq_sim.simulator.integer import native
from earlyq_sim.simulator.integer.fixed_point import mult_bits_for, quantize_multiplier
from earlyq_sim.simulator.integer.observers import make_observer
from earlyq_sim.simulator.integer.quantizers import (QParams, WeightQ, act_qparams, dequantize, out_qparams,
                                             prob_qparams, quantize, quantize_weight)
from earlyq_sim.schedule import StepBits

MODES = ("float", "calibrate", "fake", "int")
SHARED = -1     # range-set id of the range shared by all intervals


@dataclass(frozen=True)
class QuantConfig:
    """Static choices of a quantized model (bits per step come later via ``set_step_bits``)."""

    act_signed: bool = False        # activations: symmetric signed instead of asymmetric unsigned
    out_bits: int = 16              # GEMM output grid written by the fixed-point rescale
    acc_bits: int = 32              # signed accumulator width
    overflow: str = "error"         # 'error' | 'saturate'
    engine: str = "auto"            # see int_kernels.ENGINES
    weight_method: str = "absmax"   # 'absmax' | 'mse'
    observer: str = "mse"           # activation observer: 'minmax' | 'percentile' | 'mse'
    out_headroom: float = 1.25      # output grid covers headroom * calibrated max |y|
    fake_dtype: str = "float32"     # compute dtype of the fake-quant GEMMs: 'float32' | 'float64'

    def __post_init__(self) -> None:
        if self.overflow not in ("error", "saturate"):
            raise UserError(f"overflow: {self.overflow!r} is unknown; allowed error, saturate")
        if self.engine not in ik.ENGINES:
            raise UserError(f"engine: {self.engine!r} is unknown; allowed {', '.join(ik.ENGINES)}")
        if not 8 <= self.acc_bits <= 48:
            raise UserError(f"accumulator bits: {self.acc_bits!r} is out of range; allowed 8..48")
        if self.fake_dtype not in ("float32", "float64"):
            raise UserError(f"fake_dtype: {self.fake_dtype!r} is unknown; allowed float32, float64")
        if not 8 <= self.out_bits <= 24:
            raise UserError(f"output bits: {self.out_bits!r} is out of range; allowed 8..24")


@dataclass
class QuantState:
    """Mutable per-model state shared by all quantized modules."""

    cfg: QuantConfig
    mode: str = "float"
    bits: StepBits | None = None
    range_set: int = SHARED
    obs_set: int | None = None              # calibrate mode: which range set observes now
    engine_calls: Counter = field(default_factory=Counter)
    saturated: Counter = field(default_factory=Counter)


class Slot:
    """One quantized tensor position: its observers (per range set) and fitted ranges."""

    def __init__(self, name: str, kind: str, state: QuantState) -> None:
        self.name, self.kind, self.state = name, kind, state      # kind: act | out | prob
        self.observers: dict[int, object] = {}
        self.ranges: dict[tuple[int, int], tuple[float, float]] = {}   # (set, bits) -> (lo, hi)
        self._cache: dict = {}
        self.held: StepBits | None = None   # per-layer hold (schedule ``keep``): these bits in every step

    def observe(self, x: torch.Tensor) -> None:
        sid = self.state.obs_set
        if sid is None or self.kind == "prob":
            return
        if sid not in self.observers:
            name = "minmax" if self.kind == "out" else self.state.cfg.observer
            self.observers[sid] = make_observer(name, seed=zlib.crc32(self.name.encode()))
        self.observers[sid].observe(x)

    def bits(self) -> int:
        b = self.held or self.state.bits
        return {"act": b.act, "prob": b.prob, "out": self.state.cfg.out_bits}[self.kind]

    def qparams(self) -> QParams:
        bits = self.bits()
        if self.kind == "prob":
            return prob_qparams(bits)
        key = (self.state.range_set, bits)
        if key not in self._cache:
            if key not in self.ranges:
                which = "shared" if key[0] == SHARED else f"interval {key[0]}"
                raise UserError(f"calibration: no range for {self.name} ({which}, {bits} bits); "
                                "calibrate with this schedule or load its calibration file")
            lo, hi = self.ranges[key]
            if self.kind == "out":
                self._cache[key] = out_qparams(max(-lo, hi), bits)
            else:
                self._cache[key] = act_qparams(lo, hi, bits, self.state.cfg.act_signed)
        return self._cache[key]

    def set_range(self, key: tuple[int, int], lo: float, hi: float) -> None:
        self.ranges[key] = (float(lo), float(hi))
        self._cache.pop(key, None)


def fake_out(y: torch.Tensor, p: QParams) -> torch.Tensor:
    """Round a float GEMM result to the output grid (round half up, like the fixed-point path);
    float32 result (exactly ``code * scale`` rounded to float32, as in the integer path)."""
    return (torch.clamp(torch.floor(y / p.scale + 0.5), p.qmin, p.qmax) * p.scale).to(torch.float32)


def _fdt(state: "QuantState") -> torch.dtype:
    return torch.float64 if state.cfg.fake_dtype == "float64" else torch.float32


def quantize_centered(x: torch.Tensor, p: QParams, channels_last: bool = False) -> torch.Tensor:
    """``quantize(x, p) - z`` (identical values), in one fused pass (float32 input; torch
    reference ``fused_kernels.quantize_centered_torch`` otherwise). ``channels_last``: 4-D codes
    in channels-last memory, for the conv engines."""
    lo, hi = p.centered
    if x.dtype != torch.float32:
        return fk.quantize_centered_torch(x, p.scale, lo, hi)
    return fk.quantize_centered(x, p.scale, lo, hi, channels_last)


@dataclass(frozen=True)
class Rescale:
    """Fixed-point multiplier of one GEMM for one (input grids, output grid) combination."""

    m0: torch.Tensor
    shift: torch.Tensor
    rnd: torch.Tensor
    arrays: fk.RescaleArrays | None = field(default=None, compare=False, repr=False)   # flat, for fused kernels

    def __post_init__(self) -> None:
        if self.arrays is None:
            object.__setattr__(self, "arrays", fk.RescaleArrays(self.m0, self.shift, self.rnd))

    @classmethod
    def make(cls, m: np.ndarray, acc_bits: int, shape: tuple[int, ...]) -> "Rescale":
        m0, sh = quantize_multiplier(m, mult_bits_for(acc_bits))
        m0_t, sh_t = torch.from_numpy(m0).view(shape), torch.from_numpy(sh).view(shape)
        return cls(m0_t, sh_t, torch.bitwise_left_shift(torch.ones_like(sh_t), sh_t - 1))


def int_finish(acc: torch.Tensor, rs: Rescale, po: QParams, state: QuantState, where: str,
               bound: float | None = None, chan_dim: int = -1,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Accumulator check, fixed-point rescale, and dequantization of the output codes to float32
    (``code * s_out``, one rounding) for the float ops that follow, in one fused pass (torch
    reference: ``fused_kernels.requant_dequant_torch``). The run-time check is skipped when the
    static ``bound`` on |acc| already proves the accumulator cannot overflow. ``chan_dim``: axis
    of per-channel multipliers; ``memory_format`` of a 4-D output."""
    bits = state.cfg.acc_bits
    out, *res = fk.requant_dequant(acc, rs.arrays, po.qmin, po.qmax, po.scale, chan_dim, bits,
                                   needs_check(state, bound), memory_format)
    report_overflow(state, where, *res)
    return out


def needs_check(state: QuantState, bound: float | None) -> bool:
    """Whether sums must be checked at run time: no static ``bound`` on |acc| proves that they
    fit the ``acc_bits`` accumulator."""
    return bound is None or bound > (1 << (state.cfg.acc_bits - 1)) - 1


def report_overflow(state: QuantState, where: str, n: int, amin: int, amax: int) -> None:
    """Apply the overflow policy to ``n`` sums found outside the accumulator (extremes ``amin``,
    ``amax``): raise under 'error', count under 'saturate' (they were clamped)."""
    if n:
        bits = state.cfg.acc_bits
        if state.cfg.overflow == "error":
            ik.raise_overflow(where, amax if amax > (1 << (bits - 1)) - 1 else amin, bits)
        state.saturated[where] += n


def engine_bias(bq: torch.Tensor | None, eng: str) -> torch.Tensor | None:
    """The integer bias in a torch engine's dtype (exact: |bias| is within the GEMM's bound)."""
    if bq is None or eng == "int8":
        return bq
    return bq.to(torch.float32 if eng == "f32" else torch.float64)


class _QuantGemm(nn.Module):
    """Shared logic of QuantConv2d / QuantLinear. ``orig`` keeps the float weight and bias."""

    chan_dim = -1

    def __init__(self, orig: nn.Module, name: str, state: QuantState) -> None:
        super().__init__()
        self.orig, self.qname, self.state = orig, name, state
        self.act = Slot(name + ".act", "act", state)
        self.out = Slot(name + ".out", "out", state)
        self._wq: dict[int, tuple[WeightQ, torch.Tensor]] = {}
        self._plans: dict = {}
        self.held: StepBits | None = None   # per-layer hold: weight bits in every step

    def weight_bits(self) -> int:
        return (self.held or self.state.bits).weight

    def weight_q(self, bits: int) -> tuple[WeightQ, torch.Tensor]:
        """Weight codes at ``bits`` and ``sum |q_w|`` per (output, input channel) (cached)."""
        if bits not in self._wq:
            wq = quantize_weight(self.orig.weight, bits, self.state.cfg.weight_method)
            c = wq.codes
            cabs = c.abs().reshape(c.shape[0], c.shape[1], -1).sum(dim=2).double()
            self._wq[bits] = (wq, cabs)
        return self._wq[bits]

    def _bshape(self, n: int) -> tuple[int, ...]:
        return (n,) if self.chan_dim == -1 else (n, 1, 1)

    def bias_q(self, sa: float, wq: WeightQ) -> torch.Tensor | None:
        """Bias in the accumulator's units ``s_a * s_w[n]``, rounded half to even, int64."""
        if self.orig.bias is None:
            return None
        return torch.round(self.orig.bias.detach().double() / (sa * wq.scale.double())).to(torch.int64)

    def plan(self, pa: QParams, po: QParams, wbits: int) -> dict:
        """Everything static for one (input grid, output grid, weight bits): cached."""
        key = (pa, po, wbits)
        if key not in self._plans:
            wq, cabs = self.weight_q(wbits)
            bq = self.bias_q(pa.scale, wq)
            babs = bq.abs().double() if bq is not None else torch.zeros(cabs.shape[0], dtype=torch.float64)
            wsum = cabs.sum(1)
            bound = float((wsum * pa.amax_centered + babs).max())
            eng, chunks = self.state.cfg.engine, None
            if eng == "i16" and not native.available():
                raise UserError(f"engine: i16 is unavailable here ({native.reason()}); use auto or f32")
            if eng in ("auto", "i16") and native.available() and native.fits(pa.centered, wq.qmax, bound):
                eng = "i16"
            elif eng in ("auto", "i16", "f32") and bound > ik.F32_EXACT:
                chunks = ik.plan_chunks(cabs, pa.amax_centered, babs)
                eng = "f32" if chunks else ik.pick_engine(eng, bound)
            else:
                eng = ik.pick_engine(eng, bound)
            n = wq.scale.numel()
            m = pa.scale * wq.scale.double().numpy() / po.scale
            rescale = Rescale.make(m, self.state.cfg.acc_bits, self._bshape(n))
            if eng == "i16":            # packed int16 codes; bias and rescale go to the epilogue
                w_run, b_run = native.pack_weight(wq.codes), None
                epi = native.Epilogue(bq, rescale.arrays, po.qmin, po.qmax, po.scale)
            else:
                # conv engines run channels-last (faster here; exact in any layout), weight cached so
                w_run = wq.codes.contiguous(memory_format=torch.channels_last) \
                    if self.chan_dim == 1 and eng != "int8" else wq.codes
                b_run, epi = engine_bias(bq, eng), None       # bias in the engine's dtype once
            self._plans[key] = dict(
                wq=wq, bq=bq, bound=bound, engine=eng, chunks=chunks, w_run=w_run, b_run=b_run,
                wsum=wsum, babs=babs, rescale=rescale, epilogue=epi)
        return self._plans[key]

    def static_bound(self) -> tuple[int, float]:
        """(K, max_n of amax_a * sum_k |q_w| + |bias_q|): the largest |acc| any input can give."""
        pl = self.plan(self.act.qparams(), self.out.qparams(), self.weight_bits())
        return int(pl["wq"].codes[0].numel()), pl["bound"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.state
        if st.mode == "float":
            return self.orig(x)
        if st.mode == "calibrate":
            y = self.orig(x)
            self.act.observe(x)
            self.out.observe(y)
            return y
        pa, po = self.act.qparams(), self.out.qparams()
        pl = self.plan(pa, po, self.weight_bits())
        wq = pl["wq"]
        if st.mode == "fake":
            dt = _fdt(st)
            bias = None if pl["bq"] is None else pl["bq"].to(dt) * (pa.scale * wq.scale.to(dt))
            y = self.float_op(dequantize(quantize(x, pa), pa).to(dt), wq.codes.to(dt) *
                              wq.scale.to(dt).view((-1,) + (1,) * (wq.codes.dim() - 1)), bias)
            return fake_out(y, po)
        eng, w_run, b_run, chunks = pl["engine"], pl["w_run"], pl["b_run"], pl["chunks"]
        # output in the layout F.conv2d on x would give (float ops after it round per layout)
        fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format
        if eng == "i16":
            if x.dtype == torch.float32:
                st.engine_calls[eng] += 1
                return self.native_forward(x, pa, pl, fmt)
            # the native quantize divides in float32; other dtypes take the exact torch engines
            eng, w_run = ik.pick_engine("f32", pl["bound"]), wq.codes
            b_run = engine_bias(pl["bq"], eng)
        st.engine_calls[eng] += 1
        qmax = wq.qmax
        cl = self.chan_dim == 1 and eng != "int8"
        codes = quantize_centered(x, pa, cl)
        if chunks and len(chunks) > 1:
            # the static bound assumed |code| = amax on every input; with this input's largest
            # |code| every partial sum may already be exact in one float32 GEMM
            amax = float(codes.abs().max())
            if float((pl["wsum"] * amax + pl["babs"]).max()) <= ik.F32_EXACT:
                chunks = None
        acc = self.int_op(codes, pa.centered, w_run, (-qmax, qmax), eng, b_run, chunks)
        return int_finish(acc, pl["rescale"], po, st, self.qname, pl["bound"], self.chan_dim, fmt)

    def native_forward(self, x: torch.Tensor, pa: QParams, pl: dict, fmt: torch.memory_format) -> torch.Tensor:
        """Quantize, exact int16 GEMM, check, rescale and dequantize in the native kernels."""
        st = self.state
        lo_c, hi_c = pa.centered
        out, *res = self.native_op(x, pa.scale, float(lo_c), float(hi_c), pl, needs_check(st, pl["bound"]),
                                   st.cfg.acc_bits, fmt == torch.channels_last)
        report_overflow(st, self.qname, *res)
        return out


class QuantLinear(_QuantGemm):
    chan_dim = -1

    def native_op(self, x, scale, lo, hi, pl, check, bits, _cl):
        return native.linear(x, scale, lo, hi, pl["w_run"], pl["wq"].codes.shape[0], pl["epilogue"], check, bits)

    def float_op(self, a, w, b):
        return F.linear(a, w, b)

    def int_op(self, a, ab, w, wb, eng, bias, chunks):
        return ik.linear_acc(a, ab, w, wb, eng, bias, chunks, raw=True)


class QuantConv2d(_QuantGemm):
    chan_dim = 1

    def __init__(self, orig: nn.Conv2d, name: str, state: QuantState) -> None:
        if orig.groups != 1 or tuple(orig.dilation) != (1, 1) or orig.padding_mode != "zeros" \
                or isinstance(orig.padding, str):
            raise UserError(f"model: conv {name} has groups={orig.groups}, dilation={orig.dilation}, "
                            f"padding={orig.padding!r} ({orig.padding_mode}); supported: groups 1, "
                            "dilation 1, numeric zero padding")
        super().__init__(orig, name, state)

    def float_op(self, a, w, b):
        return F.conv2d(a, w, b, self.orig.stride, self.orig.padding)

    def native_op(self, x, scale, lo, hi, pl, check, bits, cl):
        o = self.orig
        return native.conv2d(x, scale, lo, hi, pl["w_run"], o.out_channels, tuple(o.kernel_size), tuple(o.stride),
                             tuple(o.padding), pl["epilogue"], check, bits, cl)

    def int_op(self, a, ab, w, wb, eng, bias, chunks):
        return ik.conv2d_acc(a, ab, w, wb, tuple(self.orig.stride), tuple(self.orig.padding), eng, bias, chunks,
                             raw=True)
