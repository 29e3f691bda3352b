"""Exports to SCALE-Sim v3 and ZigZag: files read back independently of the writers.

Topologies are parsed with the csv module and the conv arithmetic SCALE-Sim applies
(``ofmap = (H - R) / stride + 1``, no padding); configs with configparser against the keys
scalesim 3.0's ``read_conf_file`` reads; ZigZag workloads against a schema written from
zigzag-dse's docs and, when zigzag-dse is installed, against its own validator and factory.
"""

from __future__ import annotations

import configparser
import csv
import re
from dataclasses import replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.exports import export_scalesim, export_zigzag
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.schedule import PrecisionSchedule


def conv_row(name, b, cin, cout, h, w, r, s, stride, pad, groups=1):
    ho, wo = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - s) // stride + 1
    row = empty_row()
    row.update(name=name, module=name, aten="aten.convolution.default", op="conv", unit="gemm",
               operand_kind="wa", G=groups, M=b * ho * wo, N=cout // groups, K=cin // groups * r * s,
               batch=b, C_in=cin, C_out=cout, H_in=h, W_in=w, R=r, S=s, stride=stride, pad=pad, groups=groups)
    row["macs"] = row["G"] * row["M"] * row["N"] * row["K"]
    return row


def gemm_row(name, op, kind, G, M, N, K):
    row = empty_row()
    row.update(name=name, module=name, aten="aten.mm.default", op=op, unit="gemm", operand_kind=kind,
               G=G, M=M, N=N, K=K, macs=G * M * N * K, batch=1)
    return row


def vector_row(name):
    row = empty_row()
    row.update(name=name, module=name, aten="aten.add.Tensor", op="elementwise", unit="vector",
               elems=100, passes=1)
    return row


@pytest.fixture
def ops():
    return make_table([
        conv_row("conv_a", 1, 16, 8, 32, 32, 3, 3, 1, 1),
        vector_row("add0"),
        conv_row("down", 1, 8, 8, 33, 33, 3, 3, 2, 0),
        conv_row("grouped", 2, 8, 12, 6, 5, 3, 1, 1, 1, groups=2),
        gemm_row("DPproj,x", "linear", "wa", 1, 7, 20, 24),
        gemm_row("qk", "attn_qk", "aa", 4, 16, 16, 8),
        gemm_row("pv", "attn_pv", "pa", 4, 16, 8, 16),
    ])


def read_topology(path):
    """SCALE-Sim drops the last field of every line; the first line is a header."""
    with open(path, newline="") as fh:
        lines = list(csv.reader(fh))
    for line in lines:
        assert line[-1] == "", "every line must end with a comma"
    return lines[0][:-1], [line[:-1] for line in lines[1:]]


