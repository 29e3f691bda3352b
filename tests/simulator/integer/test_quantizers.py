"""Quantizers and observers: hand-computed grids, zero exactness, weight error bounds, bad bits."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer.observers import MinMaxObserver, MSEObserver, PercentileObserver, make_observer
from earlyq_sim.simulator.integer.quantizers import (act_qparams, dequantize, fake_quant, prob_qparams, quantize,
                                             quantize_weight)


def test_unsigned_grid_hand_computed():
    p = act_qparams(-1.0, 3.0, 2, signed=False)          # s = 4/3, z = round(0.75) = 1
    assert (p.qmin, p.qmax, p.zero_point) == (0, 3, 1)
    assert p.scale == pytest.approx(4 / 3)
    x = torch.tensor([-5.0, -1.0, 0.0, 0.6, 0.7, 2.0, 9.0])
    # round(x/s) + z: -3.75 -> -4+1 -> 0, -0.75 -> 0, 1, 0.45 -> 1, 0.525 -> 2, 1.5 -> 3, 6.75 -> 3
    assert quantize(x, p).tolist() == [0, 0, 1, 1, 2, 3, 3]
    p1 = act_qparams(0.0, 3.0, 2, signed=False)           # s = 1, z = 0: ties go to even
    assert quantize(torch.tensor([0.5, 1.5, 2.5, -0.2]), p1).tolist() == [0, 2, 2, 0]


def test_signed_grid_hand_computed():
    p = act_qparams(-7.0, 2.0, 4, signed=True)            # narrow: qmax 7, s = 7/7 = 1
    assert (p.qmin, p.qmax, p.zero_point, p.scale) == (-7, 7, 0, 1.0)
    assert quantize(torch.tensor([-9.0, -2.5, 2.5, 3.5, 8.0]), p).tolist() == [-7, -2, 2, 4, 7]


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-100, 100), width=st.floats(1e-3, 200), bits=st.integers(2, 8), signed=st.booleans())
def test_zero_is_exact_and_error_bounded(lo, width, bits, signed):
    hi = lo + width
    p = act_qparams(lo, hi, bits, signed)
    assert float(fake_quant(torch.zeros(1), p)) == 0.0
    x = torch.linspace(max(lo, -1e3), hi, 101)
    inside = (x >= p.scale * (p.qmin - p.zero_point)) & (x <= p.scale * (p.qmax - p.zero_point))
    err = (fake_quant(x, p) - x).abs()[inside]
    assert float(err.max()) if err.numel() else 0.0 <= p.scale / 2 * (1 + 1e-4) + 1e-6


def test_prob_grid_and_bits_checks():
    p = prob_qparams(16)
    assert (p.qmin, p.qmax, p.zero_point) == (0, 65535, 0)
    assert p.scale == pytest.approx(1 / 65535)
    for bad in (1, 17):
        with pytest.raises(UserError) as e:
            prob_qparams(bad)
        assert "\n" not in str(e.value) and "allowed 2..16" in str(e.value)
    for bad in (1, 9):
        with pytest.raises(UserError):
            quantize_weight(torch.randn(4, 3), bad)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_weight_per_channel(bits):
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3) * torch.arange(1, 7).view(6, 1, 1, 1)
    q = quantize_weight(w, bits)
    qmax = 2 ** (bits - 1) - 1
    flat = q.codes.reshape(6, -1)
    assert torch.equal(flat.abs().amax(1), torch.full((6,), float(qmax)))   # absmax hits the grid end
    assert torch.equal(q.codes, q.codes.round())
    err = (q.dequantize() - w).abs().reshape(6, -1)
    assert bool((err <= q.scale[:, None] / 2 + 1e-6).all())
    mse = quantize_weight(w, bits, "mse")
    assert float(((mse.dequantize() - w) ** 2).mean()) <= float(((q.dequantize() - w) ** 2).mean()) + 1e-9


def test_observers():
    torch.manual_seed(1)
    x = torch.randn(20000)
    x[0] = 40.0                                            # one outlier
    obs = [MinMaxObserver(), PercentileObserver(99.9), MSEObserver()]
    for o in obs:
        o.observe(x[:10000])
        o.observe(x[10000:])
    assert obs[0].range_for(4, False) == (float(x.min()), 40.0)
    assert obs[1].range_for(4, False)[1] < 5.0
    lo, hi = obs[2].range_for(4, False)
    assert hi < 40.0
    s = obs[2].samples()
    e_mse = float(((fake_quant(s, act_qparams(lo, hi, 4, False)) - s) ** 2).mean())
    e_mm = float(((fake_quant(s, act_qparams(*obs[0].range_for(4, False), 4, False)) - s) ** 2).mean())
    assert e_mse < e_mm
    with pytest.raises(UserError):
        make_observer("kl")


def test_dequantize_inverts_codes():
    p = act_qparams(-0.5, 1.5, 8, False)
    q = torch.arange(0, 256, dtype=torch.float32)
    assert torch.equal(quantize(dequantize(q, p), p), q)
