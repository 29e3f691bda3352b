"""Integer kernels vs the int64 NumPy reference, bit for bit; fixed point; accumulator policies."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer import int_kernels as ik
from earlyq_sim.simulator.integer import int_reference as ref
from earlyq_sim.simulator.integer.fixed_point import quantize_multiplier, requantize

torch.set_num_threads(1)
ENGINES = ("f32", "f64", "int8")


def _codes(rng, shape, lo, hi, fill):
    """Random codes, or adversarial fills that stress the accumulator."""
    if fill == "random":
        return rng.integers(lo, hi + 1, size=shape)
    if fill == "max":
        return np.full(shape, hi)
    if fill == "min":
        return np.full(shape, lo)
    return np.where(rng.random(shape) < 0.5, lo, hi)        # extremes mixed


def _act_grid(bits, signed, rng):
    if signed:
        q = 2 ** (bits - 1) - 1
        return -q, q, 0
    qmax = 2 ** bits - 1
    return 0, qmax, int(rng.integers(0, qmax + 1))


fills = st.sampled_from(["random", "max", "min", "mixed"])


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(1, 24), abits=st.integers(2, 8),
       wbits=st.integers(2, 8), signed=st.booleans(), fa=fills, fw=fills, seed=st.integers(0, 2 ** 31))
def test_linear_matches_reference(m, k, n, abits, wbits, signed, fa, fw, seed):
    rng = np.random.default_rng(seed)
    qmin, qmax, z = _act_grid(abits, signed, rng)
    wq = 2 ** (wbits - 1) - 1
    a = _codes(rng, (m, k), qmin, qmax, fa)
    w = _codes(rng, (n, k), -wq, wq, fw)
    want = ref.gemm(a, z, w.T, 0)
    for eng in ENGINES:
        got = ik.linear_acc(torch.tensor(a - z, dtype=torch.float32), (qmin - z, qmax - z),
                            torch.tensor(w, dtype=torch.float32), (-wq, wq), eng)
        assert got.dtype == torch.int64 and np.array_equal(got.numpy(), want), eng


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), co=st.integers(1, 8), h=st.integers(1, 9), w=st.integers(1, 9),
       r=st.sampled_from([1, 3]), stride=st.integers(1, 2), pad=st.integers(0, 2), abits=st.integers(2, 8),
       signed=st.booleans(), fa=fills, seed=st.integers(0, 2 ** 31))
def test_conv_matches_reference(n, c, co, h, w, r, stride, pad, abits, signed, fa, seed):
    if h + 2 * pad < r or w + 2 * pad < r:
        return
    rng = np.random.default_rng(seed)
    qmin, qmax, z = _act_grid(abits, signed, rng)
    x = _codes(rng, (n, c, h, w), qmin, qmax, fa)
    wt = _codes(rng, (co, c, r, r), -127, 127, "random")
    want = ref.conv2d(x, z, wt, (stride, stride), (pad, pad))
    for eng in ENGINES:
        got = ik.conv2d_acc(torch.tensor(x - z, dtype=torch.float32), (qmin - z, qmax - z),
                            torch.tensor(wt, dtype=torch.float32), (-127, 127), (stride, stride), (pad, pad), eng)
        assert np.array_equal(got.numpy(), want), eng


@settings(max_examples=30, deadline=None)
@given(g=st.integers(1, 4), m=st.integers(1, 20), k=st.integers(1, 70), n=st.integers(1, 20),
       pbits=st.integers(2, 16), abits=st.integers(2, 8), fa=fills, seed=st.integers(0, 2 ** 31))
def test_attention_pv_qk_match_reference(g, m, k, n, pbits, abits, fa, seed):
    rng = np.random.default_rng(seed)
    pmax = 2 ** pbits - 1
    p = _codes(rng, (g, m, k), 0, pmax, fa)                     # probabilities: zero point 0
    qmin, qmax, z = _act_grid(abits, False, rng)
    v = _codes(rng, (g, k, n), qmin, qmax, fa)
    want = np.stack([ref.gemm(p[i], 0, v[i], z) for i in range(g)])
    for eng in ENGINES:
        got = ik.bmm_acc(torch.tensor(p, dtype=torch.float64), (0, pmax), torch.tensor(v - z, dtype=torch.float64),
                         (qmin - z, qmax - z), ik.pick_engine(eng, k * pmax * max(z - qmin, qmax - z)))
        assert np.array_equal(got.numpy(), want), eng


@settings(max_examples=40, deadline=None)
@given(lo=st.integers(-65535, 0), span=st.integers(0, 65535), seed=st.integers(0, 2 ** 31))
def test_limbs_reconstruct(lo, span, seed):
    x = torch.tensor(np.random.default_rng(seed).integers(lo, lo + span + 1, size=50), dtype=torch.float32)
    limbs, c = ik.to_limbs(x, lo, lo + span)
    back = sum(w * l.to(torch.int64) for w, l in limbs) + c
    assert all(l.dtype == torch.int8 for _, l in limbs)
    assert torch.equal(back, x.to(torch.int64))


def test_f32_trap_is_avoided():
    """K=1153 of 255*127 overflows float32's 2^24 exact range; the engine choice must not use f32."""
    k = 1153
    a = torch.full((1, k), 255.0)
    w = torch.full((1, k), 127.0)
    bound = 255 * 127 * k
    assert ik.pick_engine("auto", bound) == "f64" and ik.pick_engine("f32", bound) == "f64"
    got = ik.linear_acc(a, (0, 255), w, (-127, 127), ik.pick_engine("auto", bound))
    assert int(got) == bound


