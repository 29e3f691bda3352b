"""Area model, technology scaling and normalisations (iso-throughput, iso-area)."""

import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost import technology as tech
from earlyq_sim.simulator.cost.arch import list_archs, load_arch, parse_arch
from earlyq_sim.simulator.cost.area import arch_area, efficiency, peak_core_tops_per_w, pe_area_um2
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.normalise import normalisation_names, normalise
from earlyq_sim.simulator.cost.optable import empty_row, make_table

ARCHS = list_archs()


def _yaml(name):
    return yaml.safe_load(open(load_arch(name).source))


# --- technology ---------------------------------------------------------------------------------
def test_scaling_tables_match_the_paper_where_it_can_be_checked():
    # the paper's corrected example (erratum, Sec. 4.2.1): 65 nm at 1.3 V -> energy factor 2.604
    assert tech._energy(65, 1.3) == pytest.approx(2.604, abs=5e-4)
    assert all(tech.AREA[i][i] == 1 for i in range(len(tech.NODES_NM)))
    assert tech.area_factor(45, 7) == pytest.approx(0.059)
    assert tech.area_factor(45, 45) == 1.0 and tech.energy_factor(45, 0.9, 45, 0.9) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.floats(7, 130), st.floats(7, 130))
def test_area_and_energy_shrink_with_the_node(a, b):
    big, small = max(a, b), min(a, b)
    assert tech.area_factor(big, small) <= 1.0 + 1e-12
    assert tech.energy_factor(big, 0.9, small, 0.9) <= 1.0 + 1e-12
    assert tech.area_factor(big, small) * tech.area_factor(small, big) == pytest.approx(1.0, rel=1e-12)


def test_every_row_of_the_area_table_agrees_with_the_45nm_profile():
    for i, a in enumerate(tech.NODES_NM):
        for j, b in enumerate(tech.NODES_NM):
            assert tech.area_factor(a, b) == pytest.approx(tech.AREA[i][j], rel=0.1), (a, b)


def test_nodes_outside_the_table_are_refused_with_the_field():
    d = _yaml("int8-systolic")
    d["technology"]["node_nm"] = 5
    with pytest.raises(UserError, match=r"x\.yaml: technology\.node_nm: 5\.0 is out of range; allowed number in 7\.\.130"):
        parse_arch(d, "x.yaml")
    d["technology"]["node_nm"] = float("nan")
    with pytest.raises(UserError, match="technology.node_nm: nan is not a finite number"):
        parse_arch(d, "x.yaml")


def test_a_smaller_node_scales_on_chip_energy_and_area_but_not_dram():
    a45 = load_arch("stripes")
    d = _yaml("stripes")
    d["technology"].update(node_nm=7, vdd=0.7)
    a7 = parse_arch(d, "stripes7.yaml")
    f = tech.energy_factor(45, 0.9, 7, 0.7)
    assert a7.technology.energy_factor == pytest.approx(f) and 0 < f < 0.2
    r = empty_row()
    r.update(name="g", op="mm", unit="gemm", operand_kind="wa", G=1, M=256, N=128, K=512, macs=256 * 128 * 512)
    ops = make_table([r])
    e45, e7 = (evaluate(a, ops, StepBits(8, 4, 4)).iloc[0] for a in (a45, a7))
    for part in ("compute", "sram", "leak"):
        assert e7[f"energy_{part}_pj"] == pytest.approx(f * e45[f"energy_{part}_pj"])
    assert e7["energy_dram_pj"] == e45["energy_dram_pj"] and e7.cycles == e45.cycles
    assert arch_area(a7).total_mm2 == pytest.approx(tech.area_factor(45, 7) * arch_area(a45).total_mm2)
    assert peak_core_tops_per_w(a7) == pytest.approx(peak_core_tops_per_w(a45) / f)


# --- area ---------------------------------------------------------------------------------------
def test_shipped_pe_areas_come_from_the_bitfusion_synthesis_table():
    assert pe_area_um2(load_arch("int8-systolic")) == pytest.approx(687.6)
    assert pe_area_um2(load_arch("bitfusion")) == pytest.approx(1733.1, abs=0.1)  # 16 bricks
    # a bank-built buffer: 2 MiB = 128 banks of 16 KiB
    a = arch_area(load_arch("int8-systolic"))
    assert a.buffers_mm2["ifmap"] == pytest.approx(128 * 0.108577)
    assert a.total_mm2 == pytest.approx(a.array_mm2 + a.sram_mm2 + a.overhead_mm2)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ARCHS), st.sampled_from(["ifmap_kib", "filter_kib", "ofmap_kib"]), st.floats(0.01, 4096),
       st.floats(1.0, 8.0), st.integers(1, 64), st.integers(1, 64))
