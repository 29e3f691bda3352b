"""Quality experiments over many configurations and seeds: resumable rows of FD, P/R, PSNR/SSIM.

One :class:`QualityBench` holds the trained model, the full-precision reference images per seed
and one calibrated quantized model per schedule, so a grid of (configuration x seed) costs one
sampling run per cell. Every finished cell is appended to a CSV at once (atomic rewrite), and a
rerun skips the cells already there: an interrupted experiment resumes where it stopped.

Configurations (:class:`RunSpec`):

* full precision (``schedule=None``): float32 sampling;
* a precision schedule (interval form, e.g. ``a4@0-0.4,a8@0.4-1,k8:io``): calibrated, then
  bit-accurate integer emulation, per-step bits from the schedule;
* the noise probe (``noise_rel > 0``): float32 sampling with Gaussian noise of standard
  deviation ``noise_rel * rms(eps)`` (per image) added to the UNet output on the steps in
  ``noise_interval`` only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.quality.metric_registry import METRICS
from earlyq_sim.schedule import PrecisionSchedule

ROW_KEYS = ("label", "spec", "seed", "n", "steps")
# experiment CSVs written before the metrics registry named the PSNR/SSIM columns differently
LEGACY_COLUMNS = {"psnr_db": "psnr_db_mean", "ssim": "ssim_mean"}


def _current_columns(df):
    """Rename legacy metric columns of an experiment table (pandas DataFrame) to registry names."""
    return df.rename(columns={k: v for k, v in LEGACY_COLUMNS.items() if k in df.columns and v not in df.columns})


@dataclass(frozen=True)
class RunSpec:
    """One configuration of an experiment."""

    label: str
    schedule: str | None = None            # interval form; None = float32
    noise_rel: float = 0.0                  # noise probe: relative std of the injected noise
    noise_interval: tuple[float, float] = (0.0, 0.0)   # positions [start, end) that get noise

    @property
    def spec(self) -> str:
        if self.noise_rel > 0:
            a, b = self.noise_interval
            return f"fp32+noise{self.noise_rel:g}@{a:g}-{b:g}"
        return self.schedule or "fp32"


class NoisyOutput(torch.nn.Module):
    """Wraps a UNet: adds ``rel * rms(eps) * N(0, 1)`` to its output on chosen steps.

    ``rms`` is per image (over C, H, W). The noise comes from a generator seeded from
    (seed, call index), so a run is reproducible for a given n and batch size.
    """

    def __init__(self, unet, rel: float, steps: set[int], seed: int) -> None:
        super().__init__()
        self.unet, self.rel, self.steps, self.seed = unet, float(rel), set(steps), int(seed)
        self.step, self.calls = 0, 0

    @property
    def config(self):
        return self.unet.config

    def on_step(self, i: int) -> None:
        self.step = i

    def forward(self, x, t):
        eps = self.unet(x, t).sample
        self.calls += 1
        if self.step in self.steps and self.rel > 0:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0]))
            rms = eps.pow(2).mean(dim=tuple(range(1, eps.dim())), keepdim=True).sqrt()
            eps = eps + self.rel * rms * torch.randn(eps.shape, generator=g)
        return SimpleNamespace(sample=eps)


class QualityBench:
    """Samples and scores configurations of one trained model; results go to ``out_csv``."""

    def __init__(self, out_csv: str | Path, model: str = "fmnist16", n: int = 256, steps: int = 20,
                 sampler: str = "ddim", batch_size: int = 128, calib_n: int = 64, calib_steps: int = 20,
                 progress: bool = True) -> None:
        from earlyq_sim.models.loader import load_unet
        from earlyq_sim.workloads.quality.evaluate import quality_supported, scheduler_config_for

        reason = quality_supported(model)
        if reason:
            raise UserError(reason)
        if n < 2:
            raise UserError(f"n: {n} images is too few; allowed >= 2")
        self.out_csv, self.model, self.n, self.steps = Path(out_csv), model, int(n), int(steps)
        self.sampler, self.batch_size, self.calib_n, self.calib_steps = sampler, batch_size, calib_n, calib_steps
        self.progress = progress
        self.unet = load_unet(model)
        self.sched_cfg = scheduler_config_for(model)
        self._fp: dict[int, np.ndarray] = {}
        self._qm: dict[str, object] = {}
        self.rows = self._read_rows()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _read_rows(self) -> list[dict]:
        if not self.out_csv.is_file():
            return []
        import pandas as pd
        return _current_columns(pd.read_csv(self.out_csv)).to_dict("records")

    def _key(self, spec: RunSpec, seed: int) -> tuple:
        return (spec.label, spec.spec, int(seed), self.n, self.steps)

    def done(self, spec: RunSpec, seed: int) -> dict | None:
        k = self._key(spec, seed)
        for r in self.rows:
            if tuple(type(v)(r[c]) for c, v in zip(ROW_KEYS, k)) == k:
                return r
        return None

    def _append(self, row: dict) -> None:
        import pandas as pd

        from earlyq_sim.atomic_io import write_csv
        self.rows.append(row)
        write_csv(self.out_csv, pd.DataFrame(self.rows))

    # -- sampling ------------------------------------------------------------------------------
    def schedule(self, spec: str) -> PrecisionSchedule:
        return PrecisionSchedule.parse(spec, self.steps)

    def fp_images(self, seed: int) -> np.ndarray:
        from earlyq_sim.workloads.sampling.samplers import sample
        if seed not in self._fp:
            self._fp[seed] = sample(self.unet, None, self.n, seed, self.sampler, self.steps, self.batch_size,
                                    scheduler_config=self.sched_cfg, progress=self.progress)
        return self._fp[seed]

    def quantized(self, spec: str):
        """The calibrated quantized model of a schedule (calibrated once, reused across seeds)."""
        from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate
        if spec not in self._qm:
            self._qm.clear()            # one at a time: each holds a copy of the UNet
            self._qm[spec] = quantize_and_calibrate(
                self.unet, self.schedule(spec), n_calib=self.calib_n, calib_steps=self.calib_steps,
                sampler=self.sampler, batch_size=self.batch_size, scheduler_config=self.sched_cfg,
                progress=self.progress)
        return self._qm[spec]

    def images(self, spec: RunSpec, seed: int) -> np.ndarray:
        from earlyq_sim.workloads.sampling.samplers import run_sampler, sample, to_uint8
        if spec.noise_rel > 0:
            a, b = spec.noise_interval
            # the schedule's rule: step i is in [a, b) when round(a*T) <= i < round(b*T)
            steps = set(range(round(a * self.steps), round(b * self.steps)))
            if not steps:
                raise UserError(f"noise interval {a:g}-{b:g} holds no step of {self.steps}")
            net = NoisyOutput(self.unet, spec.noise_rel, steps, seed)
            return to_uint8(run_sampler(net, self.n, seed, self.sampler, self.steps, self.batch_size,
                                        scheduler_config=self.sched_cfg, on_step=net.on_step,
                                        progress=self.progress))
        if spec.schedule is None:
            return self.fp_images(seed)
        sch = self.schedule(spec.schedule)
        return sample(self.quantized(spec.schedule), sch, self.n, seed, self.sampler, self.steps,
                      self.batch_size, scheduler_config=self.sched_cfg, mode="int", progress=self.progress)

    def run(self, spec: RunSpec, seed: int) -> dict:
        """Metrics of one (configuration, seed) cell; computed once, then read from the CSV."""
        from earlyq_sim.workloads.quality.metrics import quality_metrics
        from earlyq_sim.workloads.quality.evaluate import _nchw
        hit = self.done(spec, seed)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        imgs = self.images(spec, seed)
        ref = None if (spec.schedule is None and spec.noise_rel == 0) else _nchw(self.fp_images(seed))
        m = quality_metrics(_nchw(imgs), ref)
        row = dict(zip(ROW_KEYS, self._key(spec, seed)))
        row.update({name: m.get(name, float("nan")) for name in METRICS})
        row["seconds"] = time.perf_counter() - t0
        self._append(row)
        return row


def summarize(rows, by: str = "label"):
    """Mean and sample standard deviation over seeds per configuration (pandas DataFrame)."""
    import pandas as pd
    df = _current_columns(pd.DataFrame(rows))
    g = df.groupby(by, sort=False)
    out = g[list(METRICS)].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out.insert(0, "seeds", g.size())
    out.insert(0, "spec", g["spec"].first())
    return out.reset_index()


def search_on_bench(bench: QualityBench, seeds, threshold: float, grid: float = 0.05, min_bits: int = 4,
                    max_bits: int = 8, weight_bits: int = 8, keep: str = "", stop_at_fail: bool = True,
                    monotone: bool = False, tokens: str = "", log=None):
    """Algorithm-1 search where a candidate's quality is its mean FD over ``seeds`` on ``bench``.

    The baseline is uniform ``W{weight_bits}A{max_bits}`` with the same held layers and extra
    schedule ``tokens`` (e.g. ``p16``). Returns
    (SearchResult, baseline spec)."""
    from earlyq_sim.workloads.quality.schedule_search import search_schedule
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise UserError("search: no seeds; give at least one, e.g. --seeds 0,1")
    extra = ",".join(t for t in (tokens, f"k8:{keep}" if keep else "") if t)
    base_spec = f"W{weight_bits}A{max_bits}" + (f",{extra}" if extra else "")

    def mean_fd(spec: str) -> float:
        return sum(bench.run(RunSpec(spec, spec), s)["fd"] for s in seeds) / len(seeds)

    res = search_schedule(mean_fd, mean_fd(base_spec), threshold, grid=grid, min_bits=min_bits, max_bits=max_bits,
                          weight_bits=weight_bits, extra=extra, stop_at_fail=stop_at_fail, monotone=monotone, log=log)
    return res, base_spec


def speedup_table(spec: str, baseline: str, models, archs):
    """Cost-lane speedup, compute-only speedup and energy saving of ``spec`` over the uniform
    ``baseline`` on each (model, arch), each model at its default step count (DataFrame)."""
    import pandas as pd

    from earlyq_sim.api import cost_run
    rows = []
    for model in models:
        for arch in archs:
            t = cost_run(model, arch, spec, baseline=baseline).summary["total"]
            rows.append({"model": model, "arch": arch, "steps": t["steps"], "speedup": t["speedup"],
                         "compute_speedup": t["compute_speedup"], "energy_saving": t["energy_saving"]})
    return pd.DataFrame(rows)
