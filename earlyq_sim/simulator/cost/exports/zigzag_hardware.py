"""Our arch as a ZigZag (zigzag-dse 3.9) accelerator YAML: PE array, registers, buffers, DRAM.

Read by ``zigzag.parser.accelerator_validator.AcceleratorValidator`` (3.9.1). Units: sizes and
bandwidths in bits and bits per cycle, energies in pJ per access, areas in the arch's um^2 (PE)
and mm^2 (buffers); ZigZag treats area as unitless and adds nothing up across kinds.

The hierarchy, innermost first (the memory operand links of the exported mapping are
``I -> I1``, ``W -> I2``, ``O -> O``):

* ``reg_W`` (I2), one per PE (``served_dimensions: []``): one stationary weight at its widest
  exported bits. ``reg_O`` (O), one per PE: one partial sum at the accumulator width, so a
  workload whose ``O`` precision is the accumulator width always has a valid loop ordering
  (a register narrower than ``O`` makes LOMA raise ``NoValidLoopOrderingFoundException``).
  Both cost 0 pJ: our energy table has no register term (the MAC energy covers the PE).
* ``ifmap`` (I1), ``filter`` (I2), ``ofmap`` (O): the arch's three buffers at their full
  capacity in bits (ZigZag decides double buffering itself, by whether a tile fills at most
  half a level). Each has a read and a write port. Array side: one streamed value per row
  per cycle (ifmap), one row of weights per cycle (filter: a stationary block loads in
  ``rows`` cycles, our ``preload``), one partial sum per column per cycle each way (ofmap).
  DRAM side: the DRAM bandwidth.
* ``dram`` (I1, I2, O): one read/write port of ``dram.bytes_per_cycle * 8`` bits per cycle
  shared by all operands, as our model shares one DRAM bandwidth.

Energy per access: ZigZag charges ``r_cost``/``w_cost`` per access of ``bandwidth_max`` bits,
counting ``ceil(bits / bandwidth_min) * bandwidth_min / bandwidth_max`` accesses; with
``bandwidth_min = 8`` and a cost of ``pJ_per_byte * bandwidth_max / 8`` a transfer costs our
``sram_pj_per_byte`` / ``dram_pj_per_byte`` per byte (rounded up to whole bytes). SRAM and MAC
energies are scaled to the design's node like ours (``technology.energy_factor``); DRAM is not.
The MAC energy is one MAC at ``mac_bits`` (ZigZag has one energy per MAC whatever the bits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import ArchSpec

ALL_PORTS_O = ("O, fh", "O, tl", "O, fl", "O, th")


@dataclass(frozen=True)
class HardwareBits:
    """Widest operand bits the hardware must hold (from the exported workloads)."""

    i_bits: int = 8  # streamed operand (ZigZag I)
    w_bits: int = 8  # stationary operand (ZigZag W)
    mac_bits: tuple[int, int] = (8, 8)  # (x, y) bits the MAC energy is quoted at


def mac_energy_pj(arch: ArchSpec, x_bits: int = 8, y_bits: int = 8) -> float:
    """pJ of one MAC at ``x_bits`` x ``y_bits`` on ``arch``, as ``energy.gemm_compute_pj`` costs it."""
    from earlyq_sim.simulator.cost import energy as en
    from earlyq_sim.simulator.cost.cycle_model import bit_factors

    f = bit_factors(arch.pe, np.array([x_bits]), np.array([y_bits]))
    return float(en.gemm_compute_pj(arch, np.array([1]), f)[0])


def _bits_per_cycle(bytes_per_cycle: float, what: str) -> int:
    bits = bytes_per_cycle * 8.0
    if abs(bits - round(bits)) > 1e-9 or bits < 1:
        raise UserError(f"export --format zigzag: {what} = {bytes_per_cycle} bytes/cycle is not a whole number of "
                        "bits per cycle; ZigZag port bandwidths are integers (bits/cycle)")
    return int(round(bits))


def _port(name: str, kind: str, bw: int, allocation: list[str], bw_min: int = 8) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": min(bw_min, bw), "bandwidth_max": bw,
            "allocation": list(allocation)}


def _memory(size_bits: int, pj_per_byte: float, ports: list[dict], operands: list[str], served: list[str],
            area: float = 0.0) -> dict:
    """One ZigZag memory; read/write cost per access of the widest port (see module doc)."""
    bw = max(p["bandwidth_max"] for p in ports)
    cost = float(pj_per_byte) * bw / 8.0
    return {"size": int(size_bits), "r_cost": cost, "w_cost": cost, "area": float(area), "latency": 1,
            "operands": operands, "ports": ports, "served_dimensions": served}


def _buffer_area_mm2(arch: ArchSpec, which: str) -> float:
    """Area of one buffer (``area.buffer_area_mm2``); 0 when the spec has no ``area:`` section."""
    from earlyq_sim.simulator.cost.area import buffer_area_mm2

    return 0.0 if arch.area is None else float(buffer_area_mm2(arch, which))


def hardware(arch: ArchSpec, bits: HardwareBits = HardwareBits()) -> dict:
    """The ZigZag accelerator (plain dict, YAML-ready) of ``arch`` for operands up to ``bits``."""
    R, C = arch.array.rows, arch.array.cols
    acc = int(arch.accumulator.width_bits)
    ef = arch.technology.energy_factor
    sram_pj = arch.energy.sram_pj_per_byte * ef
    dram_bw = _bits_per_cycle(arch.dram_bytes_per_cycle, "dram.bytes_per_cycle")
    b = arch.buffers
    kib_bits = lambda kib: int(round(kib * 1024 * 8))  # noqa: E731
    i_rd, w_rd, o_bw = R * bits.i_bits, C * bits.w_bits, C * acc
    mems = {
        "reg_W": _memory(bits.w_bits, 0.0, [_port("r_port_1", "read", bits.w_bits, ["I2, tl"]),
                                             _port("w_port_1", "write", bits.w_bits, ["I2, fh"])], ["I2"], []),
        "reg_O": _memory(acc, 0.0, [_port("r_port_1", "read", acc, ["O, tl"]),
                                    _port("r_port_2", "read", acc, ["O, th"]),
                                    _port("w_port_1", "write", acc, ["O, fh"]),
                                    _port("w_port_2", "write", acc, ["O, fl"])], ["O"], []),
        "ifmap": _memory(kib_bits(b.ifmap_kib), sram_pj,
                         [_port("r_port_1", "read", i_rd, ["I1, tl"]), _port("w_port_1", "write", dram_bw, ["I1, fh"])],
                         ["I1"], ["D1", "D2"], _buffer_area_mm2(arch, "ifmap")),
        "filter": _memory(kib_bits(b.filter_kib), sram_pj,
                          [_port("r_port_1", "read", w_rd, ["I2, tl"]), _port("w_port_1", "write", dram_bw, ["I2, fh"])],
                          ["I2"], ["D1", "D2"], _buffer_area_mm2(arch, "filter")),
        "ofmap": _memory(kib_bits(b.ofmap_kib), sram_pj,
                         [_port("r_port_1", "read", max(o_bw, dram_bw), ["O, tl", "O, th"]),
                          _port("w_port_1", "write", max(o_bw, dram_bw), ["O, fh", "O, fl"])],
                         ["O"], ["D1", "D2"], _buffer_area_mm2(arch, "ofmap")),
        "dram": _memory(10 ** 12, arch.energy.dram_pj_per_byte,
                        [_port("rw_port_1", "read_write", dram_bw,
                               ["I1, fh", "I1, tl", "I2, fh", "I2, tl"] + list(ALL_PORTS_O))],
                        ["I1", "I2", "O"], ["D1", "D2"]),
    }
    from earlyq_sim.simulator.cost.area import pe_area_um2

    pe_area = 1.0 if arch.area is None else pe_area_um2(arch)  # ZigZag needs a number; 1 = unknown
    return {
        "name": f"earlyq_{arch.name}".replace("-", "_"),
        "memories": mems,
        "operational_array": {
            "unit_energy": mac_energy_pj(arch, *bits.mac_bits),
            "unit_area": float(pe_area),
            # D1: array columns (output channels), D2: rows (the reduction), as the mapping unrolls them
            "dimensions": ["D1", "D2"],
            "sizes": [C, R],
            # a systolic array: ZigZag adds one drain of the wavefront per layer along these dims
            "systolic_dimensions": ["D1", "D2"],
        },
    }