def test_area_grows_with_buffers_and_pes(name, buf, kib, grow, rows, cols):
    a = load_arch(name)
    a = dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, **{buf: kib}),
                            array=dataclasses.replace(a.array, rows=rows, cols=cols))
    base = arch_area(a).total_mm2
    bigger = dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, **{buf: kib * grow}))
    assert arch_area(bigger).total_mm2 >= base
    more = dataclasses.replace(a, array=dataclasses.replace(a.array, rows=rows + 1))
    assert arch_area(more).total_mm2 > base


def test_an_arch_without_area_is_a_clear_error_where_area_is_needed():
    d = _yaml("stripes")
    del d["area"]
    a = parse_arch(d, "my_arch.yaml")
    assert a.area is None
    with pytest.raises(UserError, match=r"^my_arch\.yaml: area: missing section"):
        arch_area(a)
    with pytest.raises(UserError, match="my_arch.yaml: area: missing section"):
        normalise(a, load_arch("int8-systolic"), "iso-area")
    assert "peak_tops_per_mm2" not in efficiency(a, 1e9, 1.0, 1.0)  # no made-up area figure
    normalise(a, load_arch("int8-systolic"), "iso-throughput")  # needs no area


def test_efficiency_keeps_nan_rather_than_a_plausible_figure():
    e = efficiency(load_arch("stripes"), 1e12, float("nan"), 0.0)
    assert np.isnan(e["achieved_tops"]) and np.isnan(e["achieved_tops_per_w"])


# --- normalisations -----------------------------------------------------------------------------
def test_registry_names():
    assert normalisation_names() == ("as-specified", "iso-throughput", "iso-area")
    with pytest.raises(UserError, match="normalise: 'iso-power' is unknown; allowed as-specified | iso-throughput"):
        normalise(load_arch("stripes"), load_arch("int8-systolic"), "iso-power")


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ARCHS), st.sampled_from(ARCHS), st.integers(4, 48), st.integers(4, 48),
       st.sampled_from([64.0, 512.0, 2048.0]))
def test_iso_area_matches_the_reference_within_one_row_or_column(name, ref_name, rows, cols, kib):
    ref = load_arch(ref_name)
    ref = dataclasses.replace(ref, array=dataclasses.replace(ref.array, rows=rows, cols=cols))
    a = load_arch(name)
    a = dataclasses.replace(a, buffers=dataclasses.replace(a.buffers, ifmap_kib=kib, filter_kib=kib, ofmap_kib=kib))
    budget = arch_area(ref).total_mm2 - arch_area(a).sram_mm2 - arch_area(a).overhead_mm2
    if budget * 1e6 < pe_area_um2(a):
        with pytest.raises(UserError, match="cannot normalise"):
            normalise(a, ref, "iso-area")
        return
    s, note = normalise(a, ref, "iso-area")
    got, want = arch_area(s).total_mm2, arch_area(ref).total_mm2
    slack = max(s.array.rows, s.array.cols) * pe_area_um2(s) * 1e-6  # one row or column of PEs
    assert abs(got - want) <= slack + 1e-9
    assert note.startswith(f"iso-area with {ref.name}")
    t, _ = normalise(a, ref, "iso-throughput")
    peak = lambda x: x.peak_macs_per_cycle_8x8 * x.clock_hz  # noqa: E731
    assert abs(peak(t) - peak(ref)) <= max(t.array.rows, t.array.cols) * peak(t) / (t.array.rows * t.array.cols)


def test_iso_area_on_the_shipped_archs_gives_fewer_pes_to_wider_pes():
    ref = load_arch("int8-systolic")
    # only the archs that share the reference's buffers (the iso-throughput family): with the same
    # SRAM the PE budget is the same, so PE count falls with PE size; a preset with its own
    # buffers (bitfusion-isca18: 112 KiB as published) has a different budget and is left out
    same = [n for n in ARCHS if load_arch(n).buffers == ref.buffers]
    assert {"int8-systolic", "stripes", "bitfusion", "loom"} <= set(same)
    pes = {n: (lambda s: s.array.rows * s.array.cols)(normalise(load_arch(n), ref, "iso-area")[0]) for n in same}
    assert pes["int8-systolic"] == 1024
    per_pe = {n: pe_area_um2(load_arch(n)) for n in same}
    order = sorted(same, key=per_pe.get)
    assert [pes[n] for n in order] == sorted(pes.values(), reverse=True)