def test_requantize_hand_values_round_half_up():
    acc = torch.tensor([3, -3, 5, -5, 4, 0])
    out = requantize(acc, torch.tensor(1), torch.tensor(1), -100, 100)   # x / 2
    assert out.tolist() == [2, -1, 3, -2, 2, 0]                           # ties toward +inf
    assert requantize(torch.tensor([1000]), torch.tensor(1), torch.tensor(1), -100, 100).tolist() == [100]


@settings(max_examples=60, deadline=None)
@given(m=st.floats(1e-9, 1e4), seed=st.integers(0, 2 ** 31), acc_bits=st.integers(16, 32))
def test_fixed_point_matches_exact_rational(m, seed, acc_bits):
    from earlyq_sim.simulator.integer.fixed_point import mult_bits_for
    m0, sh = quantize_multiplier(np.array([m]), mult_bits_for(acc_bits))
    approx = Fraction(int(m0[0]), 2 ** int(sh[0]))
    if m0[0] >= 2 ** 29:
        assert abs(approx - Fraction(m)) <= Fraction(m) * Fraction(1, 2 ** 29)
    rng = np.random.default_rng(seed)
    lim = 2 ** (acc_bits - 1)
    acc = np.concatenate([rng.integers(-lim, lim, size=40), [-lim, lim - 1, 0, 1, -1]])
    got = requantize(torch.tensor(acc), torch.tensor(m0), torch.tensor(sh), -2 ** 62, 2 ** 62).numpy()
    want = [int((Fraction(int(a)) * approx + Fraction(1, 2)).__floor__()) for a in acc]
    assert got.tolist() == want
    assert np.array_equal(ref.requantize(acc[:, None], m0, sh, -2 ** 62, 2 ** 62)[:, 0], got)


def _worst_case(k=300, n=4):
    a = np.full((2, k), 255)                                # unsigned 8-bit, zero point 0
    w = np.full((n, k), 127)
    w[1] = -127
    return a, w


def test_accumulator_overflow_error_and_saturate():
    a, w = _worst_case()
    acc = ik.linear_acc(torch.tensor(a, dtype=torch.float32), (0, 255), torch.tensor(w, dtype=torch.float32),
                        (-127, 127), "f64")
    want = ref.gemm(a, 0, w.T, 0)
    assert int(np.abs(want).max()) == 300 * 255 * 127           # > 2^23: needs 25 bits
    with pytest.raises(UserError) as e:
        ik.check_accumulator(acc, 20, "error", "layer.x")
    assert isinstance(e.value, ik.AccumulatorOverflow) and "\n" not in str(e.value) and "layer.x" in str(e.value)
    with pytest.raises(OverflowError):
        ref.check_accumulator(want, 20, "error")
    sat, n = ik.check_accumulator(acc, 20, "saturate", "layer.x")
    assert np.array_equal(sat.numpy(), ref.check_accumulator(want, 20, "saturate"))
    assert sat.max() == 2 ** 19 - 1 and sat.min() == -2 ** 19 and n == int((np.abs(want) >= 2 ** 19).sum())
    ok, n = ik.check_accumulator(acc, 32, "error", "layer.x")     # wide: no false alarm
    assert n == 0 and np.array_equal(ok.numpy(), want)
    ok, n = ik.check_accumulator(acc, 26, "error", "layer.x")     # exactly enough bits
    assert n == 0
