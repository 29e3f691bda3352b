"""Precision-schedule search in the manner of the paper's Algorithm 1.

The trajectory is cut into intervals of ``grid`` (0.05: twenty intervals); all start at
``max_bits`` (the baseline). From the earliest interval onwards, each interval's activation bits
are tried from ``min_bits`` upward and the lowest setting whose quality stays within
``threshold`` FD of the baseline is kept; an interval that cannot go below ``max_bits`` ends the
search (later steps only get more sensitive), unless ``stop_at_fail`` is off. Adjacent intervals
with equal bits merge into the result's stages.

``evaluate(spec) -> FD`` is supplied by the caller (e.g. mean FD over seeds from a
:class:`~earlyq_sim.workloads.quality.experiments.QualityBench`), so the search itself is pure logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import check_bits


@dataclass(frozen=True)
class Trial:
    interval: int
    bits: int
    spec: str
    fd: float
    accepted: bool


@dataclass(frozen=True)
class SearchResult:
    bits: tuple[int, ...]          # activation bits per grid interval
    grid: float
    spec: str                      # merged interval form
    baseline_fd: float
    threshold: float
    final_fd: float
    trials: tuple[Trial, ...] = field(default=())

    def stages(self) -> list[tuple[float, float, int]]:
        """Merged (start, end, bits) stages."""
        return merge(self.bits, self.grid)


def merge(bits, grid: float) -> list[tuple[float, float, int]]:
    """Per-interval bits -> merged (start, end, bits), positions rounded to the grid."""
    out: list[list] = []
    for i, b in enumerate(bits):
        if out and out[-1][2] == b:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1, b])
    return [(round(a * grid, 6), round(min(e * grid, 1.0), 6), b) for a, e, b in out]


def bits_to_spec(bits, grid: float, weight_bits: int = 8, extra: str = "") -> str:
    """Interval-form schedule text of per-interval bits, e.g. ``a4@0-0.3,a8@0.3-1,w8``."""
    parts = [f"a{b}@{a:g}-{e:g}" for a, e, b in merge(bits, grid)]
    parts.append(f"w{weight_bits}")
    if extra:
        parts.append(extra)
    return ",".join(parts)


def search_schedule(evaluate: Callable[[str], float], baseline_fd: float, threshold: float, grid: float = 0.05,
                    min_bits: int = 4, max_bits: int = 8, weight_bits: int = 8, extra: str = "",
                    stop_at_fail: bool = True, monotone: bool = False,
                    log: Callable[[Trial], None] | None = None) -> SearchResult:
    """Greedy earliest-first search; see the module docstring. ``extra``: more schedule tokens
    (e.g. ``p16`` or ``k8:io``) appended to every candidate."""
    k = round(1.0 / grid)
    if k < 1 or abs(k * grid - 1.0) > 1e-9:
        raise UserError(f"search grid: {grid!r} must divide 1 (e.g. 0.05, 0.1, 0.2)")
    check_bits(min_bits, "search min_bits", 1, 16)
    check_bits(max_bits, "search max_bits", 1, 16)
    if min_bits >= max_bits:
        raise UserError(f"search bits: min_bits {min_bits} must be below max_bits {max_bits}")
    if threshold < 0:
        raise UserError(f"search threshold: {threshold!r} must be >= 0 (FD above the baseline)")
    bits = [max_bits] * k
    trials: list[Trial] = []
    final_fd = baseline_fd
    for i in range(k):
        ok = False
        start = max(min_bits, bits[i - 1]) if monotone and i > 0 else min_bits
        for b in range(start, max_bits):
            cand = bits[:i] + [b] + bits[i + 1:]
            spec = bits_to_spec(cand, grid, weight_bits, extra)
            fd = float(evaluate(spec))
            ok = fd - baseline_fd <= threshold
            t = Trial(i, b, spec, fd, ok)
            trials.append(t)
            if log:
                log(t)
            if ok:
                bits, final_fd = cand, fd
                break
        if not ok and stop_at_fail:
            break
    return SearchResult(tuple(bits), grid, bits_to_spec(bits, grid, weight_bits, extra), float(baseline_fd),
                        float(threshold), final_fd, tuple(trials))
