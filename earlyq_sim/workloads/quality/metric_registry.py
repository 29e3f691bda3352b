"""The metrics registry: one entry per image-quality metric (name, how to compute it, format,
unit), read by ``quality_metrics``, the quality tables of ``run`` and the experiments.

``name`` is the column name in every table (quality.csv, summary.json, experiment CSVs).
``compute`` takes a :class:`metrics.MetricInputs` (images, the full-precision images from the
same seeds, features computed once) and returns a float. Torch-free, so formatting code can
read the registry without importing the metric implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from earlyq_sim.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str  # table column
    label: str  # header in printed tables
    fmt: str  # format spec of printed values
    unit: str  # "" for dimensionless
    better: str  # "lower" | "higher"
    vs_full_precision: bool  # needs the full-precision run from the same seeds (else skipped)
    compute: Callable  # MetricInputs -> float
    basis: str = ""


METRICS = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    if metric.better not in ("lower", "higher"):
        raise ValueError(f"metric {metric.name}: better must be 'lower' or 'higher'")
    return METRICS.register(metric.name, metric)


register_metric(Metric("fd", "FD", ".2f", "", "lower", False, lambda x: x.fd(),
                       "Frechet distance on the feature network's penultimate features vs the test statistics"))
register_metric(Metric("precision", "precision", ".3f", "", "higher", False, lambda x: x.precision_recall()[0],
                       "k-NN manifold precision (Kynkaanniemi et al. 2019) vs test features"))
register_metric(Metric("recall", "recall", ".3f", "", "higher", False, lambda x: x.precision_recall()[1],
                       "k-NN manifold recall (Kynkaanniemi et al. 2019) vs test features"))
register_metric(Metric("psnr_db_mean", "PSNR dB", ".2f", "dB", "higher", True, lambda x: x.psnr_db_mean(),
                       "mean per-image PSNR vs the full-precision run from the same seeds (finite values)"))
register_metric(Metric("ssim_mean", "SSIM", ".4f", "", "higher", True, lambda x: float(x.ssim().mean()),
                       "mean per-image SSIM vs the full-precision run from the same seeds"))
