"""The mapper: its closed forms against the tile-by-tile reference, never worse than the fixed
schedules, and monotone in buffers, bandwidth and bits (hypothesis)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import MappingSpec, MemorySpec, load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.cycle_model import bit_factors
from earlyq_sim.simulator.cost.mapper import ORDERS, tiled_candidates
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.simulator.cost.cycle_model import FOLD_OVERLAPS
from earlyq_sim.simulator.cost.reference_sim import simulate_gemm, simulate_tiled

NAMES = ("int8-systolic", "stripes", "bitfusion", "loom")


def _arch(data, name=None, objective="latency"):
    a = load_arch(name or data.draw(st.sampled_from(NAMES)))
    kib = lambda: data.draw(st.sampled_from([0.05, 0.25, 1.0, 4.0, 64.0]))  # noqa: E731
    return dataclasses.replace(
        a, array=dataclasses.replace(a.array, rows=data.draw(st.integers(1, 5)), cols=data.draw(st.integers(1, 5)),
                                     dataflow=data.draw(st.sampled_from(["ws", "os", "is"])),
                                     fold_overlap=data.draw(st.sampled_from(sorted(FOLD_OVERLAPS)))),
        buffers=dataclasses.replace(a.buffers, ifmap_kib=kib(), filter_kib=kib(), ofmap_kib=kib(),
                                    double_buffered=data.draw(st.booleans())),
        dram_bytes_per_cycle=data.draw(st.sampled_from([0.5, 4.0, 32.0])),
        accumulator=dataclasses.replace(a.accumulator, overflow="saturate"),
        mapping=MappingSpec("search", objective), memory=MemorySpec(data.draw(st.sampled_from(["tiles", "ideal"]))))


def _gemm(data):
    M, N, K = (data.draw(st.integers(1, 48)) for _ in range(3))
    G = data.draw(st.integers(1, 2))
    x_el = data.draw(st.one_of(st.none(), st.integers(1, M * K)))
    kind = data.draw(st.sampled_from(["wa", "aa", "pa"]))
    bits = StepBits(*(data.draw(st.integers(2, 12)) for _ in range(3)))
    return M, N, K, G, x_el, kind, bits


def _row(M, N, K, G, x_el, kind):
    r = empty_row()
    r.update(name="g", op="mm", unit="gemm", operand_kind=kind, G=G, M=M, N=N, K=K, macs=G * M * N * K,
             in_elems=0 if x_el is None else x_el * G)
    return r


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_tiled_closed_forms_match_the_tile_walk(data):
    """Any tiled candidate (fitting or not), not only the chosen one: compute cycles exactly, DRAM
    bytes to rounding, against stepping the loop nest tile by tile."""
    arch = _arch(data)
    M, N, K, G, x_el, kind, bits = _gemm(data)
    x, y = bits.operand_bits(kind)
    f = bit_factors(arch.pe, np.array([x]), np.array([y]), np.array([kind != "wa"]))
    share = (M * K if x_el is None else x_el) / (M * K)
    dram, cyc, sm = tiled_candidates(arch, {d: np.array([v]) for d, v in zip("MNK", (M, N, K))}, np.array([share]),
                                   np.array([float(x)]), np.array([float(y)]), np.array([float(bits.act)]), f)
    # no DRAM byte goes uncharged: every candidate's latency is at least its DRAM time (a whole-GEMM
    # tile once charged only its first fold's bytes: 4,584 cycles for 137,600 bytes at 8 B/cycle)
    assert (cyc >= dram / arch.dram_bytes_per_cycle * (1 - 1e-12)).all()
    for _ in range(3):
        o, r, c, t = (data.draw(st.integers(0, s - 1)) for s in dram.shape[1:])
        Mt, Nt, Kt = (int(sm[k][0, 0, r, c, t]) for k in ("Mt", "Nt", "Kt"))
        ref = simulate_tiled(arch, M, N, K, x, y, bits.act, ORDERS[o], Mt, Nt, Kt, G=1, swappable=kind != "wa",
                             x_elems=x_el)
        assert ref.compute_cycles == sm["compute"][0, 0, r, c, t]
        assert ref.dram_bytes == pytest.approx(dram[0, o, r, c, t], rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_chosen_mapping_matches_reference_and_beats_fixed_schedules(data):
    arch, (M, N, K, G, x_el, kind, bits), table = _case(data)
    out = evaluate(arch, table, bits).iloc[0]
    x, y = bits.operand_bits(kind)
    if out.map_cand >= 0:
        ref = simulate_tiled(arch, M, N, K, x, y, bits.act, ORDERS[int(out.map_order)], int(out.tile_m),
                             int(out.tile_n), int(out.tile_k), G=G, swappable=kind != "wa", x_elems=x_el)
    else:
        fixed = arch.with_fixed_schedule(out.map_cand == -2)
        ref = simulate_gemm(fixed, M, N, K, x, y, bits.act, G=G, swappable=kind != "wa", x_elems=x_el)
    assert ref.compute_cycles == out.compute_cycles
    assert ref.dram_bytes == pytest.approx(out.dram_bytes, rel=1e-9)
    assert out.dram_bytes >= out.compulsory_dram_bytes * (1 - 1e-12)
    assert out.cycles >= out.dram_bytes / arch.dram_bytes_per_cycle * (1 - 1e-12)
    for blocking in (False, True):  # SCALE-Sim's one block, today's temporal blocking
        fixed = dataclasses.replace(arch, mapping=MappingSpec("fixed", arch.mapping.objective),
                                    buffers=dataclasses.replace(arch.buffers, temporal_blocking=blocking))
        assert _objective(arch, out) <= _objective(arch, evaluate(fixed, table, bits).iloc[0]) * (1 + 1e-12)


def _objective(arch, r) -> float:
    """The value the arch's mapping objective minimises, for one costed op row."""
    return {"latency": r.cycles, "energy": r.energy_pj, "edp": r.cycles * r.energy_pj}[arch.mapping.objective]


