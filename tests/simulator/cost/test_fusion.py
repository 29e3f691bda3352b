"""Fusion of vector ops into the producing GEMM's epilogue (arch flag fusion.vector_epilogue)."""

import dataclasses

import numpy as np
import pytest
import yaml

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import ARCH_DIR, FusionSpec, load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.fusion import costing_ops, fusable_producers
from earlyq_sim.simulator.cost.graph import Trace, build_graph
from earlyq_sim.simulator.cost.optable import empty_row, make_table

BITS = StepBits(8, 4, 4)


def _trace(edges, outputs=()):
    """GEMM 0 (64x32 @ 32x16) -> activation 1; a second GEMM 2 -> norm 3 and -> add 4."""
    rows = []
    for name, M, N, K in (("fc0", 64, 16, 32), (None, 0, 0, 0), ("fc2", 64, 16, 32)):
        r = empty_row()
        if name:
            r.update(name=name, op="linear", unit="gemm", operand_kind="wa", G=1, M=M, N=N, K=K, macs=M * N * K,
                     in_elems=M * K, w_elems=K * N, out_elems=M * N)
        else:
            r.update(name="act1", op="activation", unit="vector", elems=1024, passes=1, in_elems=1024, out_elems=1024)
        rows.append(r)
    for name, op, ine in (("norm3", "norm", 1024), ("add4", "elementwise", 2048)):
        r = empty_row()
        r.update(name=name, op=op, unit="vector", elems=1024, passes=2, in_elems=ine, out_elems=1024)
        rows.append(r)
    ops = make_table(rows)
    return Trace("toy", 0, {}, ops, build_graph(ops, edges, {}, list(outputs)))


def _arch(on: bool):
    a = load_arch("stripes")
    return dataclasses.replace(a, fusion=FusionSpec(on))


def test_only_single_consumer_gemms_fuse():
    t = _trace([(0, 1), (2, 3), (2, 4)])
    assert fusable_producers(t).tolist() == [-1, 0, -1, -1, -1]  # GEMM 2 feeds two ops: no fusion
    t = _trace([(0, 1), (2, 3)], outputs=[2])
    assert fusable_producers(t).tolist() == [-1, 0, -1, -1, -1]  # GEMM 2 is a model output
    t = _trace([(0, 1), (2, 4)])
    assert fusable_producers(t).tolist() == [-1, 0, -1, -1, 2]  # the residual add joins GEMM 2


def test_fused_pair_saves_the_tensor_both_ways():
    t = _trace([(0, 1), (2, 4)])
    ops = costing_ops(t)
    off, on = evaluate(_arch(False), ops, BITS), evaluate(_arch(True), ops, BITS)
    out_bytes = 64 * 16 * BITS.act / 8
    for gemm, vec in ((0, 1), (2, 4)):
        assert off.dram_bytes[gemm] - on.dram_bytes[gemm] == pytest.approx(out_bytes)
        assert off.dram_bytes[vec] - on.dram_bytes[vec] == pytest.approx(out_bytes)
        assert on.cycles[gemm] <= off.cycles[gemm] and on.cycles[vec] <= off.cycles[vec]
        assert on.compute_cycles[vec] == off.compute_cycles[vec]  # the vector unit still does the work
    assert on.dram_bytes[3] == off.dram_bytes[3]  # nothing feeds the norm here
    assert (on.dram_bytes >= on.compulsory_dram_bytes * (1 - 1e-12)).all()
    # off by default, and without the column nothing changes
    assert np.array_equal(evaluate(load_arch("stripes"), ops, BITS).dram_bytes, off.dram_bytes)
    assert np.array_equal(evaluate(_arch(True), t.ops, BITS).dram_bytes, off.dram_bytes)


def test_fusion_on_a_traced_unet(isolated_cache):
    from earlyq_sim.simulator.cost.tracer import trace_model
    t = trace_model("ddpm-cifar10")
    ops = costing_ops(t)
    fused = ops["fuse_into"].to_numpy()
    assert (fused >= 0).sum() > 20
    off, on = evaluate(_arch(False), ops, BITS), evaluate(_arch(True), ops, BITS)
    expect = 2 * ops["out_elems"].to_numpy()[fused[fused >= 0]].sum() * BITS.act / 8
    assert off.dram_bytes.sum() - on.dram_bytes.sum() == pytest.approx(expect)
    assert on.cycles.sum() <= off.cycles.sum() and on.energy_pj.sum() < off.energy_pj.sum()


def test_fusion_flag_in_yaml(tmp_path):
    data = yaml.safe_load((ARCH_DIR / "stripes.yaml").read_text())
    data["fusion"] = {"vector_epilogue": True}
    p = tmp_path / "a.yaml"
    p.write_text(yaml.safe_dump(data))
    assert load_arch(p).fusion.vector_epilogue and not load_arch("stripes").fusion.vector_epilogue
    data["fusion"] = {"vector_epilogue": True, "chains": 2}
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"fusion\.chains: unknown field; allowed fields here: vector_epilogue"):
        load_arch(p)
