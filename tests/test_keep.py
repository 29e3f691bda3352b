"""Per-layer hold (schedule ``keep``): both lanes see the same held layers at the same bits."""

import numpy as np
import pytest

from conftest import tiny_unet
from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.schedule_cost import keep_mask, schedule_cost, step_cost
import torch

from earlyq_sim.simulator.cost.tracer import trace_module
from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate, sample
from earlyq_sim.schedule import PrecisionSchedule, StepBits

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_label_roundtrip_and_alias():
    s = PrecisionSchedule.parse("a4@0-0.4,a8@0.4-1,k8:io|time_embedding.*", 20)
    assert s.keep == ("conv_in", "conv_out", "time_embedding.*") and s.keep_bits == 8
    assert s.label == "w8,a4@0-0.4,a8@0.4-1,k8:conv_in|conv_out|time_embedding.*"
    assert PrecisionSchedule.parse(s.label, 20) == s
    assert PrecisionSchedule.from_dict(s.to_dict()) == s
    assert s.with_steps(10).keep == s.keep
    assert s.layer_bits(StepBits(8, 4, 4), "conv_out") == StepBits(8, 8, 8)
    assert s.layer_bits(StepBits(8, 4, 4), "time_embedding.linear_1") == StepBits(8, 8, 8)
    assert s.layer_bits(StepBits(8, 4, 4), "down_blocks.0.resnets.0.conv1") == StepBits(8, 4, 4)
    only = PrecisionSchedule.parse("a4,k8:*|!*conv_shortcut|!conv_in", 20)
    assert not only.keeps("conv_in") and not only.keeps("up_blocks.0.resnets.1.conv_shortcut")
    assert only.keeps("conv_out") and only.keeps("mid_block.attentions.0.to_q")
    u = PrecisionSchedule.parse("W4A8,k8:io", 20)
    assert u.weight_bits == 4 and u.is_uniform and u.label == "W4A8,k8:conv_in|conv_out"
    assert PrecisionSchedule.parse("a4,p16,k6:conv_in", 5).layer_bits(StepBits(8, 4, 16), "conv_in") == \
        StepBits(6, 6, 16)


@pytest.mark.parametrize("spec", ["a4,k8:", "a4,k0:conv_in", "a4,k99:conv_in", "a4,k8:conv_in||conv_out"])
def test_bad_keep_is_one_line_error(spec):
    with pytest.raises(UserError) as e:
        PrecisionSchedule.parse(spec, 10)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def tiny_ops():
    return trace_module(tiny_unet(), sample=torch.randn(1, 1, 16, 16), timestep=torch.tensor([3])).ops


def test_cost_lane_holds_matching_ops(tiny_ops):
    arch = load_arch("stripes")
    w8a8 = schedule_cost(arch, tiny_ops, PrecisionSchedule.parse("W8A8", 10))
    all_held = schedule_cost(arch, tiny_ops, PrecisionSchedule.parse("a4,k8:*", 10))
    assert all_held.total["cycles"] == pytest.approx(w8a8.total["cycles"], rel=1e-12)
    a4 = PrecisionSchedule.parse("a4", 10)
    io = a4.with_keep(("io",))
    mask = keep_mask(tiny_ops, io)
    assert set(tiny_ops["module"][mask]) == {"conv_in", "conv_out"}
    free = step_cost(arch, tiny_ops, a4.step_bits(0)).per_op
    held = step_cost(arch, tiny_ops, a4.step_bits(0), io).per_op
    full8 = step_cost(arch, tiny_ops, StepBits(8, 8, 8)).per_op
    assert list(held.index) == list(tiny_ops.index)
    np.testing.assert_array_equal(held["cycles"][~mask], free["cycles"][~mask])
    np.testing.assert_array_equal(held["cycles"][mask], full8["cycles"][mask])
    assert (held["cycles"][mask] > free["cycles"][mask]).any()     # stripes: 8 bits cost more than 4


def test_quality_lane_holds_matching_layers():
    sch = PrecisionSchedule.parse("a4@0-0.5,a8@0.5-1,k8:conv_in|*attentions*", 4)
    qm = quantize_and_calibrate(tiny_unet(), sch, n_calib=4, calib_steps=4, batch_size=4, progress=False)
    slots = qm.slots()
    held = [n for n in slots if n.startswith("conv_in.") or ".attentions." in n]
    assert held and all(slots[n].held is not None for n in held)
    # calibration fitted held activations at 8 bits in every interval, free ones at the interval's bits
    for sid in (0, 1):
        assert (sid, 8) in slots["conv_in.act"].ranges and (sid, 4) not in slots["conv_in.act"].ranges
    assert (0, 4) in slots["conv_out.act"].ranges and (0, 8) not in slots["conv_out.act"].ranges
    qm.set_step_bits(sch.step_bits(0), 0)
    assert slots["conv_in.act"].bits() == 8 and slots["conv_out.act"].bits() == 4
    assert qm.gemms["conv_in"].weight_bits() == 8
    imgs = sample(qm, sch, 2, 0, batch_size=2, progress=False)
    assert imgs.shape == (2, 16, 16, 1)
    # the sampler installs the schedule's holds: without keep the held ranges (8 bits) are not used
    plain = PrecisionSchedule.parse("a4@0-0.5,a8@0.5-1", 4)
    with pytest.raises(UserError, match="no range"):
        sample(qm, plain, 2, 0, batch_size=2, progress=False)
