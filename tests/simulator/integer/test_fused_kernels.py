"""Fused (numba) quantize and requantize kernels against the torch reference passes, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyq_sim.simulator.integer import fused_kernels as fk
from earlyq_sim.simulator.integer import int_kernels as ik
from earlyq_sim.simulator.integer.fixed_point import quantize_multiplier
from earlyq_sim.simulator.integer.quant_modules import QuantConfig, QuantState, Rescale, int_finish, quantize_centered
from earlyq_sim.simulator.integer.quantizers import QParams, act_qparams, prob_qparams

CL = torch.channels_last


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and identical float32 bit patterns (so -0.0 != +0.0, NaN == same NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype == torch.float32 and \
        torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def layouts(x: torch.Tensor) -> list[torch.Tensor]:
    """The same values in the memory layouts the model produces."""
    out = [x]
    if x.dim() == 4:
        out.append(x.contiguous(memory_format=CL))
    if x.dim() >= 2:
        out.append(x.transpose(-1, -2).contiguous().transpose(-1, -2))     # transposed view
    return out


# -- quantize ---------------------------------------------------------------------------------
def check_quantize(x: torch.Tensor, scale: float, lo: int, hi: int) -> None:
    want = fk.quantize_centered_torch(x.clone(), scale, lo, hi)
    for xl in layouts(x):
        for cl in (False, True):
            got = fk.quantize_centered(xl, scale, lo, hi, channels_last=cl)
            assert bits_equal(got, want), (tuple(x.shape), xl.stride(), cl, scale, lo, hi)
            if x.dim() == 4 and ((cl and xl.is_contiguous()) or xl.is_contiguous(memory_format=CL)):
                assert got.is_contiguous(memory_format=CL)


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(3, 5, 4, 4), (2, 7, 3, 5), (1, 1, 1, 1), (4, 6, 9), (5, 17), (33,)]),
       scale=st.floats(1e-4, 10.0), signed=st.booleans(), bits=st.integers(2, 16), seed=st.integers(0, 2 ** 31))
def test_quantize_matches_torch(shape, scale, signed, bits, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * scale * 2 ** (bits - 1) * 1.5       # some values clamp
    lo, hi = (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1) if signed else (-(2 ** bits) // 3, 2 ** bits - 1 - (2 ** bits) // 3)
    check_quantize(x, scale, lo, hi)
    # exact ties k + 0.5 (in float32 after the division), both signs: half to even
    s32 = float(np.float32(scale))
    ties = (torch.arange(-20, 20, dtype=torch.float32) + 0.5) * s32
    check_quantize(ties.reshape(1, 2, 4, 5), s32, lo, hi)


def test_quantize_edge_values():
    s = 0.1                                         # not a float32 value: x / float32(s) as in torch
    x = torch.tensor([0.0, -0.0, -0.04, 0.04, 0.05, -0.05, 0.15, -0.25, 1e30, -1e30, float("inf"),
                      float("-inf"), 12.75, -12.85, 1e-42, -1e-42, 3.4e38], dtype=torch.float32)
    check_quantize(x.reshape(1, 1, 1, -1), s, -128, 127)
    check_quantize(x, s, 0, 255)
    got = fk.quantize_centered(x, s, -128, 127)
    assert got[2].item() == 0 and np.signbit(got[2].item())                 # rint(-0.4) = -0.0
    nan = fk.quantize_centered(torch.tensor([float("nan")]), s, -1, 1)
    assert torch.isnan(nan).all()                   # clamp keeps NaN, like torch.clamp
    with pytest.raises(TypeError):
        fk.quantize_centered(x.double(), s, -1, 1)


def test_quant_modules_quantize_centered_uses_qparams_exactly():
    x = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(3)) * 3
    for p in (act_qparams(-1.3, 4.1, 8, False), act_qparams(-2.0, 2.0, 4, True), prob_qparams(16),
              QParams(0.3, 7, 0, 15, 4)):
        want = fk.quantize_centered_torch(x.clone(), p.scale, p.qmin - p.zero_point, p.qmax - p.zero_point)
        assert bits_equal(quantize_centered(x, p), want)
        assert bits_equal(quantize_centered(x, p, channels_last=True), want)
        want64 = fk.quantize_centered_torch(x.double(), p.scale, p.qmin - p.zero_point, p.qmax - p.zero_point)
        assert torch.equal(quantize_centered(x.double(), p), want64)          # non-float32: torch path


# -- requantize + dequantize ------------------------------------------------------------------
def rescale(m: np.ndarray, acc_bits: int, shape) -> Rescale:
    return Rescale.make(m, acc_bits, shape)


def reference(acc, rs, qmin, qmax, scale, acc_bits, check, policy="saturate"):
    return fk.requant_dequant_torch(acc, rs.m0, rs.shift, rs.rnd, qmin, qmax, scale,
                                    acc_bits if check else None, policy)


def run_all_paths(acc, rs, qmin, qmax, scale, chan_dim, acc_bits, check, fmt=torch.contiguous_format):
    """Fused output of the int64 and (where it applies) the float64 kernels."""
    outs = []
    for force_int in (True, False):
        out, n, amin, amax = fk.requant_dequant(acc, rs.arrays, qmin, qmax, scale, chan_dim, acc_bits, check,
                                                fmt, force_int=force_int)
        outs.append((out, n, amin, amax))
    return outs


@settings(max_examples=80, deadline=None)
@given(case=st.sampled_from(["conv_nchw", "conv_cl", "conv_cl_out", "linear2", "linear3", "scalar"]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
       acc_bits=st.sampled_from([16, 20, 24, 32, 37, 48]), check=st.booleans(),
       out_bits=st.sampled_from([8, 16, 24]), mexp=st.floats(-12, 0.9), seed=st.integers(0, 2 ** 31))
def test_requant_matches_torch(case, dtype, acc_bits, check, out_bits, mexp, seed):
    rng = np.random.default_rng(seed)
    shape = {"conv_nchw": (3, 5, 4, 3), "conv_cl": (3, 5, 4, 3), "conv_cl_out": (2, 6, 3, 3),
             "linear2": (7, 5), "linear3": (2, 3, 5), "scalar": (2, 9, 7)}[case]
    chan_dim = 1 if case.startswith("conv") else -1
    nch = 1 if case == "scalar" else shape[chan_dim]
    bshape = (nch, 1, 1) if chan_dim == 1 else (nch,)
    m = 10.0 ** rng.uniform(mexp - 1, mexp, nch)
    rs = rescale(m, acc_bits, bshape)
    lim = 2 ** (acc_bits - 1)
    span = 2 * lim if check else lim - 1           # checked: some values out of range
    if dtype == torch.float32:
        span = min(span, 2 ** 24)
    a = rng.integers(-span, span + 1, shape)
    a.flat[:4] = [0, -1, span, -span]
    acc = torch.tensor(a, dtype=dtype)
    if case == "conv_cl" or case == "conv_cl_out":
        acc = acc.contiguous(memory_format=CL)
    fmt = CL if case == "conv_cl_out" else torch.contiguous_format
    qmax = 2 ** (out_bits - 1) - 1
    scale = float(rng.uniform(1e-4, 2.0))
    want, n_want = reference(acc, rs, -qmax, qmax, scale, acc_bits, check)
    for out, n, amin, amax in run_all_paths(acc, rs, -qmax, qmax, scale, chan_dim, acc_bits, check, fmt):
        assert bits_equal(out, want), (case, dtype, acc_bits, check)
        assert n == n_want
        if check:
            assert (amin, amax) == tuple(int(v) for v in torch.aminmax(acc))
        if case == "conv_cl_out":
            assert out.is_contiguous(memory_format=CL)
        elif acc.dim() == 4:
            assert out.is_contiguous()


def test_requant_shift_extremes_and_ties():
    """Shifts 1 and 62 (int64 kernels), 16 and 53 (float64 form's limits), exact rounding ties
    (acc * m0 + 2^(k-1) a multiple of 2^k, i.e. half-way cases rounding up) with negative acc."""
    for k, m0 in ((1, 1), (1, 3), (2, 1), (16, 1 << 30), (16, (1 << 31) - 1), (31, 1 << 30), (53, (1 << 31) - 1),
                  (53, 1 << 30), (54, 1 << 30), (62, 1)):
        sh = torch.tensor([k]), torch.tensor([m0])
        rs = Rescale(sh[1], sh[0], torch.tensor([1 << (k - 1)]))
        # ties: acc * m0 = (j + 1/2) 2^k  <=>  acc = (2j + 1) 2^(k-1) / m0 when m0 is a power of 2
        accs = [0, 1, -1, 2, -2, 3, -3, (1 << 23) - 1, -(1 << 23), (1 << 36), -(1 << 36), 12345677, -7654321]
        if m0 & (m0 - 1) == 0:
            step = max(1, (1 << (k - 1)) // m0)
            accs += [j * step for j in range(-9, 10, 2)]
        accs = [a for a in accs if abs(a) * m0 + (1 << (k - 1)) < 1 << 62]    # int64 products (as configs ensure)
        acc = torch.tensor(accs, dtype=torch.int64)
        for dt in (torch.int64, torch.float64):
            a = acc.to(dt)
            want, _ = reference(a, rs, -(2 ** 23) + 1, 2 ** 23 - 1, 0.5, 37, False)
            for out, *_ in run_all_paths(a, rs, -(2 ** 23) + 1, 2 ** 23 - 1, 0.5, -1, 37, False):
                assert bits_equal(out, want), (k, m0, dt)
    assert not Rescale(torch.tensor([5]), torch.tensor([15]), torch.tensor([1 << 14])).arrays.fast
    assert Rescale(torch.tensor([5]), torch.tensor([53]), torch.tensor([1 << 52])).arrays.fast


def test_requant_float_form_hard_rounding():
    """Products near 2^61 (acc near 2^36, 25-bit m0: the widest valid pair at acc_bits 37) whose
    rounded value ``acc m0 + 2^(k-1)`` lies just below or at a multiple of 2^k: a float form that
    rounds ``P / 2^16`` to 53 bits instead of flooring its low part gets these wrong."""
    for m0 in ((1 << 25) - 1, (1 << 25) - 3, (1 << 24) + 1):
        for k in (17, 30, 35):
            inv = pow(m0, -1, 1 << k)
            accs = []
            for r in (-1, 0, 1):                    # acc m0 + 2^(k-1) = r (mod 2^k)
                a0 = ((r - (1 << (k - 1))) * inv) % (1 << k)
                top = (1 << 36) - (1 << k)
                accs += [a0 + top - (top % (1 << k)), a0 - (1 << 36) + (1 << k), a0]
            acc = torch.tensor(accs, dtype=torch.int64)
            assert int(acc.abs().max()) <= 1 << 36
            rs = Rescale(torch.tensor([m0]), torch.tensor([k]), torch.tensor([1 << (k - 1)]))
            want, _ = reference(acc, rs, -(2 ** 62), 2 ** 62, 1.0, 37, False)
            out, *_ = fk.requant_dequant(acc.double(), rs.arrays, -(2 ** 23) + 1, 2 ** 23 - 1, 1.0, -1, 37, False)
            want_c, _ = reference(acc, rs, -(2 ** 23) + 1, 2 ** 23 - 1, 1.0, 37, False)
            assert bits_equal(out, want_c), (m0, k)
            codes = fk._requant_mid_f  # the unclamped codes, via a wide grid in float64
            o64 = np.empty((1, 1, len(accs)), np.float32)
            codes(acc.double().numpy().reshape(1, 1, -1), o64, rs.arrays.P, -2.0 ** 62, 2.0 ** 62, np.float32(1.0))
            assert np.array_equal(o64.ravel(), want.numpy()), (m0, k)


def test_requant_float_form_exhaustive_small():
    """Every acc in [-2^12, 2^12] against several (m0, shift) with the float64 form."""
    acc = torch.arange(-(1 << 12), (1 << 12) + 1, dtype=torch.float32)
    m0, sh = quantize_multiplier(np.array([1e-3, 0.37, 0.999999, 2.0 ** -30, 1.5 ** -20]), 31)
    for i in range(len(m0)):
        rs = rescale(np.ldexp(float(m0[i]), -int(sh[i])), 32, (1,))
        want, _ = reference(acc, rs, -32767, 32767, 0.01, 32, False)
        out, *_ = fk.requant_dequant(acc, rs.arrays, -32767, 32767, 0.01, -1, 32, False)
        assert bits_equal(out, want)


def test_int_finish_policies():
    acc = torch.tensor([[10.0, -(2.0 ** 20)], [2.0 ** 19, 3.0]])
    rs = rescale(np.array([0.5, 0.25]), 20, (2,))
    po = QParams(0.1, 0, -32767, 32767, 16)
    sat = QuantState(QuantConfig(acc_bits=20, overflow="saturate"))
    out = int_finish(acc, rs, po, sat, "layer.y", bound=None)
    want, n = reference(acc, rs, -32767, 32767, 0.1, 20, True)
    assert bits_equal(out, want) and sat.saturated["layer.y"] == n == 2
    err = QuantState(QuantConfig(acc_bits=20, overflow="error"))
    with pytest.raises(ik.AccumulatorOverflow, match=r"layer\.y: accumulator overflow, value 524288 does not fit 20"):
        int_finish(acc, rs, po, err, "layer.y", bound=2.0 ** 20)
    # a static bound within the accumulator skips the check: no count, same values in range
    ok = QuantState(QuantConfig(acc_bits=32))
    assert bits_equal(int_finish(acc, rs, po, ok, "l", bound=2.0 ** 21),
                      reference(acc, rs, -32767, 32767, 0.1, 32, False)[0])
    assert not ok.saturated


def test_requant_rejects_wrong_channel_count():
    rs = rescale(np.array([0.5, 0.25, 0.1]), 32, (3,))
    with pytest.raises(ValueError, match="channel multipliers"):
        fk.requant_dequant(torch.zeros(4, 2), rs.arrays, -127, 127, 1.0, -1, 32, False)


@settings(max_examples=30, deadline=None)
@given(bits=st.integers(9, 16), g=st.integers(1, 3), m=st.integers(1, 9), k=st.integers(1, 70), n=st.integers(1, 5),
       seed=st.integers(0, 2 ** 31))
def test_prob_limbs_exact(bits, g, m, k, n, seed):
    """High/low 8-bit limbs of the probability codes recombine to ``quantize``'s codes, and the
    limb GEMM (float32) + float64 combination equals the int64 product exactly."""
    gen = torch.Generator().manual_seed(seed)
    probs = torch.randn(g, m, k, generator=gen).mul(3).softmax(-1)
    probs[0, 0, 0] = 1.0
    p = prob_qparams(bits)
    codes = fk.quantize_centered_torch(probs.clone(), p.scale, 0, p.qmax)
    limbs = fk.quantize_prob_limbs(probs, p.scale, p.qmax)
    hi, lo = limbs[:, :m], limbs[:, m:]
    assert hi.min() >= 0 and hi.max() <= 255 and lo.min() >= 0 and lo.max() <= 255
    assert torch.equal(hi * 256 + lo, codes)
    v = torch.randint(-255, 256, (g, k, n), generator=gen)
    got = fk.combine_limbs(ik.bmm_acc(limbs, (0, 255), v.float(), (-255, 255), "f32", raw=True))
    want = np.einsum("gmk,gkn->gmn", codes.numpy().astype(np.int64), v.numpy().astype(np.int64))
    assert got.dtype == torch.float64 and np.array_equal(got.numpy().astype(np.int64), want)
    with pytest.raises(ValueError):
        fk.quantize_prob_limbs(probs, p.scale, 1 << 16)


def _conv_layer(engine: str, cin: int = 384):
    """A standalone QuantConv2d (W8A8) whose static bound needs input-channel chunks in float32."""
    from earlyq_sim.simulator.integer.quant_modules import SHARED, QuantConv2d
    from earlyq_sim.schedule import StepBits
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, 8, 3, padding=1)
    st_ = QuantState(QuantConfig(engine=engine), mode="int", bits=StepBits(8, 8, 16))
    q = QuantConv2d(conv, "c", st_)
    q.act.set_range((SHARED, 8), -4.0, 4.0)
    q.out.set_range((SHARED, 16), -50.0, 50.0)
    return q


def test_conv_chunks_dropped_when_this_input_allows():
    """Static bound > 2^24 plans input-channel chunks; when this input's largest |code| proves a
    single float32 conv exact, it runs unchunked. Both give the f64 engine's result bit for bit."""
    auto, ref = _conv_layer("f32"), _conv_layer("f64")
    pl = auto.plan(auto.act.qparams(), auto.out.qparams(), 8)
    assert pl["bound"] > ik.F32_EXACT and pl["chunks"] and len(pl["chunks"]) > 1
    calls = []
    orig = ik.conv2d_acc

    def spy(*a, **k):
        calls.append(a[8])
        return orig(*a, **k)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for amp in (0.05, 4.0):         # small input: one conv; full-range input: chunks
            x = torch.randn(2, 384, 5, 5, generator=g).clamp(-1, 1) * amp
            ik.conv2d_acc = spy
            try:
                y = auto(x)
            finally:
                ik.conv2d_acc = orig
            assert bits_equal(y, ref(x))
    assert calls[0] is None and calls[1] and len(calls[1]) > 1
