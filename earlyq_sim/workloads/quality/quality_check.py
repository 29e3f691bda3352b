"""Does a schedule keep the baseline's image quality? A verdict a user can trust at a glance.

The rule (issue 15): a schedule fails when its FD exceeds the baseline's by more than twice the
half-width of the 95% paired-bootstrap interval of that difference (images resampled with the
same indices for both runs, which share seeds), or when its mean PSNR against the full-precision
run from the same seeds falls below ``psnr_min_db`` (20 dB: the level below which quantization
noise is plainly visible on these 8-bit images). Both the difference, its interval and the
thresholds are reported, so the verdict can be checked by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from earlyq_sim.workloads.quality.metrics import feature_stats, frechet_distance, psnr

PSNR_MIN_DB = 20.0
FD_CI_FACTOR = 2.0


@dataclass(frozen=True)
class QualityVerdict:
    ok: bool
    fd_baseline: float
    fd_schedule: float
    fd_delta: float  # schedule - baseline
    fd_delta_ci95: tuple[float, float]  # paired bootstrap
    fd_limit: float  # FD_CI_FACTOR x the interval's half-width
    psnr_db: float  # mean over images, schedule vs full precision
    psnr_min_db: float
    reasons: tuple[str, ...]
    n_boot: int

    def as_dict(self) -> dict:
        d = asdict(self)
        d["fd_delta_ci95"] = list(self.fd_delta_ci95)
        d["reasons"] = list(self.reasons)
        d["rule"] = (f"fail if FD(schedule) - FD(baseline) > {FD_CI_FACTOR:g} x the half-width of its 95% paired "
                     f"bootstrap interval, or mean PSNR vs full precision < {self.psnr_min_db:g} dB")
        return d

    def warning(self) -> str:
        return ("WARNING: image quality is not kept: " + "; ".join(self.reasons)
                + " (see the quality table; try holding layers or more bits early)")


def paired_fd_delta(feats_base: np.ndarray, feats_sched: np.ndarray, ref_mu, ref_sigma, n_boot: int = 200,
                    seed: int = 0) -> tuple[float, float, float]:
    """FD(schedule) - FD(baseline) and its 95% paired-bootstrap interval (same resampled indices)."""
    n = len(feats_base)
    if n != len(feats_sched) or n < 3:
        raise ValueError("paired FD needs the same number (>= 3) of images in both runs")

    def fd(f):
        mu, sigma = feature_stats(f)
        return frechet_distance(mu, sigma, ref_mu, ref_sigma)

    delta = fd(feats_sched) - fd(feats_base)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        boots[b] = fd(feats_sched[idx]) - fd(feats_base[idx])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(delta), float(lo), float(hi)


def judge(images: dict, n_boot: int = 200, psnr_min_db: float = PSNR_MIN_DB, seed: int = 0) -> QualityVerdict:
    """Verdict on ``images`` (uint8 NHWC, the samplers' layout, by run label: 'full precision',
    'baseline', 'schedule')."""
    from earlyq_sim.workloads.quality.feature_net import extract_features, load_feature_net, load_reference

    images = {k: np.ascontiguousarray(np.asarray(v).transpose(0, 3, 1, 2)) for k, v in images.items()}  # -> NCHW
    net, ref = load_feature_net(), load_reference()
    fb, fs = (extract_features(images[k], net) for k in ("baseline", "schedule"))
    delta, lo, hi = paired_fd_delta(fb, fs, ref["mu"], ref["sigma"], n_boot, seed)
    limit = FD_CI_FACTOR * (hi - lo) / 2.0
    p = float(np.mean(psnr(images["schedule"], images["full precision"])))
    reasons = []
    if np.isnan(delta) or delta > limit:
        reasons.append(f"FD rises by {delta:.2f} over the baseline, more than {limit:.2f} "
                       f"({FD_CI_FACTOR:g}x the half-width of its 95% interval [{lo:.2f}, {hi:.2f}])")
    if np.isnan(p) or p < psnr_min_db:  # +inf: identical to full precision, which is fine
        reasons.append(f"mean PSNR vs full precision is {p:.1f} dB, below {psnr_min_db:g} dB")
    mu_b, s_b = feature_stats(fb)
    mu_s, s_s = feature_stats(fs)
    return QualityVerdict(not reasons, frechet_distance(mu_b, s_b, ref["mu"], ref["sigma"]),
                          frechet_distance(mu_s, s_s, ref["mu"], ref["sigma"]), delta, (lo, hi), limit, p,
                          psnr_min_db, tuple(reasons), n_boot)
