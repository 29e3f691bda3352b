"""PE types: one registry entry (one module) per processing-element family.

Each entry declares (1) the YAML fields of ``pe:`` it reads, with types, ranges and defaults,
(2) its bit behaviour for the analytical cost model (vectorised over ops) and (3) the same
behaviour found by stepping one PE, for the reference simulator. Arch parsing, sweep overrides,
the cost model and the reference simulator all read this registry; adding a PE type is one
module that calls :func:`register_pe_type` plus an arch YAML that names it.

All types sit on a ``rows x cols`` systolic array; x = streamed (first) operand bits, y =
stationary (second) operand bits (``StepBits.operand_bits``).
"""

from __future__ import annotations

from earlyq_sim.simulator.cost.pe_types.base import (PE_TYPES, PEField, PEType, REQUIRED, pe_type, pe_type_names,
                                                     register_pe_type)

# the shipped types register themselves on import (order = the order names are listed in)
from earlyq_sim.simulator.cost.pe_types import bit_parallel, bit_serial_act, bitfusion, bit_serial_both  # noqa: E402,F401

__all__ = ["PE_TYPES", "PEField", "PEType", "REQUIRED", "pe_type", "pe_type_names", "register_pe_type"]