def read_manifest(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_conv_topology_reads_back_hand_computed_rows(ops, tmp_path):
    e = export_scalesim(ops, "int8-systolic", tmp_path)
    header, rows = read_topology(e.topology_conv)
    assert len(header) == 8
    assert all(len(r) == 8 for r in rows)  # name + 7 numbers: SCALE-Sim repeats the stride itself
    # padded ifmap 34x34, 3x3, 16 channels, 8 filters, stride 1
    assert rows[0] == ["conv_a", "34", "34", "3", "3", "16", "8", "1"]
    assert rows[1] == ["down", "33", "33", "3", "3", "8", "8", "2"]
    # grouped conv, batch 2, 2 groups: 4 rows of 4 channels -> 6 filters on the padded 8x7 ifmap
    assert [r[0] for r in rows[2:6]] == ["grouped#b0g0", "grouped#b0g1", "grouped#b1g0", "grouped#b1g1"]
    assert all(r[1:] == ["8", "7", "3", "1", "4", "6", "1"] for r in rows[2:6])
    # linear as a 1x1 conv on an M x 1 ifmap; no 'DP' (SCALE-Sim's depthwise marker), no comma
    assert rows[6] == ["Dpproj_x", "7", "1", "1", "1", "24", "20", "1"]
    assert [r[0] for r in rows[7:11]] == [f"qk#g{i}" for i in range(4)]
    assert len(rows) == 1 + 1 + 4 + 1 + 4 + 4


def _conv_macs(r):
    h, w, fh, fw, c, n, s = (int(x) for x in r[1:])
    return ((h - fh) // s + 1) * ((w - fw) // s + 1) * fh * fw * c * n


def test_topologies_sum_back_to_each_ops_macs(ops, tmp_path):
    e = export_scalesim(ops, "int8-systolic", tmp_path)
    gemm = ops[ops["unit"] == "gemm"]
    for topo, manifest, macs_of in ((e.topology_conv, e.manifest_conv, _conv_macs),
                                    (e.topology_gemm, e.manifest_gemm,
                                     lambda r: int(r[1]) * int(r[2]) * int(r[3]))):
        _, rows = read_topology(topo)
        man = read_manifest(manifest)
        assert [m["topo_name"] for m in man] == [r[0] for r in rows]
        per_op: dict[int, int] = {}
        for r, m in zip(rows, man):
            per_op[int(m["op_index"])] = per_op.get(int(m["op_index"]), 0) + macs_of(r)
        assert per_op == {int(i): int(v) for i, v in zip(gemm.index, gemm["macs"])}


def test_gemm_topology_rows(ops, tmp_path):
    e = export_scalesim(ops, "int8-systolic", tmp_path)
    header, rows = read_topology(e.topology_gemm)
    assert header == ["Layer", "M", "N", "K"]
    assert rows[0] == ["conv_a", "1024", "8", "144"]
    assert rows[1] == ["down", "256", "8", "72"]
    # batch stays inside M (2 images x 6 x 7 outputs: 3x1 kernel, pad 1), one row per group
    assert rows[2:4] == [["grouped#g0", "84", "6", "12"], ["grouped#g1", "84", "6", "12"]]
    assert rows[-1] == ["pv#g3", "16", "8", "16"]


def test_layouts_have_one_row_per_layer(ops, tmp_path):
    e = export_scalesim(ops, "int8-systolic", tmp_path)
    for topo, layout in ((e.topology_conv, e.layout_conv), (e.topology_gemm, e.layout_gemm)):
        _, trows = read_topology(topo)
        header, lrows = read_topology(layout)
        assert len(header) == 21
        assert [r[0] for r in lrows] == [r[0] for r in trows]
        assert all(len(r) == 21 and all(x.isdigit() for x in r[1:]) for r in lrows)


#: every (section, key) scalesim 3.0's scale_config.read_conf_file reads
SCALESIM_KEYS = [
    ("general", "run_name"), ("run_presets", "InterfaceBandwidth"), ("run_presets", "UseRamulatorTrace"),
    ("architecture_presets", "ArrayHeight"), ("architecture_presets", "ArrayWidth"),
    ("architecture_presets", "ifmapsramszkB"), ("architecture_presets", "filtersramszkB"),
    ("architecture_presets", "ofmapsramszkB"), ("architecture_presets", "IfmapOffset"),
    ("architecture_presets", "FilterOffset"), ("architecture_presets", "OfmapOffset"),
    ("architecture_presets", "Dataflow"), ("architecture_presets", "ReadRequestBuffer"),
    ("architecture_presets", "WriteRequestBuffer"), ("architecture_presets", "Bandwidth"),
    ("layout", "IfmapCustomLayout"), ("layout", "FilterCustomLayout"), ("layout", "IfmapSRAMBankBandwidth"),
    ("layout", "IfmapSRAMBankNum"), ("layout", "IfmapSRAMBankPort"), ("layout", "FilterSRAMBankBandwidth"),
    ("layout", "FilterSRAMBankNum"), ("layout", "FilterSRAMBankPort"), ("sparsity", "SparsitySupport"),
]


@pytest.mark.parametrize("df", ["ws", "os", "is"])
def test_config_holds_the_arch_numbers(ops, tmp_path, df):
    base = load_arch("int8-systolic")
    arch = replace(base, array=replace(base.array, dataflow=df))
    e = export_scalesim(ops, arch, tmp_path)
    cp = configparser.ConfigParser()
    assert cp.read(e.config) == [str(e.config)]
    for sec, key in SCALESIM_KEYS:
        assert cp.has_option(sec, key), (sec, key)
    assert not cp.has_section("network_presets")
    a = cp["architecture_presets"]
    assert (a.getint("ArrayHeight"), a.getint("ArrayWidth")) == (32, 32)
    b = base.buffers
    assert (a.getint("IfmapSramSzkB"), a.getint("FilterSramSzkB"), a.getint("OfmapSramSzkB")) == \
        (b.ifmap_kib, b.filter_kib, b.ofmap_kib)
    assert a["Dataflow"] == df
    assert cp["run_presets"]["InterfaceBandwidth"] == "USER"
    # the spec's DRAM B/cycle; scalesim 3.0 takes ifmap/filter DRAM bandwidth from [layout]
    bw = base.dram_bytes_per_cycle
    assert a.getint("Bandwidth") == bw
    assert cp["layout"].getint("IfmapSRAMBankBandwidth") == bw == cp["layout"].getint("FilterSRAMBankBandwidth")
    assert not cp["layout"].getboolean("IfmapCustomLayout")
    # address ranges of the operands do not overlap
    assert a.getint("FilterOffset") > 34 * 34 * 16 and a.getint("OfmapOffset") > a.getint("FilterOffset") + 3 * 3 * 16 * 8


def test_non_integer_bandwidth_is_a_user_error(ops, tmp_path):
    arch = replace(load_arch("int8-systolic"), dram_bytes_per_cycle=12.5)
    with pytest.raises(UserError, match="bytes_per_cycle"):
        export_scalesim(ops, arch, tmp_path)


def test_no_gemm_ops_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no GEMM"):
        export_scalesim(make_table([vector_row("a")]), "int8-systolic", tmp_path)


def test_broken_conv_geometry_is_refused(ops, tmp_path):
    bad = ops.copy()
    bad.loc[0, "M"] = 1000
    bad.loc[0, "macs"] = int(bad.loc[0, "G"] * 1000 * bad.loc[0, "N"] * bad.loc[0, "K"])
    with pytest.raises(ValueError, match="conv_a"):
        export_scalesim(bad, "int8-systolic", tmp_path)


@settings(max_examples=25, deadline=None)
@given(cin=st.integers(1, 40), cout=st.integers(1, 40), h=st.integers(1, 20), w=st.integers(1, 20),
       r=st.integers(1, 5), s=st.integers(1, 5), stride=st.integers(1, 3), pad=st.integers(0, 2),
       batch=st.integers(1, 3))
def test_random_convs_parse_back_to_the_same_shape(tmp_path_factory, cin, cout, h, w, r, s, stride, pad, batch):
    if h + 2 * pad < r or w + 2 * pad < s:
        return
    ops = make_table([conv_row("c", batch, cin, cout, h, w, r, s, stride, pad)])
    e = export_scalesim(ops, "int8-systolic", tmp_path_factory.mktemp("x"))
    _, rows = read_topology(e.topology_conv)
    assert len(rows) == batch
    for row in rows:
        H, W, R, S, C, N, sd = (int(x) for x in row[1:])
        assert (H, W, R, S, C, N, sd) == (h + 2 * pad, w + 2 * pad, r, s, cin, cout, stride)
    assert sum(_conv_macs(row) for row in rows) == int(ops["macs"].iloc[0])


# --- ZigZag -------------------------------------------------------------------------------------
# schema from zigzag-dse's docs / workload_validator (3.x): required keys, equation shape
EQUATION_RE = re.compile(r"^O(\[\w+\])+\s*\+?\s*=\s*\w(\[\w+\])+\s*[*+]\s*\w(\[(?:\w+)?\])+\s*$")
RELATION_RE = re.compile(r"^(\w+)\s*=\s*(?:(\w+)\s*\*\s*)?(\w+)\s*\+\s*(?:(\w+)\s*\*\s*)?(\w+)$")
REQUIRED = {"id": int, "operator_type": str, "equation": str, "loop_dims": list, "loop_sizes": list,
            "operand_precision": dict}


def check_schema(layers):
    assert isinstance(layers, list) and layers
    for i, L in enumerate(layers):
        for key, typ in REQUIRED.items():
            assert isinstance(L[key], typ), (i, key)
        assert L["id"] == i
        assert L["operator_type"] in ("Conv", "Gemm")
        assert EQUATION_RE.match(L["equation"]), L["equation"]
        assert all(RELATION_RE.match(x) for x in L.get("dimension_relations", []))
        assert len(L["loop_dims"]) == len(L["loop_sizes"])
        assert all(isinstance(v, int) and v >= 1 for v in L["loop_sizes"])
        # every loop dim appears in the equation, lower-cased
        eq_dims = set(re.findall(r"\[(\w+)\]", L["equation"]))
        assert {d.lower() for d in L["loop_dims"]} <= eq_dims
        prec = L["operand_precision"]
        assert {"O", "O_final"} <= set(prec) and set(prec) <= {"I", "W", "O", "O_final"}
        if "padding" in L:
            assert len(L["padding"]) == len(L["pr_loop_dims"]) == len(L["pr_loop_sizes"])


def zz_macs(L):
    sizes = dict(zip(L["loop_dims"], L["loop_sizes"]))
    out = 1
    for v in sizes.values():
        out *= v
    return out


def test_zigzag_one_workload_per_stage_with_stage_bits(ops, tmp_path):
    sched = PrecisionSchedule.parse("a4@0-0.3,a6@0.3-0.6,a8@0.6-1,w8,p16", 10)
    z = export_zigzag(ops, tmp_path, schedule=sched, arch="int8-systolic")
    assert len(z.workloads) == 3 and z.stage_labels == ("W8A4P16", "W8A6P16", "W8A8P16")
    gemm = ops[ops["unit"] == "gemm"]
    for path, act in zip(z.workloads, (4, 6, 8)):
        layers = yaml.safe_load(path.read_text())
        check_schema(layers)
        assert [L["name"] for L in layers] == list(gemm["name"])
        assert [zz_macs(L) for L in layers] == list(gemm["macs"])
        by = {L["name"]: L["operand_precision"] for L in layers}
        assert by["conv_a"] == {"W": 8, "I": act, "O": 32, "O_final": act}
        assert by["qk"] == {"W": act, "I": act, "O": 32, "O_final": act}
        assert by["pv"] == {"W": act, "I": 16, "O": 32, "O_final": act}
    with open(z.manifest, newline="") as fh:
        man = list(csv.DictReader(fh))
    assert [int(m["steps"]) for m in man] == [3, 3, 4]


def test_zigzag_conv_padding_and_strides(ops, tmp_path):
    z = export_zigzag(ops, tmp_path)
    layers = {L["name"]: L for L in yaml.safe_load(z.workloads[0].read_text())}
    down = layers["down"]
    assert down["dimension_relations"] == ["ix=2*ox+1*fx", "iy=2*oy+1*fy"]
    assert dict(zip(down["loop_dims"], down["loop_sizes"]))["OX"] == 16
    assert down["pr_loop_sizes"] == [33, 33] and down["padding"] == [[0, 0], [0, 0]]
    g = dict(zip(layers["grouped"]["loop_dims"], layers["grouped"]["loop_sizes"]))
    assert g == {"B": 2, "K": 6, "G": 2, "OX": 7, "OY": 6, "C": 4, "FX": 1, "FY": 3}
    assert layers["qk"]["equation"] == "O[h][d][k]+=I[h][d][c]*W[h][c][k]"


def test_zigzag_own_validator_and_factory_accept_the_export(ops, tmp_path):
    pytest.importorskip("zigzag")
    from zigzag.parser.mapping_validator import MappingValidator
    from zigzag.parser.workload_factory import WorkloadFactory
    from zigzag.parser.workload_validator import WorkloadValidator

    z = export_zigzag(ops, tmp_path, schedule=PrecisionSchedule.parse("W8A4", 5))
    v = WorkloadValidator(yaml.safe_load(z.workloads[0].read_text()))
    assert v.validate()
    mv = MappingValidator(yaml.safe_load(z.mapping.read_text()))
    assert mv.validate()
    wl = WorkloadFactory(v.normalized_data, mv.normalized_data).create()
    gemm = ops[ops["unit"] == "gemm"]
    assert [n.total_mac_count for n in wl.node_list] == list(gemm["macs"])
    from zigzag.parser.accelerator_factory import AcceleratorFactory
    from zigzag.parser.accelerator_validator import AcceleratorValidator

    av = AcceleratorValidator(yaml.safe_load(z.hardware.read_text()))
    assert av.validate()
    acc = AcceleratorFactory(av.normalized_data).create()
    assert acc.operational_array.total_unit_count == 32 * 32


def test_real_trace_exports_keep_every_mac(tmp_path):
    from earlyq_sim.simulator.cost.tracer import trace_model

    t = trace_model("ddpm-cifar10")
    e = export_scalesim(t, "int8-systolic", tmp_path / "s")
    _, rows = read_topology(e.topology_conv)
    assert sum(_conv_macs(r) for r in rows) == t.macs()
    z = export_zigzag(t, tmp_path / "z")
    layers = yaml.safe_load(z.workloads[0].read_text())
    check_schema(layers)
    assert sum(zz_macs(L) for L in layers) == t.macs()


def test_config_takes_hand_set_buffer_sizes_and_bandwidth(ops, tmp_path):
    base = load_arch("int8-systolic")
    arch = replace(base, buffers=replace(base.buffers, ifmap_kib=64.0, filter_kib=32.0, ofmap_kib=16.0),
                   dram_bytes_per_cycle=8.0, array=replace(base.array, rows=16, cols=8))
    cp = configparser.ConfigParser()
    cp.read(export_scalesim(ops, arch, tmp_path).config)
    a = cp["architecture_presets"]
    assert [a.getint(k) for k in ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB",
                                  "OfmapSramSzkB", "Bandwidth")] == [16, 8, 64, 32, 16, 8]


# --- ZigZag hardware, operand sources, and a real ZigZag run -------------------------------------
def test_zigzag_hardware_holds_the_arch_numbers(ops, tmp_path):
    base = load_arch("int8-systolic")
    arch = replace(base, buffers=replace(base.buffers, ifmap_kib=64.0, filter_kib=32.0, ofmap_kib=16.0),
                   dram_bytes_per_cycle=12.5, array=replace(base.array, rows=16, cols=8))
    z = export_zigzag(ops, tmp_path, schedule=PrecisionSchedule.parse("a4@0-0.5,a8@0.5-1,w8,p16", 4), arch=arch)
    hw = yaml.safe_load(z.hardware.read_text())
    oa = hw["operational_array"]
    assert oa["sizes"] == [8, 16] and oa["dimensions"] == ["D1", "D2"]
    assert oa["unit_energy"] == pytest.approx(0.2 + 0.1)  # one 8x8 multiply + one int32 add (pJ)
    mem = hw["memories"]
    assert [mem[m]["size"] for m in ("ifmap", "filter", "ofmap")] == [64 * 8192, 32 * 8192, 16 * 8192]
    assert mem["reg_O"]["size"] == 32 and mem["reg_W"]["size"] == 8  # accumulator; widest weight
    assert mem["ifmap"]["ports"][0]["bandwidth_max"] == 16 * 16  # 16 rows x the widest streamed bits (p16)
    dram = mem["dram"]
    assert dram["ports"][0]["bandwidth_max"] == 100 and set(dram["operands"]) == {"I1", "I2", "O"}
    for name, pj_per_byte in (("ifmap", 2.5), ("ofmap", 2.5), ("dram", 160.0)):
        m = mem[name]
        bw = max(p["bandwidth_max"] for p in m["ports"])
        assert m["r_cost"] == m["w_cost"] == pytest.approx(pj_per_byte * bw / 8)  # per access of bw bits
        assert min(p["bandwidth_min"] for p in m["ports"]) == 8  # accesses counted per byte


def test_zigzag_hardware_refuses_fractional_bits_per_cycle(ops, tmp_path):
    arch = replace(load_arch("int8-systolic"), dram_bytes_per_cycle=12.3)
    with pytest.raises(UserError, match="bytes_per_cycle"):
        export_zigzag(ops, tmp_path, arch=arch)
    assert not list(tmp_path.iterdir())  # refused before any file is written


def test_zigzag_operand_sources_follow_the_trace_graph(tmp_path):
    import networkx as nx

    from earlyq_sim.simulator.cost.graph import Trace

    ops = make_table([gemm_row("a", "linear", "wa", 1, 16, 32, 8), vector_row("act"),
                      gemm_row("b", "linear", "wa", 1, 16, 8, 32), gemm_row("c", "linear", "wa", 1, 16, 8, 32),
                      gemm_row("qk", "attn_qk", "aa", 1, 16, 16, 8), gemm_row("pv", "attn_pv", "pa", 1, 16, 8, 16)])
    g = nx.DiGraph()
    g.add_nodes_from(range(len(ops)))
    g.add_edges_from([(0, 1), (1, 2), (0, 3), (2, 4), (3, 4), (3, 5)])  # b reads a's output through act
    t = Trace("toy", 0, {}, ops, g)
    z = export_zigzag(t, tmp_path)
    src = {L["name"]: L["operand_source"] for L in yaml.safe_load(z.workloads[0].read_text())}
    assert src["a"] == {"W": 0}  # weight constant, input external (the model's input)
    assert src["b"] == {"W": 1}  # produced by a vector op ZigZag does not see: external
    assert src["c"] == {"W": 2, "I": 0}
    assert src["qk"] == {"I": 1, "W": 2}  # both operands from exported layers, in trace order
    assert src["pv"] == {"W": 2}  # V (16 x 8 values, the stationary operand) from c; P external


def test_zigzag_runs_the_export_with_finite_latency_and_energy(tmp_path):
    pytest.importorskip("zigzag")
    import logging
    import math

    from zigzag.api import get_hardware_performance_zigzag

    ops = make_table([conv_row("conv_in", 1, 3, 8, 6, 6, 3, 3, 1, 1), vector_row("act"),
                      gemm_row("lin", "linear", "wa", 1, 4, 16, 24), gemm_row("qk", "attn_qk", "aa", 2, 8, 8, 4)])
    z = export_zigzag(ops, tmp_path, arch="int8-systolic")
    logging.disable(logging.WARNING)
    try:  # partial sums at 32 bits: the output register must hold them (no NoValidLoopOrderingFound)
        energy, cycles, cmes = get_hardware_performance_zigzag(
            str(z.workloads[0]), str(z.hardware), str(z.mapping), opt="latency",
            dump_folder=str(tmp_path / "zz"), loma_show_progress_bar=False)
    finally:
        logging.disable(logging.NOTSET)
    per_layer = cmes[0][1]
    assert len(per_layer) == 3 and math.isfinite(energy) and math.isfinite(cycles) and energy > 0 and cycles > 0
    macs = {"conv_in": 6 * 6 * 8 * 27, "lin": 4 * 16 * 24, "qk": 2 * 8 * 8 * 4}
    for cme, _ in per_layer:
        assert cme.layer.total_mac_count == macs[cme.layer.name]
        assert cme.mac_energy == pytest.approx(0.3 * macs[cme.layer.name])  # our pJ per 8x8 MAC
    conv = next(c for c, _ in per_layer if c.layer.name == "conv_in")
    # C = 3 input channels: the kernel is unrolled on rows too (27 of 32 rows, as im2col on our array),
    # 8 output channels on columns, so only the 6 x 6 output pixels are left in time
    assert conv.ideal_temporal_cycle == 36
