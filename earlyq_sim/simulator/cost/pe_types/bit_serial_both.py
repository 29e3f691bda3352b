"""``bit_serial_both`` (Loom, Sharify et al. DAC 2018): both operands bit-serial; a MAC takes
``ceil(x / bits_per_cycle) * ceil(y / stationary_bits_per_cycle)`` cycles."""

from __future__ import annotations

import numpy as np

from earlyq_sim.simulator.cost.mapping import ceil_div
from earlyq_sim.simulator.cost.pe_types.base import BITS_PER_CYCLE, LANES, PEField, PEType, register_pe_type, step_serial_cycles


@register_pe_type
class BitSerialBoth(PEType):
    name = "bit_serial_both"
    fields = (BITS_PER_CYCLE, LANES,
              PEField("stationary_bits_per_cycle", int, 1, 16, doc="serial bits per cycle of the stationary operand"))

    def factors(self, pe, x, y, swappable):
        one = np.ones_like(x)
        slot = ceil_div(x, pe.bits_per_cycle) * ceil_div(y, pe.stationary_bits_per_cycle)
        return slot, one * pe.lanes, one, one, slot

    def reference_behaviour(self, pe, x, y, swappable):
        return step_serial_cycles((x, pe.bits_per_cycle), (y, pe.stationary_bits_per_cycle)), pe.lanes, 1, 1
