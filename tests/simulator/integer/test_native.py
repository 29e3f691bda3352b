"""The native ``i16`` engine (C, AVX2) against the int64 NumPy reference, bit for bit: quantize,
exact conv/linear, bias, accumulator check, fixed-point rescale and dequantization."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer import fused_kernels as fk
from earlyq_sim.simulator.integer import int_kernels as ik
from earlyq_sim.simulator.integer import int_reference as ref
from earlyq_sim.simulator.integer import native
from earlyq_sim.simulator.integer.quant_modules import SHARED, QuantConfig, QuantConv2d, QuantLinear, QuantState, Rescale
from earlyq_sim.schedule import StepBits

pytestmark = pytest.mark.skipif(not native.available(), reason=f"native engine unavailable: {native.reason()}")
CL = torch.channels_last


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype == torch.float32 and \
        torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def reference(codes: np.ndarray, w: np.ndarray, bias, rs: Rescale, qmin, qmax, s_out, acc_bits, check,
              conv=None) -> tuple[torch.Tensor, int, int, int]:
    """int64 reference: acc -> (count, min, max, clamp) -> Python-int rescale -> float32."""
    if conv is not None:
        acc = ref.conv2d(codes, 0, w, *conv, bias)                      # (N, Co, Ho, Wo)
        acc_last = np.moveaxis(acc, 1, -1)
    else:
        acc_last = ref.gemm(codes.reshape(-1, codes.shape[-1]), 0, w.T, 0, bias)
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    n = int(((acc_last < lo) | (acc_last > hi)).sum()) if check else 0
    amin, amax = (int(acc_last.min()), int(acc_last.max())) if check else (0, 0)
    a = ref.check_accumulator(acc_last, acc_bits, "saturate") if check else acc_last
    q = ref.requantize(a, rs.m0.reshape(-1).numpy(), rs.shift.reshape(-1).numpy(), qmin, qmax)
    out = torch.from_numpy(q.astype(np.float32)) * np.float32(s_out)
    if conv is not None:
        out = out.permute(0, 3, 1, 2)
    else:
        out = out.reshape(*codes.shape[:-1], w.shape[0])
    return out.contiguous(), n, amin, amax


def act_range(rng, bits: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (bits - 1)) + 1, (1 << (bits - 1)) - 1
    z = int(rng.integers(0, 1 << bits))                 # any zero point on the grid
    return -z, (1 << bits) - 1 - z


def make_inputs(rng, shape, scale, lo, hi, edge: bool) -> torch.Tensor:
    x = torch.from_numpy(rng.normal(0, 1, shape).astype(np.float32)) * np.float32(scale * max(hi, -lo, 1) * 0.8)
    flat = x.view(-1)
    if edge:                                            # ties, clamped extremes, signed zeros
        s32 = float(np.float32(scale))
        vals = [(k + 0.5) * s32 for k in range(-3, 3)] + [1e30, -1e30, -0.0, 0.0, (hi + 7) * s32, (lo - 7) * s32]
        k = min(len(vals), flat.numel())
        flat[:k] = torch.tensor(vals[:k], dtype=torch.float32)
    return x


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 40), h=st.integers(1, 9), w=st.integers(1, 9),
       co=st.integers(1, 37), k=st.sampled_from([(1, 1), (3, 3), (1, 3), (2, 2)]), stride=st.integers(1, 2),
       pad=st.integers(0, 2), abits=st.integers(2, 8), wbits=st.integers(2, 8), signed=st.booleans(),
       acc_bits=st.sampled_from([12, 16, 20, 32]), use_bias=st.booleans(), layout=st.sampled_from(["nchw", "cl"]),
       edge=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_conv_matches_int64_reference(n, c, h, w, co, k, stride, pad, abits, wbits, signed, acc_bits, use_bias,
                                      layout, edge, seed):
    rng = np.random.default_rng(seed)
    r, s = k
    if h + 2 * pad < r or w + 2 * pad < s:
        return
    lo, hi = act_range(rng, abits, signed)
    scale = float(rng.uniform(1e-3, 2.0))
    x = make_inputs(rng, (n, c, h, w), scale, lo, hi, edge)
    if layout == "cl":
        x = x.contiguous(memory_format=CL)
    wq = (1 << (wbits - 1)) - 1
    wts = rng.integers(-wq, wq + 1, (co, c, r, s))
    bias = rng.integers(-5000, 5001, co) if use_bias else None
    m = 10.0 ** rng.uniform(-6, -1, co)
    rs = Rescale.make(m, acc_bits, (co, 1, 1))
    qmax = (1 << 15) - 1
    s_out = float(rng.uniform(1e-3, 1.0))
    check = acc_bits < 32
    codes = fk.quantize_centered_torch(x.clone(), scale, lo, hi).numpy().astype(np.int64)
    want = reference(codes, wts, bias, rs, -qmax, qmax, s_out, acc_bits, check, ((stride, stride), (pad, pad)))
    ep = native.Epilogue(None if bias is None else torch.from_numpy(bias), rs.arrays, -qmax, qmax, s_out)
    got = native.conv2d(x, scale, float(lo), float(hi), native.pack_weight(torch.from_numpy(wts)), co, (r, s),
                        (stride, stride), (pad, pad), ep, check, acc_bits, layout == "cl")
    assert bits_equal(got[0], want[0])
    assert got[1:] == want[1:]
    assert got[0].is_contiguous(memory_format=CL) if layout == "cl" else got[0].is_contiguous()


@settings(max_examples=80, deadline=None)
@given(lead=st.sampled_from([(5,), (2, 7), (3, 1), (1,)]), k=st.integers(1, 70), nout=st.integers(1, 40),
       view=st.sampled_from(["contig", "transposed", "strided"]), abits=st.integers(2, 8), signed=st.booleans(),
       acc_bits=st.sampled_from([14, 32]), edge=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_linear_matches_int64_reference(lead, k, nout, view, abits, signed, acc_bits, edge, seed):
    rng = np.random.default_rng(seed)
    lo, hi = act_range(rng, abits, signed)
    scale = float(rng.uniform(1e-3, 2.0))
    x = make_inputs(rng, (*lead, k), scale, lo, hi, edge)
    if view == "transposed" and x.dim() == 3:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)   # attention's (B, C, L) -> (B, L, C)
    elif view == "strided":
        x = torch.cat([x, x], dim=-1)[..., :k]                   # rows with a stride > K
    wts = rng.integers(-127, 128, (nout, k))
    bias = rng.integers(-10 ** 6, 10 ** 6, nout)
    rs = Rescale.make(10.0 ** rng.uniform(-6, -1, nout), acc_bits, (nout,))
    check = acc_bits < 32
    codes = fk.quantize_centered_torch(x.clone(), scale, lo, hi).numpy().astype(np.int64)
    want = reference(codes, wts, bias, rs, -32767, 32767, 0.01, acc_bits, check)
    ep = native.Epilogue(torch.from_numpy(bias), rs.arrays, -32767, 32767, 0.01)
    got = native.linear(x, scale, float(lo), float(hi), native.pack_weight(torch.from_numpy(wts)), nout, ep, check,
                        acc_bits)
    assert bits_equal(got[0], want[0]) and got[1:] == want[1:]


def test_accumulator_worst_case_near_int32_limit():
    """K = 512 with |code| = 32768 and |w| = 127: |acc| = 2^31 - 2^24, the largest sums an int32
    accumulator holds exactly here; both signs and alternating patterns."""
    k, scale = 512, 1.0
    x = torch.full((4, k), -40000.0)                    # clamps to lo = -32768
    x[1] = 40000.0                                      # clamps to hi = 32767
    x[2, ::2], x[2, 1::2] = -40000.0, 40000.0
    x[3, :] = -32768.0
    wts = torch.full((3, k), -127, dtype=torch.int64)
    wts[1] = 127
    wts[2, ::2], wts[2, 1::2] = 127, -127
    assert native.fits((-32768, 32767), 127, 32768 * 127 * k)
    assert not native.fits((-32768, 32767), 127, 32768 * 127 * (k + 5))     # K = 517 > (2^31 - 1) / (2^15 * 127)
    rs = Rescale.make(np.full(3, 2.0 ** -20), 32, (3,))
    codes = fk.quantize_centered_torch(x.clone(), scale, -32768, 32767).numpy().astype(np.int64)
    want = reference(codes, wts.numpy(), None, rs, -(1 << 23), (1 << 23) - 1, 1.0, 32, False)
    ep = native.Epilogue(None, rs.arrays, -(1 << 23), (1 << 23) - 1, 1.0)
    got = native.linear(x, scale, -32768.0, 32767.0, native.pack_weight(wts), 3, ep, False, 32)
    assert bits_equal(got[0], want[0])
    assert float(got[0].abs().max()) == 2032.0          # (2^31 - 2^24) / 2^20: the limit was reached


def test_overflow_detected_both_ways():
    """A 16-bit accumulator: sums inside pass untouched; sums outside are counted and clamped,
    with the extreme value reported, exactly as the reference counts them."""
    x = torch.tensor([[1.0, 2.0, 3.0], [200.0, 200.0, 200.0]])
    wts = torch.tensor([[1, 1, 1], [127, 127, 127]])
    rs = Rescale.make(np.full(2, 0.5), 16, (2,))
    ep = native.Epilogue(None, rs.arrays, -(1 << 15), (1 << 15) - 1, 1.0)
    out, n, amin, amax = native.linear(x, 1.0, -255.0, 255.0, native.pack_weight(wts), 2, ep, True, 16)
    # row 0: 6 and 762 fit; row 1: 600 fits, 3 * 200 * 127 = 76200 does not
    assert n == 1 and amin == 6 and amax == 76200
    assert out[1, 1].item() == 16384.0                  # clamped to 32767, times 0.5, rounded half up
    out, n, _, _ = native.linear(x[:1], 1.0, -255.0, 255.0, native.pack_weight(wts), 2, ep, True, 16)
    assert n == 0 and out.tolist() == [[3.0, 381.0]]


def _layer(kind: str, engine: str, acc_bits: int = 32, overflow: str = "error"):
    torch.manual_seed(0)
    mod = torch.nn.Conv2d(24, 20, 3, padding=1, stride=2) if kind == "conv" else torch.nn.Linear(40, 24)
    st_ = QuantState(QuantConfig(engine=engine, acc_bits=acc_bits, overflow=overflow), mode="int",
                     bits=StepBits(8, 8, 16))
    q = (QuantConv2d if kind == "conv" else QuantLinear)(mod, "layer", st_)
    q.act.set_range((SHARED, 8), -1.5, 3.0)
    q.out.set_range((SHARED, 16), -20.0, 20.0)
    return q, st_


@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("acc_bits,overflow", [(32, "error"), (16, "saturate"), (16, "error")])
def test_module_engines_agree(kind, acc_bits, overflow):
    """QuantConv2d/QuantLinear: the i16 engine gives the f64 engine's output bit for bit, the same
    saturation counts, and the same overflow error."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 24, 7, 9, generator=g) if kind == "conv" else torch.randn(2, 6, 40, generator=g)
    res = {}
    for eng in ("i16", "f64"):
        q, st_ = _layer(kind, eng, acc_bits, overflow)
        try:
            with torch.no_grad():
                res[eng] = ("ok", q(x), dict(st_.saturated), dict(st_.engine_calls))
        except ik.AccumulatorOverflow as e:
            res[eng] = ("overflow", str(e), {}, {})
    assert res["i16"][0] == res["f64"][0]
    if res["i16"][0] == "ok":
        assert bits_equal(res["i16"][1], res["f64"][1]) and res["i16"][2] == res["f64"][2]
        assert res["i16"][3] == {"i16": 1}
    else:
        assert res["i16"][1] == res["f64"][1]
    if acc_bits == 16 and overflow == "saturate":
        assert sum(res["i16"][2].values()) > 0          # the case really overflows


