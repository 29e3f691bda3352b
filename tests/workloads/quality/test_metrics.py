"""FD, precision/recall, PSNR and SSIM against closed forms, scipy and straightforward loops."""

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.quality import metrics as m


def _rand_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_fd_identical_stats_is_zero():
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=8), _rand_cov(rng, 8)
    assert m.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)


def test_fd_closed_form_diagonal_and_1d():
    # 1-D: (m1-m2)^2 + (s1 - s2)^2 with s the standard deviations
    assert m.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2 + |dmu|^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    expect = 9.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert m.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expect)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_fd_matches_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _rand_cov(rng, d), _rand_cov(rng, d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean)
    assert m.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6, abs=1e-8)


def test_fd_singular_covariance_is_finite_and_nonnegative():
    s = np.zeros((4, 4))
    s[0, 0] = 1.0
    assert m.frechet_distance(np.zeros(4), s, np.zeros(4), s) == pytest.approx(0.0, abs=1e-10)
    assert m.frechet_distance(np.zeros(4), s, np.ones(4), np.eye(4)) == pytest.approx(4 + 1 + 4 - 2)


def test_fd_shape_mismatch_is_user_error():
    with pytest.raises(UserError):
        m.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def _brute_pr(real, fake, k):
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    def cov(q, s, r):
        d = np.sqrt(((q[:, None] - s[None]) ** 2).sum(-1))
        return float((d <= r[None]).any(1).mean())

    return cov(fake, real, radii(real)), cov(real, fake, radii(fake))


def test_precision_recall_against_brute_force():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(loc=0.7, size=(45, 5))
    p, r = m.precision_recall(real, fake, k=3)
    bp, br = _brute_pr(real, fake, 3)
    assert (p, r) == pytest.approx((bp, br))
    assert 0 < p < 1 and 0 < r < 1


def test_precision_recall_hand_case():
    # real: 4 points on a line, k=1 radii are 1; fake at 0.5 (inside) and 10 (outside)
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0], [11.0]])
    p, r = m.precision_recall(real, fake, k=1)
    assert p == pytest.approx(1 / 3)
    # fake radii (k=1): 9.5, 1, 1 -> ball around 0.5 of radius 9.5 covers all real points
    assert r == pytest.approx(1.0)
    with pytest.raises(UserError):
        m.precision_recall(real, fake[:1], k=3)


def test_psnr_identical_and_known_value():
    a = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16), dtype=np.uint8)
    assert np.all(np.isinf(m.psnr(a, a)))
    c = np.zeros((1, 16, 16), np.uint8)
    d = np.full((1, 16, 16), 10, np.uint8)
    assert m.psnr(c, d)[0] == pytest.approx(10 * math.log10(255 ** 2 / 100))
    e = c.copy()
    e[0, 0, 0] = 16  # one pixel off by 16: MSE = 256 / 256 = 1
    assert m.psnr(c, e)[0] == pytest.approx(20 * math.log10(255))


def _ssim_loop(a, b):
    """Wang et al. 2004 written as a plain loop over valid 11x11 windows."""
    w = m.gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, wd = a.shape
    vals = []
    for i in range(h - 10):
        for j in range(wd - 10):
            x, y = a[i:i + 11, j:j + 11].astype(float), b[i:i + 11, j:j + 11].astype(float)
            mx, my = (w * x).sum(), (w * y).sum()
            vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
            cxy = (w * (x - mx) * (y - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_gaussian_window_matches_scipy_kernel():
    g = m.gaussian_window()
    assert g.shape == (11, 11) and g.sum() == pytest.approx(1.0)
    one_d = scipy.signal.windows.gaussian(11, 1.5)
    np.testing.assert_allclose(g, np.outer(one_d, one_d) / one_d.sum() ** 2)


def test_ssim_identical_and_loop_reference():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(4, 16, 16), dtype=np.uint8)
    noise = rng.integers(-40, 41, size=a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(m.ssim(a, a), 1.0, atol=1e-12)
    got = m.ssim(a, b)
    ref = [_ssim_loop(a[i], b[i]) for i in range(4)]
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert np.all(got < 0.99)


def test_ssim_constant_images_known_value():
    # constant images x=a, y=b: sigma terms vanish -> (2ab + C1) / (a^2 + b^2 + C1)
    a = np.full((1, 16, 16), 100, np.uint8)
    b = np.full((1, 16, 16), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert m.ssim(a, b)[0] == pytest.approx((2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1))


def test_pair_shape_errors():
    with pytest.raises(UserError, match="ref_images"):
        m.psnr(np.zeros((2, 16, 16)), np.zeros((3, 16, 16)))
    with pytest.raises(UserError, match="too small"):
        m.ssim(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)))


def test_feature_stats_needs_two_rows():
    with pytest.raises(UserError):
        m.feature_stats(np.zeros((1, 4)))


# ---- quality_metrics plumbing and the shipped feature network ------------------------------------
import torch  # noqa: E402

from earlyq_sim.workloads.quality import feature_net as fn  # noqa: E402


def _random_net():
    torch.manual_seed(0)
    return fn.FeatureNet().eval()


def test_quality_metrics_with_given_net_and_reference():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(40, 16, 16), dtype=np.uint8)
    net = _random_net()
    feats = fn.extract_features(real, net)
    mu, sigma = m.feature_stats(feats)
    ref = {"mu": mu, "sigma": sigma, "features": feats}
    out = m.quality_metrics(real, real, net=net, reference=ref)
    assert out["fd"] == pytest.approx(0.0, abs=1e-6)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["n_images"] == 40
    assert out["ssim_mean"] == pytest.approx(1.0) and np.all(np.isinf(out["psnr_db"]))
    other = np.clip(real.astype(int) + 30, 0, 255).astype(np.uint8)
    out2 = m.quality_metrics(other, real, net=net, reference=ref)
    assert out2["fd"] > 0 and out2["ssim_mean"] < 1 and out2["psnr_db_mean"] < 30
    with pytest.raises(UserError, match="uint8"):
        m.quality_metrics(real.astype(np.float32), net=net, reference=ref)


