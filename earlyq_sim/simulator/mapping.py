"""Mapping a GEMM onto a systolic array: which dimension is spatial, which temporal, folds.

Follows SCALE-Sim (Samajdar et al., ISPASS 2020; scale-sim-v2 ``compute/systolic_compute_*.py``)
for a GEMM ``(M x K) @ (K x N)`` on an ``R x C`` array:

=========  ==========  ==========  ===========  =======================
dataflow   Sr (rows)   Sc (cols)   T (time)     preload per fold
=========  ==========  ==========  ===========  =======================
``ws``     K           N           M            R cycles (weights)
``os``     M           N           K            0
``is``     K           M           N            R cycles (inputs)
=========  ==========  ==========  ===========  =======================

Folds: ``ceil(Sr / R) * ceil(Sc / C)``. Each fold is scheduled for the whole array (partial
folds pad with idle PEs, as SCALE-Sim does), so one fold takes
``preload + (R + C - 2) + T`` cycles with bit-parallel PEs: SCALE-Sim's ``2R + C + T - 2``
(ws, is) and ``R + C + T - 2`` (os). ``cycle_model`` generalises the ``T`` term for bit-serial
and fused PEs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mapping:
    """Per-op mapping quantities (int64 arrays, one entry per GEMM)."""

    Sr: np.ndarray  # operand extent mapped on array rows
    Sc: np.ndarray  # operand extent mapped on array columns
    T: np.ndarray  # temporal extent streamed through each fold
    row_folds: np.ndarray  # ceil(Sr / R)
    col_folds: np.ndarray  # ceil(Sc / C)
    preload: int  # cycles to preload the stationary tile of one fold (R for ws/is, 0 for os)


def ceil_div(a, b):
    """Integer ceil(a / b) for non-negative int arrays."""
    return -(-np.asarray(a, dtype=np.int64) // np.asarray(b, dtype=np.int64))


def map_gemm(dataflow: str, R: int, C: int, M, N, K) -> Mapping:
    """Spatial/temporal assignment and fold counts of ``(M x K) @ (K x N)`` on an R x C array."""
    M = np.asarray(M, dtype=np.int64)
    N = np.asarray(N, dtype=np.int64)
    K = np.asarray(K, dtype=np.int64)
    if dataflow == "ws":
        Sr, Sc, T, pre = K, N, M, R
    elif dataflow == "os":
        Sr, Sc, T, pre = M, N, K, 0
    elif dataflow == "is":
        Sr, Sc, T, pre = K, M, N, R
    else:
        raise ValueError(f"unknown dataflow {dataflow!r}; allowed ws, os, is")
    return Mapping(Sr, Sc, T, ceil_div(Sr, R), ceil_div(Sc, C), pre)