def test_auto_uses_i16_only_where_exact():
    """A bound above 2^31 (16-bit activations, wide K) falls back to the float engines."""
    q, st_ = _layer("linear", "auto")
    assert q.plan(q.act.qparams(), q.out.qparams(), 8)["engine"] == "i16"
    assert not native.fits((0, 65535), 127, 1.0)        # 16-bit unsigned codes exceed int16
    assert not native.fits((-100, 100), 127, 2.0 ** 31)


def test_float64_input_takes_exact_torch_engine():
    q, st_ = _layer("conv", "auto")
    x = torch.randn(1, 24, 5, 5, dtype=torch.float64)
    ref_q, _ = _layer("conv", "f64")
    with torch.no_grad():
        assert torch.equal(q(x), ref_q(x))
    assert "i16" not in st_.engine_calls


def test_engine_i16_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_reason", "disabled by EARLYQ_NATIVE=0")
    q, _ = _layer("conv", "i16")
    with pytest.raises(UserError, match="i16 is unavailable"):
        q(torch.randn(1, 24, 5, 5))
    q, st_ = _layer("conv", "auto")                     # auto falls back silently
    q(torch.randn(1, 24, 5, 5))
    assert "i16" not in st_.engine_calls


def test_build_is_cached_and_keyed(tmp_path, monkeypatch):
    """The library is built into the cache directory once; a second build reuses the file."""
    monkeypatch.setenv("EARLYQ_NATIVE_CACHE", str(tmp_path))
    p1 = native._build()
    mtime = p1.stat().st_mtime_ns
    p2 = native._build()
    assert p1 == p2 and p2.stat().st_mtime_ns == mtime and p1.parent == tmp_path
    assert sorted(f.name for f in tmp_path.iterdir()) == [p1.name, p1.name + ".sha256"]  # no temp files left


