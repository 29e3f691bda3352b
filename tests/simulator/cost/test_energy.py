"""Energy: hand-computed parts, parts add up, scaling with bits per PE type."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from earlyq_sim.simulator.cost.arch import load_arch as _load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.schedule import StepBits

def load_arch(name):
    """Shipped arch under its fixed schedule (temporal blocks, ideal overlap): these tests pin the
    fold and traffic formulas of the fixed schedules, which the mapper keeps as candidates
    (tests/simulator/cost/test_mapper.py covers the search)."""
    return _load_arch(name).with_fixed_schedule(True)


ARCHS = ("int8-systolic", "stripes", "bitfusion", "loom")
PARTS = ["energy_compute_pj", "energy_sram_pj", "energy_dram_pj", "energy_leak_pj"]


def gemm_row(name="g", M=100, N=64, K=96, G=1, kind="wa"):
    r = empty_row()
    r.update(name=name, op="linear", unit="gemm", operand_kind=kind, G=G, M=M, N=N, K=K, macs=G * M * N * K)
    return r


def test_int8_energy_hand():
    out = evaluate(load_arch("int8-systolic"), make_table([gemm_row()]), StepBits(8, 8, 8)).iloc[0]
    macs = 100 * 64 * 96
    assert out.energy_compute_pj == pytest.approx(macs * (0.2 + 0.1))  # int8 mult + int32 add
    # SRAM bytes from test_cycle_model.test_gemm_traffic_hand: 134144 array-side + 22144 DRAM
    assert out.energy_sram_pj == pytest.approx((134144 + 22144) * 2.5)
    assert out.energy_dram_pj == pytest.approx(22144 * 160)
    # 50 mW for 1164 cycles at 1 GHz = 50e-3 W * 1.164e-6 s = 5.82e-8 J = 58200 pJ
    assert out.energy_leak_pj == pytest.approx(58200)
    assert out.energy_pj == pytest.approx(out[PARTS].sum())


def test_compute_energy_scales_with_bits_per_pe_type():
    ops = make_table([gemm_row()])
    macs = 100 * 64 * 96

    def comp(name, w, a):
        return evaluate(load_arch(name), ops, StepBits(w, a, a)).energy_compute_pj.iloc[0]
    # int8: no saving below 8 bits; 16-bit activations: 2 chunk passes
    assert comp("int8-systolic", 8, 4) == comp("int8-systolic", 8, 8)
    assert comp("int8-systolic", 8, 16) == pytest.approx(2 * comp("int8-systolic", 8, 8))
    # stripes: a serial cycles of 0.05 pJ + one 0.1 pJ accumulate per MAC
    assert comp("stripes", 8, 4) == pytest.approx(macs * (4 * 0.05 + 0.1))
    assert comp("stripes", 8, 8) == pytest.approx(macs * (8 * 0.05 + 0.1))
    # loom: x * y bit steps of 0.0075 pJ + accumulate
    assert comp("loom", 4, 6) == pytest.approx(macs * (24 * 0.0075 + 0.1))
    # bitfusion: bricks per MAC (4x4 -> 4 bricks; 6 rounds to 8 -> 8 bricks) of 0.0125 pJ
    assert comp("bitfusion", 4, 4) == pytest.approx(macs * (4 * 0.0125 + 0.1))
    assert comp("bitfusion", 4, 6) == pytest.approx(macs * (8 * 0.0125 + 0.1))


def test_vector_energy():
    v = empty_row()
    v.update(name="n", op="norm", unit="vector", elems=640, passes=2, in_elems=640, out_elems=640)
    out = evaluate(load_arch("stripes"), make_table([v]), StepBits(8, 4, 4)).iloc[0]
    assert out.energy_compute_pj == pytest.approx(640 * 2 * 1.5)
    assert out.dram_bytes == 640 * 0.5 * 2  # in and out at 4 bits
    assert out.energy_dram_pj == pytest.approx(out.dram_bytes * 160)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(ARCHS), st.lists(st.tuples(st.integers(1, 4096), st.integers(1, 1280),
                                                  st.integers(1, 4096), st.integers(1, 4),
                                                  st.sampled_from(["wa", "aa", "pa"])), min_size=1, max_size=6),
       st.sampled_from([4, 8]), st.booleans())
def test_parts_add_up_and_energy_monotone_in_bits(name, shapes, w, with_vec):
    rows = [gemm_row(f"g{i}", M, N, K, G, kind) for i, (M, N, K, G, kind) in enumerate(shapes)]
    if with_vec:
        v = empty_row()
        v.update(name="sm", op="softmax", unit="vector", elems=shapes[0][0] * 77, passes=3)
        rows.append(v)
    ops = make_table(rows)
    arch = load_arch(name)
    prev = None
    for a in range(2, 9):
        out = evaluate(arch, ops, StepBits(w, a, a))
        assert np.allclose(out[PARTS].sum(axis=1), out.energy_pj, rtol=1e-12)
        assert (out[PARTS] >= 0).all().all()
        if prev is not None:  # every part is non-decreasing in activation bits
            for p in PARTS + ["dram_bytes", "sram_bytes", "cycles"]:
                assert (out[p].to_numpy() >= prev[p].to_numpy() - 1e-9).all(), p
        prev = out
