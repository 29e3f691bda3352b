"""The quality verdict: paired-bootstrap FD difference and the PSNR floor."""

from pathlib import Path

import numpy as np
import pytest
import torch

from earlyq_sim.workloads.quality import feature_net as fn
from earlyq_sim.workloads.quality.quality_check import judge, paired_fd_delta

_READY = (fn.FEATURE_NET_FILE.is_file() and fn.REF_STATS_FILE.is_file()
          and Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file())


def test_paired_delta_is_zero_for_the_same_images_and_large_for_shifted_ones():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(64, 8))
    mu, sigma = np.zeros(8), np.eye(8)
    d, lo, hi = paired_fd_delta(f, f.copy(), mu, sigma, n_boot=50)
    assert d == 0 and lo == 0 and hi == 0  # paired: every resample differs by exactly zero
    d, lo, hi = paired_fd_delta(f, f + 3.0, mu, sigma, n_boot=50)
    assert d > 50 and lo > 0 and lo <= d <= hi


@pytest.mark.skipif(not _READY, reason="shipped feature net or Fashion-MNIST missing")
def test_verdict_keeps_the_same_images_and_flags_noise():
    from earlyq_sim.workloads.training.datasets import load_fmnist, to_uint8

    nhwc = np.ascontiguousarray(to_uint8(load_fmnist("test")[:64])[..., None])  # (N, 16, 16, 1), the samplers' layout
    same = judge({"full precision": nhwc, "baseline": nhwc, "schedule": nhwc}, n_boot=50)
    assert same.ok and same.fd_delta == 0 and same.psnr_db == np.inf and not same.reasons
    g = torch.Generator().manual_seed(0)
    noisy = np.clip(nhwc.astype(int) + (torch.randint(-60, 61, nhwc.shape, generator=g).numpy()), 0, 255).astype(np.uint8)
    bad = judge({"full precision": nhwc, "baseline": nhwc, "schedule": noisy}, n_boot=50)
    assert not bad.ok and bad.fd_delta > bad.fd_limit and bad.psnr_db < 20
    assert len(bad.reasons) == 2 and "WARNING: image quality is not kept" in bad.warning()
    d = bad.as_dict()
    assert d["ok"] is False and "rule" in d and len(d["fd_delta_ci95"]) == 2
