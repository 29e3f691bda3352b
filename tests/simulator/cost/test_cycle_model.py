"""Cycle and traffic model: hand-computed GEMMs/convs per PE type and dataflow, invariants."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import load_arch as _load_arch
from earlyq_sim.simulator.cost.cost_model import OUTPUT_COLUMNS, evaluate
from earlyq_sim.simulator.cost.cycle_model import bit_factors, gemm_compute_cycles, peak_macs_per_cycle
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.schedule import StepBits

def load_arch(name):
    """Shipped arch under its fixed schedule (temporal blocks, ideal overlap): these tests pin the
    fold and traffic formulas of the fixed schedules, which the mapper keeps as candidates
    (tests/simulator/cost/test_mapper.py covers the search)."""
    return _load_arch(name).with_fixed_schedule(True)


ARCHS = ("int8-systolic", "stripes", "bitfusion", "loom")


def small(name, rows=4, cols=4, dataflow="ws", **buffers):
    a = load_arch(name)
    arr = dataclasses.replace(a.array, rows=rows, cols=cols, dataflow=dataflow)
    return dataclasses.replace(a, array=arr, buffers=dataclasses.replace(a.buffers, **buffers))


def gemm_row(name="g", M=100, N=64, K=96, G=1, kind="wa", op="linear"):
    r = empty_row()
    r.update(name=name, op=op, unit="gemm", operand_kind=kind, G=G, M=M, N=N, K=K, macs=G * M * N * K)
    return r


def cyc(arch, M, N, K, x, y, G=1, swappable=False):
    return int(gemm_compute_cycles(arch, np.array([M]), np.array([N]), np.array([K]), np.array([G]),
                                   np.array([x]), np.array([y]), np.array([swappable]))[0])


# --- hand-computed compute cycles ------------------------------------------------------------
def test_int8_ws_scalesim_formula():
    a = load_arch("int8-systolic")  # 32x32 ws
    # Sr=K=96 -> 3 row folds, Sc=N=64 -> 2 col folds; fold = 2R + C + T - 2 = 64 + 32 + 100 - 2 = 194
    assert cyc(a, 100, 64, 96, 8, 8) == 6 * 194 == 1164
    assert cyc(a, 100, 64, 96, 4, 4) == 1164  # fewer bits: no speedup
    assert cyc(a, 100, 64, 96, 16, 8) == 2 * 1164  # 16-bit activations: 2 chunk passes
    assert cyc(a, 100, 64, 96, 16, 12) == 4 * 1164  # 2 x 2 chunk pairs
    assert cyc(a, 100, 64, 96, 8, 8, G=3) == 3 * 1164


def test_int8_os_and_is_formulas():
    a = small("int8-systolic", dataflow="os")
    # os: Sr=M=10 -> 3, Sc=N=6 -> 2; fold = R + C + T - 2 = 4 + 4 + 20 - 2 = 26
    assert cyc(a, 10, 6, 20, 8, 8) == 6 * 26
    a = small("int8-systolic", dataflow="is")
    # is: Sr=K=20 -> 5, Sc=M=10 -> 3; fold = 2R + C + T - 2 = 8 + 4 + 6 - 2 = 16
    assert cyc(a, 10, 6, 20, 8, 8) == 15 * 16


def test_conv_on_small_array():
    # conv 3x3, C_in 4 -> C_out 8 on 6x6, stride 1, pad 1: M = 36, N = 8, K = 4*3*3 = 36
    a = small("int8-systolic")
    # ws: 9 row folds x 2 col folds; fold = 8 + 4 + 36 - 2 = 46
    assert cyc(a, 36, 8, 36, 8, 8) == 18 * 46 == 828
    # stripes, 8 lanes, A4: fold = R + (R + C - 2) + 4 * ceil(36 / 8) = 4 + 6 + 20 = 30
    assert cyc(small("stripes"), 36, 8, 36, 4, 8) == 18 * 30
    # grouped conv, 4 groups of M=36, N=2, K=9: 3 x 1 folds of 46 cycles per group
    assert cyc(a, 36, 2, 9, 8, 8, G=4) == 4 * 3 * 46


def test_stripes_hand():
    a = load_arch("stripes")  # 32x32 ws, 8 lanes, 1 bit/cycle
    # fold = 32 + 62 + a * ceil(100 / 8) = 94 + 13a; 6 folds
    assert cyc(a, 100, 64, 96, 8, 8) == 6 * (94 + 8 * 13) == 1188
    assert cyc(a, 100, 64, 96, 4, 8) == 6 * (94 + 4 * 13) == 876
    assert cyc(a, 100, 64, 96, 1, 8) == 6 * (94 + 13)
    assert cyc(a, 100, 64, 96, 4, 16) == 876  # 16-bit weights still one parallel pass
    assert cyc(a, 100, 64, 96, 4, 20) == 2 * 876  # 20-bit weights: two 16-bit chunks
    # pa (prob 16 x act 4): the 4-bit operand is fed serially
    assert cyc(a, 100, 64, 96, 16, 4, swappable=True) == 876
    assert cyc(a, 100, 64, 96, 16, 4, swappable=False) == 6 * (94 + 16 * 13)
    two = dataclasses.replace(a, pe=a.pe.replace(bits_per_cycle=2))
    assert cyc(two, 100, 64, 96, 5, 8) == 6 * (94 + 3 * 13)  # ceil(5/2) = 3 cycles per slot


def test_bitfusion_hand():
    f = bit_factors(load_arch("bitfusion").pe, np.array([8, 4, 2, 8, 6, 3, 1, 5, 16]),
                    np.array([8, 4, 2, 4, 4, 3, 1, 2, 8]))
    # MACs per fusion unit per cycle = 16 // ((x'/2) * (y'/2)), x' rounded up to 2/4/8
    assert f.lanes.tolist() == [1, 4, 16, 2, 2, 4, 16, 4, 1]
    assert f.passes.tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 2]  # 16 bits: two 8-bit chunks
    a = load_arch("bitfusion")
    assert cyc(a, 100, 64, 96, 8, 8) == 1164  # same as int8 at 8x8
    assert cyc(a, 100, 64, 96, 4, 4) == 6 * (94 + 25)  # 4 lanes: ceil(100/4) = 25 slots
    assert cyc(a, 100, 64, 96, 6, 4) == 6 * (94 + 50)  # 6 -> 8 bits: 2 lanes
    assert cyc(a, 100, 64, 96, 2, 2) == 6 * (94 + 7)  # 16 lanes: ceil(100/16) = 7
    exact = dataclasses.replace(a, pe=a.pe.replace(fusion_widths=(2, 4, 6, 8)))
    assert bit_factors(exact.pe, np.array([6]), np.array([4])).lanes.tolist() == [2]  # 16 // 6
    assert bit_factors(exact.pe, np.array([6]), np.array([2])).lanes.tolist() == [5]  # 16 // 3


def test_loom_hand():
    a = load_arch("loom")  # 64 lanes, slot = x * y cycles
    assert cyc(a, 100, 64, 96, 8, 8) == 6 * (94 + 64 * 2)
    assert cyc(a, 100, 64, 96, 8, 4) == 6 * (94 + 32 * 2)
    assert cyc(a, 100, 64, 96, 2, 2) == 6 * (94 + 4 * 2)


# --- invariants ---------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ARCHS), st.sampled_from(["ws", "os", "is"]), st.integers(1, 5000),
       st.integers(1, 2000), st.integers(1, 5000), st.integers(1, 8), st.sampled_from([4, 8]))
def test_speedup_monotone_and_bounded(name, df, M, N, K, G, w):
    a = small(name, rows=32, cols=32, dataflow=df)
    bits = np.arange(1, 17)
    c = gemm_compute_cycles(a, M, N, K, G, bits, np.full(16, w))
    # speedup never grows with bits while the schedule does not depend on them: always with
    # SCALE-Sim's one block; with temporal blocking up to 8-bit streamed values (wider ones get
    # shorter blocks so that they still fit, and block rounding may then save a few cycles)
    assert (np.diff(c[:8]) >= 0).all()
    one = dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, temporal_blocking=False))
    assert (np.diff(gemm_compute_cycles(one, M, N, K, G, bits, np.full(16, w))) >= 0).all()
    base = c[7]  # A8 at the same weight bits
    speedup = base / c[:8]
    a_bits = bits[:8]
    ideal = {"int8-systolic": np.ones(8), "stripes": 8 / a_bits, "loom": 8 / a_bits,
             "bitfusion": 4 / np.ceil(a_bits / 2)}[name]
    assert (speedup <= ideal + 1e-12).all()
    if name == "int8-systolic":
        assert (speedup == 1).all()


def test_peak_throughput_scaling():
    x = np.array([8, 4, 2])
    assert peak_macs_per_cycle(load_arch("stripes"), x, np.full(3, 8)).tolist() == [1024, 2048, 4096]
    assert peak_macs_per_cycle(load_arch("int8-systolic"), x, np.full(3, 8)).tolist() == [1024] * 3
    assert peak_macs_per_cycle(load_arch("bitfusion"), x, x).tolist() == [1024, 4096, 16384]
    assert peak_macs_per_cycle(load_arch("loom"), x, x).tolist() == [1024, 4096, 16384]


# --- evaluate(): table in, table out ------------------------------------------------------------
def test_evaluate_columns_index_and_vector_ops():
    v = empty_row()
    v.update(name="sm", op="softmax", unit="vector", elems=1000, passes=3)
    ops = make_table([gemm_row(), v]).set_axis([10, 20])
    out = evaluate(load_arch("int8-systolic"), ops, StepBits(8, 8, 16))
    assert list(out.columns) == list(OUTPUT_COLUMNS) and list(out.index) == [10, 20]
    sm = out.loc[20]
    assert sm.compute_cycles == 47  # ceil(1000 * 3 / 64)
    assert sm.dram_bytes == 1000 * 1 + 1000 * 2  # in at 8 bits, softmax out at prob 16 bits
    assert sm.sram_bytes == 2 * 3000
    assert sm.util == pytest.approx(3000 / (64 * 47))
    assert sm.mem_cycles == 3000 / 32 and sm.cycles == max(47, 3000 / 32)


def test_gemm_traffic_hand():
    a = load_arch("int8-systolic")
    out = evaluate(a, make_table([gemm_row()]), StepBits(8, 8, 8)).iloc[0]
    # X = 100*96 = 9600 B, W = 96*64 = 6144 B, O = 100*64 = 6400 B, all fit their buffers
    assert out.dram_bytes == 9600 + 6144 + 6400
    # array side: X once per col fold (2), W once, O + psums over 3 row folds: 2*(3-1)*6400*4 B
    assert out.sram_bytes == 2 * 9600 + 6144 + 6400 + 2 * 2 * 6400 * 4 + out.dram_bytes
    assert out.mem_cycles == 22144 / 32 and out.cycles == 1164 and out.compute_cycles == 1164
    assert out.util == pytest.approx(614400 / (1024 * 1164))
    out4 = evaluate(a, make_table([gemm_row()]), StepBits(8, 4, 4)).iloc[0]
    assert out4.dram_bytes == 4800 + 6144 + 3200  # activations and outputs at 4 bits


def _with_buffers(a, **kw):
    return dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, **kw))


def test_temporal_blocking_hand():
    a = load_arch("int8-systolic")
    ops = make_table([gemm_row()])
    # ofmap 8 KiB -> 4096 B usable: a col fold holds 4096 / (32 cols * 4 B) = 32 rows of psums,
    # so T = M = 100 runs as blocks 32, 32, 32, 4; fold(t) = 32 + 62 + t
    out = evaluate(_with_buffers(a, ofmap_kib=8.0), ops, StepBits(8, 8, 8)).iloc[0]
    assert out.compute_cycles == 6 * (3 * (94 + 32) + (94 + 4)) == 2856
    assert out.dram_bytes == 22144  # everything still fetched once, no spill
    # W is reloaded into the array once per block: 4 x 6144 B of SRAM reads instead of 1 x
    assert out.sram_bytes == 2 * 9600 + 4 * 6144 + 6400 + 2 * 2 * 6400 * 4 + 22144
    # ofmap 0.1 KiB: not even one row of 32 psums (128 B) fits -> blocks of 1 row and the
    # psums of both col folds spill: 2 * (3 - 1) trips of 100 x 64 x 4 B
    out = evaluate(_with_buffers(a, ofmap_kib=0.1), ops, StepBits(8, 8, 8)).iloc[0]
    assert out.compute_cycles == 6 * 100 * (94 + 1)
    assert out.dram_bytes == 22144 + 4 * 25600


def test_temporal_blocking_off_is_scalesim_schedule_with_spills():
    a = load_arch("int8-systolic")
    ops = make_table([gemm_row()])
    # same ofmap 8 KiB as above, blocking off: one block of T = 100 per fold, SCALE-Sim's
    # 2R + C + T - 2 = 194 per fold; the 100 x 32 psums (12800 B > 4096 B) of both col folds
    # spill instead: 2 * (3 - 1) trips of 100 x 64 x 4 B, as in the tb = 1 case
    off = _with_buffers(a, ofmap_kib=8.0, temporal_blocking=False)
    out = evaluate(off, ops, StepBits(8, 8, 8)).iloc[0]
    assert out.compute_cycles == 6 * (2 * 32 + 32 + 100 - 2) == 1164
    assert out.dram_bytes == 22144 + 4 * 25600
    assert out.sram_bytes == 2 * 9600 + 6144 + 6400 + 2 * 2 * 6400 * 4 + out.dram_bytes
    # streamed rows that do not fit (ifmap 8 KiB: 4096 B < 100 x 96 B): no blocks, X refetched
    # per col fold (2 x 9600 B) instead of W per block
    out = evaluate(_with_buffers(a, ifmap_kib=8.0, filter_kib=8.0, temporal_blocking=False), ops,
                   StepBits(8, 8, 8)).iloc[0]
    assert out.compute_cycles == 1164
    assert out.dram_bytes == 2 * 9600 + 6144 + 6400


def test_refetch_hand():
    a = load_arch("int8-systolic")
    ops = make_table([gemm_row()])
    # ifmap and filter 8 KiB (4096 B usable): blocks of floor(4096 / 96) = 42 rows -> 42, 42, 16;
    # W (6144 B) does not fit its buffer -> fetched once per block (3x)
    small = _with_buffers(a, ifmap_kib=8.0, filter_kib=8.0)
    assert evaluate(small, ops, StepBits(8, 8, 8)).iloc[0].dram_bytes == 9600 + 3 * 6144 + 6400
    # 16-bit activations: blocks are sized at 2 B per value, floor(4096 / 192) = 21 rows (5 blocks
    # 21, 21, 21, 21, 16), so a block of X still fits and X (19200 B) is read once (sized at 8 bits
    # a block of 42 x 96 x 2 B = 8064 B would not fit, and X would be refetched per col fold);
    # W 6144 B fits the 2 MiB filter; O at 16 bits = 12800 B
    wide = _with_buffers(a, ifmap_kib=8.0)
    out = evaluate(wide, ops, StepBits(8, 16, 16)).iloc[0]
    assert out.dram_bytes == 19200 + 6144 + 12800
    # 2 passes (16-bit X on 8-bit PEs) x 2 col x 3 row folds, each 5 blocks of fill/drain + 100 rows
    assert out.compute_cycles == 2 * 2 * 3 * (5 * (2 * 32 + 32 - 2) + 100)


def test_conv_dram_moves_real_input_not_im2col():
    # conv 3x3, 4 -> 8 channels on 6x6: im2col X is 36 x 36, the input tensor only 4 x 6 x 6 = 144
    r = gemm_row(M=36, N=8, K=36, op="conv")
    r["in_elems"] = 144
    out = evaluate(load_arch("int8-systolic"), make_table([r]), StepBits(8, 8, 8)).iloc[0]
    assert out.dram_bytes == 144 + 36 * 8 + 36 * 8
    # array reads im2col X once (one col fold), W once, writes O, and K = 36 > 32 rows gives 2 row
    # folds: one round of psums read + written, 2 * 36 * 8 * 4 B
    assert out.sram_bytes == 36 * 36 + 36 * 8 + 36 * 8 + 2 * 36 * 8 * 4 + out.dram_bytes


def test_no_overlap_sums_compute_and_memory():
    a = load_arch("stripes")
    serial = dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, double_buffered=False))
    ops = make_table([gemm_row(M=4096, N=320, K=2880), gemm_row(M=1, N=1280, K=1280)])
    o1, o2 = evaluate(a, ops, StepBits(8, 8, 8)), evaluate(serial, ops, StepBits(8, 8, 8))
    assert np.allclose(o1.cycles, np.maximum(o1.compute_cycles, o1.mem_cycles))
    assert np.allclose(o2.cycles, o2.compute_cycles + o2.mem_cycles)


def test_accumulator_overflow_policy():
    a = load_arch("int8-systolic")
    narrow = dataclasses.replace(a, accumulator=dataclasses.replace(a.accumulator, width_bits=16))
    ops = make_table([gemm_row(name="down.conv1", K=2304)])
    with pytest.raises(UserError) as e:
        evaluate(narrow, ops, StepBits(8, 8, 8))
    msg = str(e.value)  # 8 + 8 + ceil(log2 2304) = 28 bits needed
    assert "down.conv1" in msg and "28" in msg and "accumulator.width_bits" in msg and "\n" not in msg
    sat = dataclasses.replace(narrow, accumulator=dataclasses.replace(narrow.accumulator, overflow="saturate"))
    assert evaluate(sat, ops, StepBits(8, 8, 8)).cycles.iloc[0] > 0
    # pa sums probabilities (total <= 1): P16 x A8 over 4096 tokens needs 16 + 8 + 1 = 25 <= 32
    pa = make_table([gemm_row(kind="pa", M=4096, N=40, K=4096, G=16)])
    assert evaluate(a, pa, StepBits(4, 8, 16)).compute_cycles.iloc[0] > 0


def test_bad_tables_are_errors_not_zero():
    a = load_arch("loom")
    with pytest.raises(ValueError):
        evaluate(a, make_table([gemm_row(M=0)]), StepBits(8, 8, 8))
    v = empty_row()
    v.update(name="x", op="copy", unit="vector", elems=0, passes=1)
    with pytest.raises(ValueError):
        evaluate(a, make_table([v]), StepBits(8, 8, 8))
    bad = make_table([gemm_row()])
    bad.loc[0, "unit"] = "npu"
    with pytest.raises(ValueError):
        evaluate(a, bad, StepBits(8, 8, 8))


def test_empty_table():
    out = evaluate(load_arch("stripes"), make_table([]), StepBits(8, 8, 8))
    assert len(out) == 0 and list(out.columns) == list(OUTPUT_COLUMNS)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ARCHS), st.lists(st.tuples(st.integers(1, 3000), st.integers(1, 1500),
                                                  st.integers(1, 3000), st.integers(1, 4),
                                                  st.sampled_from(["wa", "aa", "pa"])), min_size=1, max_size=8),
       st.integers(2, 8), st.integers(4, 8))
def test_util_in_unit_interval(name, shapes, act, weight):
    ops = make_table([gemm_row(f"g{i}", M, N, K, G, kind) for i, (M, N, K, G, kind) in enumerate(shapes)])
    out = evaluate(load_arch(name), ops, StepBits(weight, act, act))
    assert ((out.util > 0) & (out.util <= 1 + 1e-12)).all()
    assert (out.cycles >= out.compute_cycles).all() and (out.cycles >= out.mem_cycles).all()


def test_blocks_use_real_conv_rows():
    # SD-like conv 3x3, 320 -> 320 on 64x64: M = 4096, N = 320, K = 2880, input 4096 x 320 values.
    # int8-systolic: 1 MiB usable ifmap, psums allow 512 KiB / (32 * 4 B) = 4096 rows.
    a = load_arch("int8-systolic")
    one = np.array([1])
    # real rows (320 values each): tb = floor(1 MiB / 320) = 3276 -> blocks 3276 + 820;
    # 90 row folds x 10 col folds, fold(t) = 32 + 62 + t
    c = gemm_compute_cycles(a, 4096 * one, 320 * one, 2880 * one, one, 8 * one, 8 * one,
                            x_elems=4096 * 320 * one)
    assert c.tolist() == [900 * ((94 + 3276) + (94 + 820))]
    # im2col rows (2880 values): tb = floor(1 MiB / 2880) = 364 -> 11 blocks of 364 + one of 92
    c = gemm_compute_cycles(a, 4096 * one, 320 * one, 2880 * one, one, 8 * one, 8 * one)
    assert c.tolist() == [900 * (11 * (94 + 364) + (94 + 92))]