def _case(data):
    """A random arch (random objective) and GEMM, with its one-row op table."""
    arch = _arch(data, objective=data.draw(st.sampled_from(["latency", "energy", "edp"])))
    gemm = _gemm(data)
    return arch, gemm, make_table([_row(*gemm[:6])])


def _metric(arch, table, bits):
    r = evaluate(arch, table, bits).iloc[0]
    return _objective(arch, r), r


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_objective_never_worse_with_more_buffer_bandwidth_or_fewer_bits(data):
    arch, (M, N, K, G, x_el, kind, bits), table = _case(data)
    base, r = _metric(arch, table, bits)
    which = data.draw(st.sampled_from(["ifmap_kib", "filter_kib", "ofmap_kib", "bw", "act", "weight", "prob"]))
    if which.endswith("kib"):
        bigger = dataclasses.replace(arch, buffers=dataclasses.replace(
            arch.buffers, **{which: getattr(arch.buffers, which) * data.draw(st.sampled_from([2, 16]))}))
        after, _ = _metric(bigger, table, bits)
    elif which == "bw":
        after, _ = _metric(dataclasses.replace(arch, dram_bytes_per_cycle=arch.dram_bytes_per_cycle * 4), table, bits)
    else:
        v = getattr(bits, which)
        assume(v > 2)
        after, _ = _metric(arch, table, dataclasses.replace(bits, **{which: v - data.draw(st.integers(1, v - 2))}))
    assert after <= base * (1 + 1e-12)


def test_more_ofmap_never_hurts_a_wide_streamed_operand():
    """Found by the property above: with a 10-bit streamed operand, a bigger ofmap grew the fixed
    blocked schedule's blocks (sized at 8 bits) past the filter buffer, so W was refetched per
    column fold and latency rose 36,966 -> 39,276 cycles. The search's candidate sizes blocks at
    the stored width."""
    a = load_arch("int8-systolic")
    a = dataclasses.replace(a, array=dataclasses.replace(a.array, rows=1, cols=1, dataflow="is"),
                            buffers=dataclasses.replace(a.buffers, ifmap_kib=0.05, filter_kib=1.0, ofmap_kib=0.05),
                            dram_bytes_per_cycle=0.5, accumulator=dataclasses.replace(a.accumulator, overflow="saturate"),
                            mapping=MappingSpec("search", "latency"), memory=MemorySpec("tiles"))
    table, bits = make_table([_row(33, 13, 35, 1, None, "pa")]), StepBits(2, 10, 2)
    small = evaluate(a, table, bits).iloc[0].cycles
    big = evaluate(dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, ofmap_kib=0.1)), table, bits).iloc[0]
    assert big.cycles <= small


def test_search_never_worse_than_the_fixed_blocked_schedule_with_a_wide_stream():
    """Found by the property above (CI): with a 9-bit streamed operand the fixed blocked schedule
    sized its blocks at 8 bits (N blocks of 10) while the search's copy sized them at 9 bits
    (blocks of 9), so `mapper: fixed` beat the search, 1,009 against 1,029 cycles. Both now size
    blocks alike (``mapping.stream_value_bytes``)."""
    a = load_arch("int8-systolic")
    a = dataclasses.replace(a, array=dataclasses.replace(a.array, rows=1, cols=1, dataflow="is"),
                            buffers=dataclasses.replace(a.buffers, ifmap_kib=0.05, filter_kib=0.05, ofmap_kib=0.05,
                                                        double_buffered=False),
                            dram_bytes_per_cycle=0.5, accumulator=dataclasses.replace(a.accumulator, overflow="saturate"),
                            mapping=MappingSpec("search", "latency"), memory=MemorySpec("tiles"))
    table, bits = make_table([_row(1, 28, 5, 1, None, "aa")]), StepBits(2, 9, 2)
    searched = evaluate(a, table, bits).iloc[0]
    fixed = evaluate(a.with_fixed_schedule(True), table, bits).iloc[0]
    assert searched.cycles <= fixed.cycles
