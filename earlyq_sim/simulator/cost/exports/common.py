"""The GEMM layers of a traced workload, in the shape the exporters need.

Both exporters (SCALE-Sim, ZigZag) read the op table's GEMM rows (``unit == 'gemm'``) through
:func:`export_layers`, which checks the conv geometry against the GEMM dims so a broken trace is
caught here rather than written out as a wrong file. Units: element counts (values, not bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.optable import GEMM_OPS

_INT_COLS = ("G", "M", "N", "K", "batch", "C_in", "C_out", "H_in", "W_in", "R", "S", "stride", "pad", "groups")


@dataclass(frozen=True)
class ExportLayer:
    """One GEMM op of the op table: ``G`` GEMMs ``(M x K) @ (K x N)`` plus conv geometry."""

    index: int  # row position in the op table
    name: str
    op: str  # conv | linear | matmul | attn_qk | attn_pv
    operand_kind: str  # wa | aa | pa
    G: int
    M: int
    N: int
    K: int
    batch: int = 1
    C_in: int = 0
    C_out: int = 0
    H_in: int = 0  # unpadded input height
    W_in: int = 0
    R: int = 0  # kernel height
    S: int = 0  # kernel width
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @property
    def is_conv(self) -> bool:
        return self.op == "conv" and self.R > 0

    @property
    def H_pad(self) -> int:
        return self.H_in + 2 * self.pad

    @property
    def W_pad(self) -> int:
        return self.W_in + 2 * self.pad

    @property
    def H_out(self) -> int:
        return (self.H_pad - self.R) // self.stride + 1

    @property
    def W_out(self) -> int:
        return (self.W_pad - self.S) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.G * self.M * self.N * self.K


def gemm_table(trace_or_ops) -> pd.DataFrame:
    """The GEMM rows of a ``Trace`` (its ``.ops``) or of an op table, in op-table order."""
    ops = getattr(trace_or_ops, "ops", trace_or_ops)
    if not isinstance(ops, pd.DataFrame):
        raise TypeError(f"expected a Trace or an op table DataFrame, got {type(trace_or_ops).__name__}")
    missing = [c for c in ("name", "op", "unit", "operand_kind") + _INT_COLS if c not in ops.columns]
    if missing:
        raise ValueError(f"op table lacks columns {missing} (see simulator/cost/optable.py)")
    g = ops[ops["unit"] == "gemm"]
    if g.empty:
        raise UserError("export: the workload has no GEMM ops (conv/linear/matmul/attention); nothing to export")
    bad = sorted(set(g["op"]) - set(GEMM_OPS))
    if bad:
        raise ValueError(f"GEMM ops with unknown categories {bad}; allowed {GEMM_OPS}")
    if (g[["G", "M", "N", "K"]].to_numpy() <= 0).any():
        raise ValueError("GEMM ops need G, M, N, K > 0 (a GEMM is never exported as empty)")
    return g


def export_layers(trace_or_ops) -> list[ExportLayer]:
    """One :class:`ExportLayer` per GEMM op; conv rows are checked against ``G, M, N, K``."""
    g = gemm_table(trace_or_ops)
    ops = getattr(trace_or_ops, "ops", trace_or_ops)
    positions = np.flatnonzero((ops["unit"] == "gemm").to_numpy())
    out = []
    for pos, row in zip(positions, g.itertuples(index=False)):
        kw = {c: int(getattr(row, c)) for c in _INT_COLS}
        kw["batch"] = max(kw["batch"], 1)
        kw["stride"] = max(kw["stride"], 1)
        kw["groups"] = max(kw["groups"], 1)
        layer = ExportLayer(index=int(pos), name=str(row.name), op=str(row.op),
                            operand_kind=str(row.operand_kind), **kw)
        if layer.is_conv:
            _check_conv(layer)
        out.append(layer)
    return out


def _check_conv(L: ExportLayer) -> None:
    """Conv geometry must reproduce the GEMM dims of the op-table contract."""
    want = (L.groups, L.batch * L.H_out * L.W_out, L.C_out // L.groups, L.C_in // L.groups * L.R * L.S)
    have = (L.G, L.M, L.N, L.K)
    if want != have or L.C_in % L.groups or L.C_out % L.groups:
        raise ValueError(f"conv op {L.name!r}: geometry gives (G, M, N, K) = {want} but the op table "
                         f"says {have}; the trace breaks the op-table contract")
