"""The op table: one row per costed operator of one UNet forward pass.

The tracer produces it (together with a networkx graph whose nodes are the same rows); the
cost model consumes it as whole NumPy columns. This module is the contract between them.

GEMM ops (``unit == "gemm"``) are described as ``G`` independent GEMMs of shape
``(M x K) @ (K x N)``: the first operand ``M x K`` is the streamed, activation-like operand,
the second ``K x N`` is the stationary one (the weight for ``wa`` ops). For a conv, ``M`` is
``batch * H_out * W_out``, ``N`` is ``C_out / groups``, ``K`` is ``C_in / groups * R * S`` and
``G`` is ``groups``. For attention, ``G`` is ``batch * heads``.

Vector ops (``unit == "vector"``) carry ``elems``: elements the vector unit processes, and
``passes``: how many times each element goes through the unit (e.g. softmax: max, exp-sum,
normalise). All element counts are counts of values, not bytes: bytes depend on bits, which
the cost model applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Operator categories the cost model knows.
GEMM_OPS = ("conv", "linear", "matmul", "attn_qk", "attn_pv")
VECTOR_OPS = ("softmax", "norm", "elementwise", "activation", "upsample", "concat", "reduce", "copy")
OPERAND_KINDS = ("wa", "aa", "pa")

#: column -> (dtype, meaning with unit)
COLUMNS: dict[str, tuple[str, str]] = {
    "name": ("object", "unique op name, e.g. 'down_blocks.0.resnets.0.conv1' or '<module>/softmax#3'"),
    "module": ("object", "dotted path of the innermost nn.Module that issued the op"),
    "aten": ("object", "the aten overload traced, e.g. 'aten.convolution.default'"),
    "op": ("object", f"category, one of {GEMM_OPS + VECTOR_OPS}"),
    "unit": ("object", "'gemm' (PE array) or 'vector' (vector unit)"),
    "operand_kind": ("object", "'wa', 'aa', 'pa' for GEMM ops; '' for vector ops"),
    "G": ("int64", "number of independent GEMMs (groups or batch*heads); 0 for vector ops"),
    "M": ("int64", "rows of the streamed operand and of the output, per GEMM"),
    "N": ("int64", "columns of the stationary operand and of the output, per GEMM"),
    "K": ("int64", "reduction length, per GEMM"),
    "macs": ("int64", "multiply-accumulates = G*M*N*K (0 for vector ops)"),
    "in_elems": ("int64", "elements of the streamed input operand (values, not bytes)"),
    "w_elems": ("int64", "elements of the stationary operand (weights, or K/V for attention)"),
    "out_elems": ("int64", "elements of the output"),
    "elems": ("int64", "elements processed by the vector unit (0 for GEMM ops)"),
    "passes": ("int64", "passes of each element through the vector unit (0 for GEMM ops)"),
    # conv geometry, for exports to SCALE-Sim / ZigZag (0 where not a conv)
    "batch": ("int64", "batch size of the op's input"),
    "C_in": ("int64", "conv input channels"),
    "C_out": ("int64", "conv output channels"),
    "H_in": ("int64", "conv input height (after padding is NOT applied)"),
    "W_in": ("int64", "conv input width"),
    "R": ("int64", "conv kernel height"),
    "S": ("int64", "conv kernel width"),
    "stride": ("int64", "conv stride (square)"),
    "pad": ("int64", "conv padding (square)"),
    "groups": ("int64", "conv groups"),
}


def empty_row() -> dict:
    """A row with every column at its neutral value; the tracer fills what applies."""
    row = {}
    for col, (dtype, _) in COLUMNS.items():
        row[col] = "" if dtype == "object" else 0
    return row


def make_table(rows: list[dict]) -> pd.DataFrame:
    """Build an op table from row dicts, with the contract's columns and dtypes."""
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col, (dtype, _) in COLUMNS.items():
        if dtype == "object":
            df[col] = df[col].fillna("").astype(object)
        else:
            df[col] = df[col].fillna(0).astype(np.int64)
    return df


def validate_table(df: pd.DataFrame) -> None:
    """Raise ValueError if ``df`` breaks the contract (columns, categories, MAC identity)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"op table lacks columns {missing}")
    bad_op = set(df["op"]) - set(GEMM_OPS + VECTOR_OPS)
    if bad_op:
        raise ValueError(f"op table has unknown op categories {sorted(bad_op)}")
    gemm = df["unit"].to_numpy() == "gemm"
    if not set(df.loc[gemm, "operand_kind"]) <= set(OPERAND_KINDS):
        raise ValueError("GEMM ops need operand_kind in wa/aa/pa")
    macs = (df["G"] * df["M"] * df["N"] * df["K"]).to_numpy()
    if not np.array_equal(macs[gemm], df.loc[gemm, "macs"].to_numpy()):
        raise ValueError("macs != G*M*N*K for some GEMM op")
    if (df.loc[~gemm, "elems"] <= 0).any():
        raise ValueError("vector ops need elems > 0")
