"""Arch specs: shipped YAMLs load, are normalised, and bad YAML gives one-line UserErrors."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import ARCH_DIR, ArchSpec, list_archs, load_arch

SHIPPED = ("int8-systolic", "stripes", "bitfusion", "loom")


def test_shipped_archs_listed_and_load():
    assert set(SHIPPED) <= set(list_archs())
    for name in SHIPPED:
        a = load_arch(name)
        assert isinstance(a, ArchSpec) and a.name == name
        assert a.clock_hz == a.clock_mhz * 1e6
        assert a.accumulator.width_bits == 32 and a.buffers.double_buffered
        assert a.buffers.temporal_blocking  # shipped default (see mapping.temporal_blocks)
        assert "Horowitz" in a.energy.source and a.normalisation


def test_specs_are_frozen():
    a = load_arch("stripes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.clock_mhz = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.pe.lanes = 2


def test_iso_throughput_normalisation_at_8x8():
    # every shipped arch has the int8 array's peak at 8x8 bits: 32 * 32 = 1024 MACs/cycle
    peaks = {n: load_arch(n).peak_macs_per_cycle_8x8 for n in SHIPPED}
    assert peaks == {n: 1024.0 for n in SHIPPED}


def test_load_by_path_and_unknown_name(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text((ARCH_DIR / "loom.yaml").read_text())
    assert load_arch(str(p)).pe.type == "bit_serial_both"
    with pytest.raises(UserError) as e:
        load_arch("tpu9000")
    msg = str(e.value)
    assert "tpu9000" in msg and all(n in msg for n in SHIPPED) and "\n" not in msg


def _write(tmp_path, edit) -> Path:
    data = yaml.safe_load((ARCH_DIR / "stripes.yaml").read_text())
    edit(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _err(p) -> str:
    with pytest.raises(UserError) as e:
        load_arch(str(p))
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    return msg


def test_missing_field(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["array"].pop("rows")))
    assert "array.rows" in msg and "missing" in msg and "integer in 1..4096" in msg


def test_missing_section(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d.pop("energy")))
    assert "energy" in msg and "missing" in msg


def test_unknown_field(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["pe"].update(bogus=3)))
    assert "pe.bogus" in msg and "unknown field" in msg and "bits_per_cycle" in msg


def test_field_of_another_pe_type_is_unknown(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["pe"].update(bricks=16)))
    assert "pe.bricks" in msg and "unknown field" in msg


def test_wrong_type(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["pe"].update(bits_per_cycle="one")))
    assert "pe.bits_per_cycle" in msg and "wrong type" in msg and "integer in 1..16" in msg
    msg = _err(_write(tmp_path, lambda d: d["buffers"].update(double_buffered="yes")))
    assert "buffers.double_buffered" in msg and "true | false" in msg
    msg = _err(_write(tmp_path, lambda d: d["buffers"].update(temporal_blocking="no")))
    assert "buffers.temporal_blocking" in msg and "true | false" in msg


def test_out_of_range(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["pe"].update(bits_per_cycle=0)))
    assert "pe.bits_per_cycle" in msg and "out of range" in msg and "1..16" in msg
    msg = _err(_write(tmp_path, lambda d: d["dram"].update(bytes_per_cycle=-1)))
    assert "dram.bytes_per_cycle" in msg and "out of range" in msg


def test_bad_choice(tmp_path):
    msg = _err(_write(tmp_path, lambda d: d["array"].update(dataflow="rs")))
    assert "array.dataflow" in msg and "ws | os | is" in msg
    msg = _err(_write(tmp_path, lambda d: d["accumulator"].update(overflow="wrap")))
    assert "accumulator.overflow" in msg and "error | saturate" in msg
    msg = _err(_write(tmp_path, lambda d: d["pe"].update(type="tpu")))
    assert "pe.type" in msg and "bitfusion" in msg


def test_bitfusion_widths_validated(tmp_path):
    data = yaml.safe_load((ARCH_DIR / "bitfusion.yaml").read_text())
    data["pe"]["fusion_widths"] = [2, 3, 8]
    p = tmp_path / "bf.yaml"
    p.write_text(yaml.safe_dump(data))
    msg = _err(p)
    assert "pe.fusion_widths" in msg and "multiples of brick_bits=2" in msg
    data["pe"]["fusion_widths"] = [2, 4, 8, 16]  # 16x16 needs 64 bricks > 16
    p.write_text(yaml.safe_dump(data))
    assert "pe.fusion_widths" in _err(p)


def test_accumulator_section_optional(tmp_path):
    p = _write(tmp_path, lambda d: d.pop("accumulator"))
    a = load_arch(str(p))
    assert a.accumulator.width_bits == 32 and a.accumulator.overflow == "error"


def test_invalid_yaml_and_non_mapping(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\narray: [1, 2\n")
    msg = _err(p)
    assert "not valid YAML" in msg
    p.write_text("- 1\n- 2\n")
    assert "expected a mapping" in _err(p)
    with pytest.raises(UserError) as e:
        load_arch(str(tmp_path / "nope.yaml"))
    assert "not found" in str(e.value)


def test_arch_to_dict_is_the_inverse_of_parse_arch():
    import dataclasses

    from earlyq_sim.simulator.cost.arch import parse_arch
    from earlyq_sim.simulator.cost.arch_dict import arch_to_dict

    for name in list_archs():
        a = load_arch(name)
        assert dataclasses.replace(parse_arch(arch_to_dict(a), a.source)) == a


def test_run_summary_records_provenance(run_cli):
    import json

    code, out, err = run_cli(["run", "--arch", "stripes", "--model", "ddpm-cifar10", "--steps", "4", "--json"])
    assert code == 0, err
    p = json.loads(out)["provenance"]
    assert p["command_line"] == "earlyq-sim run --arch stripes --model ddpm-cifar10 --steps 4 --json"
    assert p["version"] and p["date_utc"].endswith("+00:00")
    assert p["arch_spec"]["pe"]["type"] == "bit_serial_act" and p["arch_spec"]["area"]["pe_unit_um2"] == 321.4
    assert p["reference_arch_spec"]["name"] == "int8-systolic"
