"""The quality half of `earlyq-sim run`: sample under full precision, the baseline and the schedule.

All three runs use the same seeds (one generator per image), so PSNR/SSIM compare the same
image under different arithmetic. The quantized runs are bit-accurate integer emulation
(``mode='int'``) of the calibrated model, with per-step bits taken from the same
``PrecisionSchedule`` objects the cost lane costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.quality.metric_registry import METRICS
from earlyq_sim.schedule import PrecisionSchedule



@dataclass(frozen=True)
class QualityResult:
    """Quality of the full-precision, baseline and schedule runs of one model."""

    model: str
    n: int
    seed: int
    sampler: str
    num_steps: int
    rows: list  # dicts: run, schedule, fd, precision, recall, psnr_db_mean, ssim_mean, seconds
    images: dict = field(repr=False)  # run label -> uint8 (N, H, W, C)

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def quality_supported(model: str) -> str | None:
    """None if ``model`` has shipped weights and a matching feature network, else the reason."""
    from earlyq_sim.models.registry import MODELS

    info = MODELS.get(model)
    if info is None or not getattr(info, "weights", None):
        return f"model {model!r} has no trained weights in the package; quality needs the fmnist16 model"
    if not info.weights_path.is_file():
        return f"weights {info.weights_path} are missing from this install"
    if info.name != "fmnist16":
        return f"no feature network for model {model!r}; quality metrics cover fmnist16 (Fashion-MNIST 16x16)"
    return None


def scheduler_config_for(model: str) -> dict | None:
    """The noise-schedule config shipped with a trained model (``_earlyq.scheduler``)."""
    from earlyq_sim.models.config_io import read_config
    from earlyq_sim.models.registry import resolve_model

    _, cfg = read_config(resolve_model(model).config_path)
    return (cfg.get("_earlyq") or {}).get("scheduler")


def evaluate_quality(model: str, schedule: PrecisionSchedule, baseline: PrecisionSchedule, n: int = 128,
                     seed: int = 0, sampler: str = "ddim", batch_size: int = 128, calib_n: int = 64,
                     calib_steps: int = 20, range_mode: str = "interval", progress: bool = True,
                     threads: int | None = 1) -> QualityResult:
    """Sample ``n`` images three ways and measure FD, precision/recall and PSNR/SSIM vs full precision.

    ``threads``: torch intra-op threads (None leaves torch's setting). The default is 1: with
    a second busy process on a 2-core machine, 2 OpenMP threads made sampling 9x and
    calibration 40x slower here (spin-waiting), while 1 thread loses at most the second core.
    """
    from earlyq_sim.models.loader import load_unet
    from earlyq_sim.workloads.quality.metrics import quality_metrics
    from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate
    from earlyq_sim.workloads.sampling.samplers import sample

    reason = quality_supported(model)
    if reason:
        raise UserError(reason)
    if n < 2:
        raise UserError(f"--n: {n} images is too few; allowed >= 2 (FD needs a covariance)")
    if schedule.num_steps != baseline.num_steps:
        raise ValueError("schedule and baseline must have the same number of steps")
    set_threads(threads)
    unet = load_unet(model)
    sched_cfg = scheduler_config_for(model)
    steps = schedule.num_steps
    images, rows = {}, []

    t0 = time.perf_counter()
    fp = sample(unet, None, n, seed, sampler, steps, batch_size, scheduler_config=sched_cfg, progress=progress)
    t_fp = time.perf_counter() - t0
    images["full precision"] = fp
    m = quality_metrics(_nchw(fp))
    rows.append(_row("full precision", "fp32", m, t_fp, None))

    for label, sch in (("baseline", baseline), ("schedule", schedule)):
        t0 = time.perf_counter()
        qm = quantize_and_calibrate(unet, sch, n_calib=calib_n, calib_steps=calib_steps, range_mode=range_mode,
                                    sampler=sampler, batch_size=batch_size, scheduler_config=sched_cfg,
                                    progress=progress)
        t1 = time.perf_counter()
        imgs = sample(qm, sch, n, seed, sampler, steps, batch_size, scheduler_config=sched_cfg,
                      mode="int", progress=progress)
        t2 = time.perf_counter()
        images[label] = imgs
        rows.append(_row(label, sch.label, quality_metrics(_nchw(imgs), _nchw(fp)), t2 - t1, t1 - t0))
    return QualityResult(model, n, seed, sampler, steps, rows, images)


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (None: leave it)."""
    if threads is None:
        return
    if threads < 1:
        raise UserError(f"--threads: {threads} must be >= 1")
    import torch

    torch.set_num_threads(threads)


def _nchw(images: np.ndarray) -> np.ndarray:
    """Sampler output (N, H, W, C) uint8 -> (N, C, H, W), the metrics' layout."""
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))


def _row(run: str, label: str, m: dict, sample_s: float, calib_s: float | None) -> dict:
    """One run's metrics, its sampling time and (quantized runs) its calibration time, seconds."""
    row = {"run": run, "schedule": label, "n_images": int(m["n_images"])}
    for k in METRICS:  # every registered metric, in registry order
        v = m.get(k)
        row[k] = float(v) if v is not None else float("nan")
    row["sample_seconds"] = float(sample_s)
    row["calib_seconds"] = float("nan") if calib_s is None else float(calib_s)
    return row