def _private_tmp(monkeypatch, tmp_path):
    import tempfile
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setenv("EARLYQ_NATIVE_CACHE", str(cache))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return cache, tmp


def test_a_planted_library_is_never_loaded(tmp_path, monkeypatch):
    """Security: a library someone placed under the expected name (no recorded hash, or a file
    others can write) is rebuilt, not loaded."""
    import os

    from earlyq_sim.simulator.integer.native import build as nb
    cache, _ = _private_tmp(monkeypatch, tmp_path)
    cache.mkdir(mode=0o700)
    planted = b"\x7fELF not ours"
    for flags in ([*native.FLAGS, "-fopenmp"], native.FLAGS):
        (cache / nb.library_name(os.environ.get("CC", "cc"), flags)).write_bytes(planted)
    p = native._build()
    assert p.parent == cache and p.read_bytes() != planted and nb.trusted_library(p)
    # a matching hash does not help a file that others can write
    p.write_bytes(planted)
    p.with_name(p.name + ".sha256").write_text(hashlib.sha256(planted).hexdigest())
    os.chmod(p, 0o666)
    assert not nb.trusted_library(p)
    assert native._build().read_bytes() != planted


def test_a_shared_directory_is_skipped(tmp_path, monkeypatch):
    """Security: a cache directory others can write is not used; the per-user temp directory is."""
    import os
    cache, tmp = _private_tmp(monkeypatch, tmp_path)
    cache.mkdir()
    os.chmod(cache, 0o777)
    p = native._build()
    assert p.parent == tmp / f"earlyq-sim-native-{os.getuid()}" and not any(cache.iterdir())
    assert oct(p.parent.stat().st_mode & 0o777) == "0o700"


def test_build_without_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("EARLYQ_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="no-such-cc"):
        native._build()


def test_non_float32_input_is_rejected():
    ep = native.Epilogue(None, Rescale.make(np.full(2, 0.5), 32, (2,)).arrays, -127, 127, 1.0)
    wpk = native.pack_weight(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="float32"):
        native.linear(torch.ones(4, 3, dtype=torch.float64), 1.0, -8.0, 7.0, wpk, 2, ep, False, 32)
    out = native.linear(torch.ones(0, 3), 1.0, -8.0, 7.0, wpk, 2, ep, False, 32)[0]    # no rows: empty output
    assert out.shape == (0, 2)
