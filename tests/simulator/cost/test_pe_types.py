"""The PE-type registry: a new PE type is one registry entry plus one arch YAML.

A toy type (bit-serial *weights*, bit-parallel activations) is registered here and then used
end to end: YAML parsing and validation, the analytical cost model against the step-by-step
reference simulator, and sweep overrides of its own field.
"""

import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import StepBits
from earlyq_sim.simulator.cost.arch import ARCH_DIR, load_arch
from earlyq_sim.simulator.cost.cost_model import evaluate
from earlyq_sim.simulator.cost.mapping import ceil_div
from earlyq_sim.simulator.cost.optable import empty_row, make_table
from earlyq_sim.simulator.cost.pe_types import PE_TYPES, PEField, PEType, pe_type_names, register_pe_type
from earlyq_sim.simulator.cost.pe_types.base import step_chunks, step_serial_cycles
from earlyq_sim.simulator.cost.reference_sim import simulate_gemm
from earlyq_sim.workloads.sweeps.spec import apply_overrides, override_paths


class SerialWeight(PEType):
    """Weights fed ``weight_bits_per_cycle`` bits per cycle, activations bit-parallel."""

    name = "toy_serial_weight"
    fields = (PEField("parallel_bits", int, 1, 32), PEField("weight_bits_per_cycle", int, 1, 16),
              PEField("lanes", int, 1, 4096, default=1))

    def factors(self, pe, x, y, swappable):
        slot = ceil_div(y, pe.weight_bits_per_cycle)
        cx = ceil_div(x, pe.parallel_bits)
        return slot, np.ones_like(x) * pe.lanes, cx, np.ones_like(x), slot * cx

    def reference_behaviour(self, pe, x, y, swappable):
        return (step_serial_cycles((y, pe.weight_bits_per_cycle)), pe.lanes,
                len(step_chunks(x, pe.parallel_bits)), 1)


@pytest.fixture
def toy_type():
    register_pe_type(SerialWeight)
    try:
        yield SerialWeight.name
    finally:
        PE_TYPES.pop(SerialWeight.name, None)


def _toy_yaml(tmp_path, **pe):
    data = yaml.safe_load((ARCH_DIR / "stripes.yaml").read_text())
    data["name"] = "toy"
    data["pe"] = {"type": "toy_serial_weight", "parallel_bits": 8, "weight_bits_per_cycle": 2, "lanes": 4, **pe}
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_shipped_types_registered_in_order():
    assert pe_type_names()[:4] == ("bit_parallel", "bit_serial_act", "bitfusion", "bit_serial_both")


def test_unregistered_type_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"pe\.type.*toy_serial_weight.*allowed bit_parallel \| bit_serial_act"):
        load_arch(_toy_yaml(tmp_path))


def test_new_type_parses_and_validates(toy_type, tmp_path):
    a = load_arch(_toy_yaml(tmp_path))
    assert a.pe.type == toy_type and a.pe.weight_bits_per_cycle == 2 and a.pe.lanes == 4
    assert toy_type in pe_type_names()
    with pytest.raises(UserError, match=r"pe\.weight_bits_per_cycle: 99 is out of range; allowed integer in 1\.\.16"):
        load_arch(_toy_yaml(tmp_path, weight_bits_per_cycle=99))
    with pytest.raises(UserError, match=r"pe\.bits_per_cycle: unknown field; allowed fields here: .*weight_bits_per_cycle"):
        load_arch(_toy_yaml(tmp_path, bits_per_cycle=1))
    p = _toy_yaml(tmp_path)
    data = yaml.safe_load(p.read_text())
    del data["pe"]["parallel_bits"]
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=r"pe\.parallel_bits: missing required field"):
        load_arch(p)


def test_new_type_halves_streaming_with_half_the_weight_bits(toy_type, tmp_path):
    a = load_arch(_toy_yaml(tmp_path)).with_fixed_schedule(True)  # one schedule for both bit widths
    r = empty_row()
    r.update(name="g", op="mm", unit="gemm", operand_kind="wa", G=1, M=4096, N=32, K=32, macs=4096 * 32 * 32)
    w8 = evaluate(a, make_table([r]), StepBits(8, 8, 8)).iloc[0].compute_cycles
    w4 = evaluate(a, make_table([r]), StepBits(4, 8, 8)).iloc[0].compute_cycles
    streaming = lambda slot: slot * 4096 // 4  # noqa: E731  (T / lanes slots)
    assert w8 - w4 == streaming(4) - streaming(2)  # fill/drain and preload do not scale


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_new_type_cost_model_matches_reference_sim(data):
    register_pe_type(SerialWeight)
    try:
        a = load_arch("stripes").with_fixed_schedule(True)
        a = dataclasses.replace(
            a, pe=type(a.pe)("toy_serial_weight", (("parallel_bits", data.draw(st.sampled_from([4, 8]))),
                                                   ("weight_bits_per_cycle", data.draw(st.integers(1, 3))),
                                                   ("lanes", data.draw(st.integers(1, 4))))),
            array=dataclasses.replace(a.array, rows=data.draw(st.integers(1, 5)), cols=data.draw(st.integers(1, 5)),
                                      dataflow=data.draw(st.sampled_from(["ws", "os", "is"]))),
            accumulator=dataclasses.replace(a.accumulator, overflow="saturate"))
        M, N, K = (data.draw(st.integers(1, 40)) for _ in range(3))
        bits = StepBits(data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)), 8)
        r = empty_row()
        r.update(name="g", op="mm", unit="gemm", operand_kind="wa", G=1, M=M, N=N, K=K, macs=M * N * K)
        ana = evaluate(a, make_table([r]), bits).iloc[0]
        x, y = bits.operand_bits("wa")
        ref = simulate_gemm(a, M, N, K, x, y, bits.act)
        assert ref.compute_cycles == ana.compute_cycles
        assert ref.dram_bytes == pytest.approx(ana.dram_bytes, rel=1e-9)
    finally:
        PE_TYPES.pop(SerialWeight.name, None)


def test_new_type_fields_are_sweep_overrides(toy_type, tmp_path):
    a = load_arch(_toy_yaml(tmp_path))
    assert "pe.weight_bits_per_cycle" in override_paths()
    b = apply_overrides(a, [("pe.weight_bits_per_cycle", 4)], "sweep.yaml")
    assert b.pe.weight_bits_per_cycle == 4 and b.pe.parallel_bits == 8
    with pytest.raises(UserError, match=r"sweep\.yaml: overrides\.pe\.bricks: .*allowed pe fields for it: "
                                        r"parallel_bits, weight_bits_per_cycle, lanes"):
        apply_overrides(a, [("pe.bricks", 4)], "sweep.yaml")
