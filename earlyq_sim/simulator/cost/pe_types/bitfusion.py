"""``bitfusion`` (Bit Fusion, Sharma et al. ISCA 2018): ``bricks`` BitBricks of ``brick_bits`` x
``brick_bits`` per PE; each operand is rounded up to the next width in ``fusion_widths`` and one
MAC uses ``(x'/brick_bits) * (y'/brick_bits)`` bricks, so a PE does ``floor(bricks / that)`` MACs
per cycle; operands wider than the largest fusion width take chunk passes at that width."""

from __future__ import annotations

import numpy as np

from earlyq_sim.simulator.cost.mapping import ceil_div
from earlyq_sim.simulator.cost.pe_types.base import PEField, PEType, register_pe_type, step_chunks


@register_pe_type
class BitFusion(PEType):
    name = "bitfusion"
    fields = (PEField("brick_bits", int, 1, 8, doc="BitBrick operand width"),
              PEField("bricks", int, 1, 4096, doc="BitBricks per fusion unit"),
              PEField("fusion_widths", list, doc="operand widths an operand is rounded up to"))

    def check(self, params, err):
        bb, widths = params["brick_bits"], params["fusion_widths"]
        if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < bb or w % bb
                             for w in widths) or sorted(set(widths)) != list(widths):
            raise err("fusion_widths", f"{widths!r} is not allowed; allowed a non-empty increasing "
                                       f"list of multiples of brick_bits={bb}")
        if (widths[-1] // bb) ** 2 > params["bricks"]:
            raise err("fusion_widths", f"largest width {widths[-1]} needs {(widths[-1] // bb) ** 2} "
                                       f"bricks; allowed widths whose square fits bricks={params['bricks']}")
        params["fusion_widths"] = tuple(widths)

    def area_units(self, pe):
        return int(pe.bricks)  # a fusion unit's area is its BitBricks with their shift-add share

    def factors(self, pe, x, y, swappable):
        widths = np.asarray(pe.fusion_widths, dtype=np.int64)
        wmax = int(widths[-1])
        cx, cy = ceil_div(x, wmax), ceil_div(y, wmax)
        rx = widths[np.searchsorted(widths, np.minimum(x, wmax))]  # round up to a fusion width
        ry = widths[np.searchsorted(widths, np.minimum(y, wmax))]
        per_mac = (rx // pe.brick_bits) * (ry // pe.brick_bits)
        return np.ones_like(x), pe.bricks // per_mac, cx, cy, per_mac * cx * cy

    def reference_behaviour(self, pe, x, y, swappable):
        top = pe.fusion_widths[-1]
        xs, ys = step_chunks(x, top), step_chunks(y, top)

        def fused(b):  # smallest supported width holding b bits
            for w in pe.fusion_widths:
                if w >= b:
                    return w
            raise AssertionError(b)
        need = 0  # bricks one MAC occupies: one per (x brick, y brick) pair
        for _ in range(fused(xs[0]) // pe.brick_bits):
            for _ in range(fused(ys[0]) // pe.brick_bits):
                need += 1
        free, macs = pe.bricks, 0
        while free >= need:  # allocate MACs to bricks within one cycle
            free -= need
            macs += 1
        return 1, macs, len(xs), len(ys)
