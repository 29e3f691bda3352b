"""``bit_serial_act`` (Stripes, Judd et al. MICRO 2016): the streamed activation is fed
``bits_per_cycle`` bits per cycle, the other operand bit-parallel (up to ``parallel_bits``; wider
ones take chunk passes). A MAC takes ``ceil(a / bits_per_cycle)`` cycles; ``lanes`` streamed
vectors share each PE's stationary value.

For aa/pa ops (both operands activations, ``swappable``) the PE holds both operands in
registers, so the operand with fewer bits is the one shifted out serially.
"""

from __future__ import annotations

import numpy as np

from earlyq_sim.simulator.cost.mapping import ceil_div
from earlyq_sim.simulator.cost.pe_types.base import (BITS_PER_CYCLE, LANES, PARALLEL_BITS, PEType, register_pe_type,
                                                     step_chunks, step_serial_cycles)


@register_pe_type
class BitSerialAct(PEType):
    name = "bit_serial_act"
    fields = (PARALLEL_BITS, BITS_PER_CYCLE, LANES)

    def factors(self, pe, x, y, swappable):
        swap = swappable & (y < x)  # the stationary operand is narrower: feed it serially instead
        serial = np.where(swap, y, x)
        par_chunks = ceil_div(np.where(swap, x, y), pe.parallel_bits)
        cx, cy = np.where(swap, par_chunks, 1), np.where(swap, 1, par_chunks)
        slot = ceil_div(serial, pe.bits_per_cycle)
        return slot, np.ones_like(x) * pe.lanes, cx, cy, slot * cx * cy

    def reference_behaviour(self, pe, x, y, swappable):
        serial_is_y = swappable and y < x
        serial, parallel = (y, x) if serial_is_y else (x, y)
        nchunks = len(step_chunks(parallel, pe.parallel_bits))
        cyc = step_serial_cycles((serial, pe.bits_per_cycle))
        return (cyc, pe.lanes, nchunks, 1) if serial_is_y else (cyc, pe.lanes, 1, nchunks)
