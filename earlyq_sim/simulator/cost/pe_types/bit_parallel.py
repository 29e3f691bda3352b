"""``bit_parallel``: a ``parallel_bits`` x ``parallel_bits`` multiplier per PE (TPU-like INT8).

Fewer bits give no speedup. Wider operands are split into ``ceil(b / parallel_bits)`` chunks and
every chunk pair is one full pass over the GEMM (partial products shifted and added in the
accumulator), so ``passes = ceil(x/pb) * ceil(y/pb)``.
"""

from __future__ import annotations

import numpy as np

from earlyq_sim.simulator.cost.mapping import ceil_div
from earlyq_sim.simulator.cost.pe_types.base import LANES, PARALLEL_BITS, PEType, register_pe_type, step_chunks

@register_pe_type
class BitParallel(PEType):
    name = "bit_parallel"
    fields = (PARALLEL_BITS, LANES)

    def factors(self, pe, x, y, swappable):
        one = np.ones_like(x)
        cx, cy = ceil_div(x, pe.parallel_bits), ceil_div(y, pe.parallel_bits)
        return one, one * pe.lanes, cx, cy, cx * cy

    def reference_behaviour(self, pe, x, y, swappable):
        return 1, pe.lanes, len(step_chunks(x, pe.parallel_bits)), len(step_chunks(y, pe.parallel_bits))
