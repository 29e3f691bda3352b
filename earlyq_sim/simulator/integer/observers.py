"""Observers: collect activation statistics during calibration and propose a clipping range.

Observers only look at data; they own no scale, zero point or rounding rule (those live in
:mod:`earlyq_sim.simulator.integer.quantizers`), in the manner of ``torch.ao.quantization``.

Each observer keeps a running min/max and a deterministic random subsample (reservoir) of the
values it saw, so percentile and MSE searches work on a bounded sample. Ranges are in the
tensor's own units (real values, before quantization).
"""

from __future__ import annotations

import torch

from earlyq_sim.errors import UserError

#: names accepted by :func:`make_observer`
OBSERVERS = ("minmax", "percentile", "mse")


class Observer:
    """Base: running min/max plus a bounded, seeded random subsample of observed values."""

    def __init__(self, per_call: int = 2048, cap: int = 65536, seed: int = 0) -> None:
        self.per_call = int(per_call)
        self.cap = int(cap)
        self.min = float("inf")
        self.max = float("-inf")
        self._samples: list[torch.Tensor] = []
        self._gen = torch.Generator().manual_seed(seed)

    # -- collection -------------------------------------------------------------------------
    def observe(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1).float()
        if flat.numel() == 0:
            return
        self.min = min(self.min, float(flat.min()))
        self.max = max(self.max, float(flat.max()))
        if flat.numel() > self.per_call:
            idx = torch.randint(0, flat.numel(), (self.per_call,), generator=self._gen)
            flat = flat[idx]
        self._samples.append(flat.clone())

    def merge(self, other: "Observer") -> None:
        """Fold another observer's statistics into this one (used for the shared range set)."""
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self._samples.extend(other._samples)

    @property
    def empty(self) -> bool:
        return not self._samples

    def samples(self) -> torch.Tensor:
        s = torch.cat(self._samples) if self._samples else torch.zeros(0)
        if s.numel() > self.cap:
            s = s[torch.randperm(s.numel(), generator=self._gen)[: self.cap]]
        return s

    # -- fitting ----------------------------------------------------------------------------
    def range_for(self, bits: int, signed: bool) -> tuple[float, float]:
        """Proposed real-valued (lo, hi) clipping range for a ``bits``-bit quantizer."""
        raise NotImplementedError


class MinMaxObserver(Observer):
    """Full observed range."""

    def range_for(self, bits: int, signed: bool) -> tuple[float, float]:
        if self.empty:
            raise ValueError("observer saw no data")
        return self.min, self.max


class PercentileObserver(Observer):
    """Clip to the ``pct`` and ``100 - pct`` percentiles of the subsample."""

    def __init__(self, pct: float = 99.99, **kw) -> None:
        super().__init__(**kw)
        self.pct = float(pct)

    def range_for(self, bits: int, signed: bool) -> tuple[float, float]:
        s = self.samples().double()
        q = torch.quantile(s, torch.tensor([1 - self.pct / 100, self.pct / 100], dtype=torch.float64))
        return float(q[0]), float(q[1])


class MSEObserver(Observer):
    """Clipping range minimising the mean squared quantize-dequantize error on the subsample.

    Searches ``(lo, hi) = alpha * (min, max)`` over a grid of ``alpha`` in [0.2, 1] (as in
    Q-Diffusion / BRECQ style linear clipping searches). Depends on ``bits``.
    """

    def __init__(self, grid: int = 80, **kw) -> None:
        super().__init__(**kw)
        self.grid = int(grid)

    def range_for(self, bits: int, signed: bool) -> tuple[float, float]:
        from earlyq_sim.simulator.integer.quantizers import act_qparams, fake_quant  # no import cycle at load

        s = self.samples()
        if s.numel() == 0:
            raise ValueError("observer saw no data")
        best, best_err = (self.min, self.max), float("inf")
        for alpha in torch.linspace(0.2, 1.0, self.grid).tolist():
            lo, hi = alpha * self.min, alpha * self.max
            p = act_qparams(lo, hi, bits, signed)
            err = float(((fake_quant(s, p) - s) ** 2).mean())
            if err < best_err:  # strict: ties keep the smaller clip found first
                best, best_err = (lo, hi), err
        return best


def make_observer(name: str, seed: int = 0) -> Observer:
    """Build an observer by name (``minmax``, ``percentile``, ``mse``)."""
    if name == "minmax":
        return MinMaxObserver(seed=seed)
    if name == "percentile":
        return PercentileObserver(seed=seed)
    if name == "mse":
        return MSEObserver(seed=seed)
    raise UserError(f"observer: {name!r} is unknown; allowed {', '.join(OBSERVERS)}")
