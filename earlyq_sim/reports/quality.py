"""The quality lane's results as summary.json's ``quality`` block and as an aligned text table.

Columns come from the metrics registry (``workloads/quality/metric_registry.py``).
"""

from __future__ import annotations

import numpy as np

from earlyq_sim.workloads.quality.metric_registry import METRICS


def quality_summary(q) -> dict:
    """The ``quality`` block of summary.json."""
    return {
        "computed": True, "model": q.model, "n_images": q.n, "seed": q.seed, "sampler": q.sampler,
        "steps": q.num_steps,
        "runs": [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in q.rows],
        "basis": {
            "fd": "Frechet distance on the shipped Fashion-MNIST feature network's penultimate features, against "
                  "the shipped test-set statistics (lower is better; biased upward at small n, compare runs at "
                  "equal n and seeds; scale in docs/metric_calibration.md)",
            "precision/recall": "k-NN manifold precision and recall (Kynkaanniemi et al. 2019, k=3) vs test features",
            "psnr_db_mean/ssim_mean": "per-image PSNR (dB) and SSIM against the full-precision run from the same seeds",
            "arithmetic": "quantized runs are bit-accurate integer emulation (int products, int32 accumulation, "
                          "fixed-point rescale); non-linear ops in float32 (docs/integer_emulation.md)",
        },
    }


def format_quality_table(q: dict) -> str:
    """The quality block as aligned text."""
    cols = ["run", "schedule", *(m.label for m in METRICS.values()), "sample s", "calib s"]
    rows = []
    for r in q["runs"]:
        def f(k, spec):
            v = r.get(k)
            return "-" if v is None else format(v, spec)
        rows.append([r["run"], r["schedule"], *(f(m.name, m.fmt) for m in METRICS.values()),
                     f("sample_seconds", ".1f"), f("calib_seconds", ".1f")])
    widths = [max(len(c), *(len(x[i]) for x in rows)) for i, c in enumerate(cols)]
    lines = [f"image quality: {q['model']}, {q['n_images']} images, seed {q['seed']}, {q['sampler'].upper()} "
             f"{q['steps']} steps, integer emulation"]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(x, widths)) for x in rows]
    lines.append("FD vs Fashion-MNIST test statistics (lower is better); PSNR/SSIM vs the full-precision run, "
                 "same seeds.")
    lines.append("sample s: wall time of sampling (float32, or exact integer emulation); calib s: calibration of "
                 "the quantized model (float32 passes with observers); seconds on this machine.")
    return "\n".join(lines)