def test_feature_input_checks():
    with pytest.raises(UserError, match="16, 16"):
        fn.as_model_input(np.zeros((2, 28, 28), np.uint8))
    x = fn.as_model_input(np.full((2, 16, 16), 255, np.uint8))
    assert x.shape == (2, 1, 16, 16) and float(x.max()) == 1.0


def test_missing_feature_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="train_classifier"):
        fn.load_feature_net(tmp_path / "nope.safetensors")
    with pytest.raises(UserError, match="stats-only"):
        fn.load_reference(tmp_path / "nope.npz")


_SHIPPED = fn.FEATURE_NET_FILE.is_file() and fn.REF_STATS_FILE.is_file()
_DATA = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()


@pytest.mark.skipif(not (_SHIPPED and _DATA), reason="shipped feature net or Fashion-MNIST missing")
def test_shipped_fd_ranks_degradations():
    from earlyq_sim.workloads.training.datasets import load_fmnist, to_uint8

    net, ref = fn.load_feature_net(), fn.load_reference()
    x = load_fmnist("test")[:2000]
    blur = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(x.shape, generator=g) * 2 - 1  # pure uniform-noise images
    levels = 7  # 3-bit pixels
    q3 = torch.round((x + 1) / 2 * levels) / levels * 2 - 1

    def fd(imgs):
        mu, s = m.feature_stats(fn.extract_features(to_uint8(imgs), net))
        return m.frechet_distance(mu, s, ref["mu"], ref["sigma"])

    # calibration (docs/metric_calibration.md, 10000 images): clean 0.12, 3-bit 3.8, blur 55, noise 218
    clean, quant3, blurred, noisy = fd(x), fd(q3), fd(blur), fd(noise)
    assert clean < 1.0 < quant3 < 10 < blurred < 100 < noisy


def test_a_new_metric_is_one_registry_entry():
    """A toy metric registered once shows up in quality_metrics, the run's quality rows, the printed
    table and the experiments' summaries."""
    import pandas as pd

    from earlyq_sim.reports.quality import format_quality_table
    from earlyq_sim.workloads.quality import metric_registry as reg
    from earlyq_sim.workloads.quality.evaluate import _row
    from earlyq_sim.workloads.quality.experiments import summarize

    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, size=(12, 16, 16), dtype=np.uint8)
    other = np.clip(real.astype(int) + 10, 0, 255).astype(np.uint8)
    net = _random_net()
    feats = fn.extract_features(real, net)
    mu, sigma = m.feature_stats(feats)
    ref = {"mu": mu, "sigma": sigma, "features": feats}
    reg.register_metric(reg.Metric("mad", "MAD", ".1f", "grey levels", "lower", True,
                                   lambda x: float(np.abs(x.images.astype(int) - x.ref_images.astype(int)).mean())))
    try:
        out = m.quality_metrics(other, real, net=net, reference=ref)
        mad = float(np.abs(other.astype(int) - real.astype(int)).mean())
        assert out["mad"] == pytest.approx(mad) and 9 < mad <= 10
        assert "mad" not in m.quality_metrics(other, net=net, reference=ref)  # needs the reference run
        row = _row("schedule", "a4", out, 1.0, 2.0)
        assert row["mad"] == pytest.approx(mad)
        text = format_quality_table({"model": "toy", "n_images": 12, "seed": 0, "sampler": "ddim", "steps": 2,
                                     "runs": [row]})
        assert "MAD" in text.splitlines()[1] and format(mad, ".1f") in text.splitlines()[3]
        s = summarize(pd.DataFrame([{"label": "a", "spec": "x", **row}, {"label": "a", "spec": "x", **row}]))
        assert s["mad_mean"].iloc[0] == pytest.approx(mad)
    finally:
        reg.METRICS.pop("mad")


def test_experiment_tables_with_legacy_metric_columns_still_summarise():
    import pandas as pd

    from earlyq_sim.workloads.quality.experiments import summarize
    old = pd.DataFrame([{"label": "fp", "spec": "fp32", "seed": s, "fd": 9.0 + s, "precision": 0.8, "recall": 0.9,
                         "psnr_db": 30.0, "ssim": 0.9} for s in (0, 1)])
    s = summarize(old)
    assert s["psnr_db_mean_mean"].iloc[0] == 30.0 and s["ssim_mean_mean"].iloc[0] == 0.9
    assert s["fd_mean"].iloc[0] == 9.5
