"""The ``metrics:`` and ``quality:`` fields of a sweep spec, validated at the edge.

::

    metrics: [cost, quality]          # default [cost]; cost is always computed
    quality:                          # only with quality in metrics; every field optional
      n: 64                           # images per seed and run (>= 3: the paired bootstrap needs them)
      seeds: [0]                      # one sampling run per seed; images are pooled over seeds
      steps: null                     # sampler steps; null: the sweep's steps (each model's default)
      sampler: ddim                   # a registered sampler (ddim | ddpm)
      calib_n: 64                     # calibration images of the quantized model
      calib_steps: 20                 # sampler steps of the calibration runs
      n_boot: 200                     # bootstrap resamples of the FD-difference interval
      threads: 1                      # torch intra-op threads per quality cell
      batch_size: 128                 # images per sampler batch (speed only)

Bad input is a one-line :class:`UserError` naming the sweep file and field, e.g.
``sweep.yaml: quality.n: 2 is not allowed; allowed an integer 3..100000``.
"""

from __future__ import annotations

from dataclasses import dataclass

from earlyq_sim.errors import UserError

METRIC_KINDS = ("cost", "quality")
QUALITY_FIELDS = ("n", "seeds", "steps", "sampler", "calib_n", "calib_steps", "n_boot", "threads", "batch_size")


@dataclass(frozen=True)
class QualitySettings:
    """How each quality cell samples and judges (images, seeds, steps; seconds do not enter)."""

    n: int = 64  # images per seed and run
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None  # None: the sweep's step count for the model
    sampler: str = "ddim"
    calib_n: int = 64  # calibration images
    calib_steps: int = 20
    n_boot: int = 200  # bootstrap resamples (quality_check.judge)
    threads: int = 1  # torch intra-op threads
    batch_size: int = 128


def _int(v, src: str, field: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise UserError(f"{src}: {field}: {v!r} is not allowed; allowed an integer {lo}..{hi}")
    return v


def read_metrics(data: dict, src: str) -> tuple[str, ...]:
    """``metrics:`` as a tuple of kinds in METRIC_KINDS order (cost always first)."""
    raw = data.get("metrics", ["cost"])
    vals = raw if isinstance(raw, list) else [raw]
    allowed = " | ".join(METRIC_KINDS)
    for i, v in enumerate(vals):
        if v not in METRIC_KINDS:
            raise UserError(f"{src}: metrics[{i}]: {v!r} is unknown; allowed {allowed}")
    if len(set(vals)) != len(vals):
        raise UserError(f"{src}: metrics: duplicate entries {vals}; allowed each of {allowed} once")
    if "cost" not in vals:
        raise UserError(f"{src}: metrics: {vals} leaves out cost; allowed [cost] or [cost, quality] "
                        "(quality is joined to the cost rows)")
    return tuple(k for k in METRIC_KINDS if k in vals)


def read_quality(data: dict, src: str, metrics: tuple[str, ...]) -> QualitySettings | None:
    """``quality:`` as QualitySettings when quality is in ``metrics`` (else None)."""
    from earlyq_sim.workloads.sampling.sampler_registry import sampler_names

    raw = data.get("quality")
    if "quality" not in metrics:
        if raw is not None:
            raise UserError(f"{src}: quality: settings given but metrics is {list(metrics)}; "
                            "allowed: add quality to metrics, or drop the quality field")
        return None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{src}: quality: expected a mapping with fields {', '.join(QUALITY_FIELDS)}; "
                        f"got {type(raw).__name__}")
    extra = sorted(str(k) for k in set(raw) - set(QUALITY_FIELDS))
    if extra:
        raise UserError(f"{src}: quality.{extra[0]}: unknown field; allowed: {', '.join(QUALITY_FIELDS)}")
    d = QualitySettings()
    seeds = raw.get("seeds", list(d.seeds))
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not seeds:
        raise UserError(f"{src}: quality.seeds: empty list; allowed a seed or a non-empty list of seeds")
    seeds = tuple(_int(s, src, f"quality.seeds[{i}]", 0, 2 ** 31 - 1) for i, s in enumerate(seeds))
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{src}: quality.seeds: duplicate seeds {list(seeds)}; allowed each seed once")
    sampler = raw.get("sampler", d.sampler)
    if sampler not in sampler_names():
        raise UserError(f"{src}: quality.sampler: {sampler!r} is unknown; allowed {' | '.join(sampler_names())}")
    steps = raw.get("steps")
    return QualitySettings(
        n=_int(raw.get("n", d.n), src, "quality.n", 3, 100_000), seeds=seeds,
        steps=None if steps is None else _int(steps, src, "quality.steps", 1, 10_000), sampler=sampler,
        calib_n=_int(raw.get("calib_n", d.calib_n), src, "quality.calib_n", 1, 100_000),
        calib_steps=_int(raw.get("calib_steps", d.calib_steps), src, "quality.calib_steps", 1, 10_000),
        n_boot=_int(raw.get("n_boot", d.n_boot), src, "quality.n_boot", 10, 100_000),
        threads=_int(raw.get("threads", d.threads), src, "quality.threads", 1, 1024),
        batch_size=_int(raw.get("batch_size", d.batch_size), src, "quality.batch_size", 1, 65_536))
