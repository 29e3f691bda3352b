"""Fusion of vector ops into the epilogue of the GEMM that produces their input.

With ``fusion.vector_epilogue: true`` (arch spec; off by default), a norm, activation or
elementwise op (requantise, bias, residual add) whose input is the output of a GEMM that has no
other consumer runs on that GEMM's output tiles while they are on chip: the GEMM no longer
writes its output to DRAM and the vector op no longer reads it back. The vector op still
costs its vector-unit cycles and energy, and reads any other input (a residual) from DRAM.
A chain (GEMM -> norm -> activation) fuses its first vector op only.

``fusable_producers(trace)`` finds the pairs in the traced graph (the op table's ``fuse_into``
column: the producing GEMM's row, or -1); ``apply`` adjusts the costed ops. Both are pure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FUSABLE = ("norm", "activation", "elementwise")


def fusable_producers(trace) -> np.ndarray:
    """Per op row: the GEMM row whose epilogue it can join, or -1 (graph from the tracer)."""
    ops, g = trace.ops, trace.graph
    out = np.full(len(ops), -1, np.int64)
    unit, cat = ops["unit"].to_numpy(), ops["op"].to_numpy()
    outputs = set(g.graph.get("outputs", ())) if g is not None else set()
    for v in np.flatnonzero((unit == "vector") & np.isin(cat, FUSABLE)):
        if g is None or v not in g:
            continue
        for p in sorted(g.predecessors(int(v))):
            # the GEMM's output must go nowhere else (no other consumer, not a model output)
            if unit[p] == "gemm" and list(g.successors(p)) == [int(v)] and p not in outputs:
                out[v] = p
                break
    return out


def costing_ops(trace) -> pd.DataFrame:
    """The trace's op table with the ``fuse_into`` column the cost model reads."""
    return trace.ops.assign(fuse_into=fusable_producers(trace))


def savings(ops: pd.DataFrame, act_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(bytes the producing GEMM no longer writes, bytes the vector op no longer reads) per row."""
    n = len(ops)
    fuse = ops["fuse_into"].to_numpy() if "fuse_into" in ops.columns else np.full(n, -1)
    pos = {idx: i for i, idx in enumerate(ops.index)}  # fuse_into names a row label of the trace
    gemm_saved, vec_saved = np.zeros(n), np.zeros(n)
    out_el = ops["out_elems"].to_numpy()
    for v in np.flatnonzero(fuse >= 0):
        p = pos.get(int(fuse[v]))
        if p is None:  # the producer is not in this table (a subset was costed)
            continue
        b = out_el[p] * act_bits / 8.0
        gemm_saved[p] += b
        vec_saved[v] += b
    return gemm_saved, vec_saved
