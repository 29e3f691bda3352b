"""Pareto fronts of result tables: which points no other point beats on every objective.

A point is dominated when another point of the same group (``by``, e.g. per model) is at least
as good on every objective and strictly better on one; the front is every point that is not
dominated. Exact ties are both on the front (neither is strictly better). A point with NaN in
any objective is never on the front and never dominates another: a missing number (a cost-only
model without quality, a failed metric) must not win or knock out a real point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from earlyq_sim.errors import UserError

CHUNK = 2048  # rows compared at once: memory n x CHUNK x objectives booleans


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``values`` (n, k), every objective to be *minimised*; rows with a
    NaN are False and dominate nothing. Vectorised O(n^2 k), in chunks."""
    v = np.asarray(values, np.float64)
    if v.ndim != 2:
        raise ValueError("values must be (points, objectives)")
    ok = ~np.isnan(v).any(axis=1)
    out = np.zeros(len(v), bool)
    good = v[ok]
    front = np.ones(len(good), bool)
    for s in range(0, len(good), CHUNK):
        blk = good[s:s + CHUNK]  # candidates that might be dominated
        le = (good[None, :, :] <= blk[:, None, :]).all(axis=2)  # other j at least as good as i
        lt = (good[None, :, :] < blk[:, None, :]).any(axis=2)  # ... and strictly better somewhere
        front[s:s + CHUNK] = ~(le & lt).any(axis=1)
    out[np.flatnonzero(ok)] = front
    return out


def pareto_front(df: pd.DataFrame, maximise=(), minimise=(), by=("model",)) -> pd.Series:
    """Boolean Series (index of ``df``): True for the non-dominated rows of each ``by`` group.

    ``maximise``/``minimise``: numeric column names; a missing or non-numeric column is a
    one-line error listing the numeric columns there are."""
    maximise, minimise = tuple(maximise), tuple(minimise)
    cols = maximise + minimise
    if not cols:
        raise UserError("pareto: no objectives; allowed: --maximise and/or --minimise with column names")
    if len(set(cols)) != len(cols):
        raise UserError(f"pareto: a column is named twice in {', '.join(cols)}; allowed each once")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    for c in cols:
        if c not in numeric:
            raise UserError(f"pareto: column {c!r} is not a numeric column of the results; allowed: {', '.join(numeric)}")
    by = [b for b in by if b in df.columns]
    sign = np.array([-1.0] * len(maximise) + [1.0] * len(minimise))
    vals = df[list(cols)].to_numpy(np.float64) * sign  # everything minimised
    mask = np.zeros(len(df), bool)
    groups = df.groupby(by, sort=False, dropna=False).indices.values() if by else [np.arange(len(df))]
    for idx in groups:
        mask[idx] = pareto_mask(vals[idx])
    return pd.Series(mask, index=df.index, name="pareto")
