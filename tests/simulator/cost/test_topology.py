"""SCALE-Sim topology CSVs as workloads: the export's own files read back, costed, and bad files."""

import numpy as np
import pandas as pd
import pytest

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.exports.scalesim import export_scalesim
from earlyq_sim.simulator.cost.topology import read_topology


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import os

    from earlyq_sim.simulator.cost.tracer import trace_model
    d = tmp_path_factory.mktemp("topo")
    old = os.environ.get("EARLYQ_CACHE_DIR")
    os.environ["EARLYQ_CACHE_DIR"] = str(d / "cache")
    try:
        trace = trace_model("ddpm-cifar10")
    finally:
        os.environ.pop("EARLYQ_CACHE_DIR") if old is None else os.environ.__setitem__("EARLYQ_CACHE_DIR", old)
    return trace, export_scalesim(trace, "int8-systolic", d / "out")


def test_both_formats_read_back_with_the_traced_macs(exported):
    trace, ex = exported
    g = trace.ops[trace.ops["unit"] == "gemm"]
    for path in (ex.topology_gemm, ex.topology_conv):
        t = read_topology(path)
        assert (t.ops["unit"] == "gemm").all() and (t.ops["operand_kind"] == "wa").all()
        assert int(t.ops["macs"].sum()) == int(g["macs"].sum())  # every GEMM instance is one row
    conv = read_topology(ex.topology_conv).ops
    # a 3x3 conv row: padded 34x34 ifmap, 128 channels -> M = 32*32, K = 9*128, real input 34*34*128
    row = conv[conv["name"] == "down_blocks.0.resnets.0.conv1"].iloc[0]
    assert (row.M, row.K, row.N, row.in_elems) == (1024, 1152, 128, 34 * 34 * 128)


def test_gemm_rows_cost_like_the_traced_ops(exported):
    """A GEMM-form row costs exactly what the traced op of the same shape and input costs."""
    trace, ex = exported
    t = read_topology(ex.topology_gemm).ops
    a, bits = load_arch("stripes"), StepBits(8, 4, 4)
    lin = trace.ops[(trace.ops["op"] == "linear") & (trace.ops["G"] == 1)].iloc[:3]
    mine = evaluate(a, t[t["name"].isin(lin["name"])], bits).reset_index(drop=True)
    theirs = evaluate(a, lin, bits).reset_index(drop=True)
    np.testing.assert_allclose(mine[["cycles", "dram_bytes", "energy_pj"]], theirs[["cycles", "dram_bytes", "energy_pj"]])


def test_cli_runs_a_topology_and_writes_the_mapping(exported, run_cli, tmp_path):
    _, ex = exported
    code, out, err = run_cli(["run", "--arch", "stripes", "--model", str(ex.topology_conv), "--schedule", "W8A4",
                              "--out", str(tmp_path / "r")])
    assert code == 0, err
    assert "1 steps" in out
    pl = pd.read_csv(tmp_path / "r" / "per_layer.csv")
    for col in ("name", "compute_cycles", "latency_cycles", "dram_bytes", "compulsory_dram_bytes", "mapping"):
        assert col in pl.columns
    assert (pl["dram_bytes"] >= pl["compulsory_dram_bytes"] * (1 - 1e-12)).all()
    # shapes, traffic, utilisation and the energy split, per UNet forward, say so in the file
    assert (pl["values_per"] == "one UNet forward").all()
    assert (pl["macs"] == pl["G"] * pl["M"] * pl["N"] * pl["K"]).all()
    parts = pl[[f"energy_{p}_uj" for p in ("compute", "sram", "dram", "leak")]].sum(axis=1)
    np.testing.assert_allclose(parts, pl["energy_uj"], rtol=1e-9)
    assert ((pl["util"] > 0) & (pl["util"] <= 1)).all() and (pl["sram_bytes"] >= pl["dram_bytes"]).all()


@pytest.mark.parametrize("text,match", [
    ("", r"empty"),
    ("Layer,M,N\nfc,1,2\n", r"row 1: header .* allowed 'Layer name, IFMAP Height"),
    ("Layer,M,N,K,\nfc,1,2\n", r"row 2: 3 fields; allowed 4"),
    ("Layer,M,N,K,\nfc,1,x,3,\n", r"row 2: N: 'x' is not an integer"),
    ("Layer,M,N,K,\nfc,1,0,3,\n", r"row 2: N: 0 is out of range; allowed 1\.\."),
    ("Layer,M,N,K,\nfc,1,2,3,\nfc,1,2,3,\n", r"row 3: Layer: 'fc' repeats"),
    ("Layer,M,N,K,\n", r"no layer rows"),
    ("Layer name,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,Num Filter,Strides,\n"
     "c,2,2,3,3,4,8,1,\n", r"row 2: filter 3x3 is larger than the ifmap 2x2"),
])
def test_bad_topologies_are_one_line_errors(tmp_path, text, match):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(UserError, match=match) as e:
        read_topology(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(UserError, match="topology file not found"):
        read_topology(tmp_path / "none.csv")
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="not UTF-8"):
        read_topology(p)
