"""Train the FD feature network on Fashion-MNIST 16x16 and write the test-split reference stats.

Run: ``python -m earlyq_sim.workloads.training.train_classifier`` (about 10 min on one core).
Reference statistics are computed on the test images after the same uint8 round trip that
generated images take (model range -> uint8 -> features), so a perfect generator scores ~0.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earlyq_sim.atomic_io import atomic_path
from earlyq_sim.workloads.training.datasets import load_fmnist, to_uint8
from earlyq_sim.workloads.quality.metrics import knn_radii
from earlyq_sim.workloads.quality.feature_net import (FEATURE_NET_FILE, REF_STATS_FILE, RESOLUTION,
                                              FeatureNet, extract_features, load_feature_net)


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of a classifier training run (accuracy in [0, 1], time in seconds)."""

    epochs: int
    test_accuracy: float
    seconds: float
    weights: str


@torch.no_grad()
def accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on float images ``x`` and int labels ``y``."""
    net.eval()
    hits = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / len(x)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-1 pixel shift (reflect-padded); cheap regularisation."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return padded[:, :, 1 + dy:1 + dy + x.shape[2], 1 + dx:1 + dx + x.shape[3]]


def train_classifier(out: str | os.PathLike = FEATURE_NET_FILE, epochs: int = 8, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, threads: int = 1, data_dir=None,
                     log=print) -> ClassifierResult:
    """Train :class:`FeatureNet` (AdamW, cosine LR) and save it as safetensors at ``out``."""
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = load_fmnist("train", RESOLUTION, data_dir, with_labels=True)
    x_test, y_test = load_fmnist("test", RESOLUTION, data_dir, with_labels=True)
    net = FeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    t0 = time.monotonic()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(net(_augment(x_train[idx], gen)), y_train[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(net, x_test, y_test)
        log(f"epoch {epoch + 1}/{epochs}: loss {float(loss):.3f} test acc {acc:.4f} ({time.monotonic() - t0:.0f}s)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:  # readable like any new file (safetensors writes 0600)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp),
                  metadata={"test_accuracy": f"{acc:.4f}", "epochs": str(epochs)})
    return ClassifierResult(epochs, acc, time.monotonic() - t0, str(out))


def write_reference_stats(out: str | os.PathLike = REF_STATS_FILE, net_path=None, data_dir=None) -> dict:
    """Features of the uint8-rounded test split: save ``mu``, ``sigma`` (float64), ``features``
    (float16) and their k=3 nearest-neighbour radii (for precision/recall)."""
    net = load_feature_net(net_path)
    test_u8 = to_uint8(load_fmnist("test", RESOLUTION, data_dir))
    feats = extract_features(test_u8, net)
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    out = Path(out)
    f16 = feats.astype(np.float16)
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez_compressed(tmp, mu=mu, sigma=sigma, features=f16, radii_k3=knn_radii(f16.astype(np.float64), 3))
    return {"mu": mu, "sigma": sigma, "n": len(feats)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m earlyq_sim.workloads.training.train_classifier",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(FEATURE_NET_FILE))
    p.add_argument("--stats-out", default=str(REF_STATS_FILE))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--stats-only", action="store_true", help="only recompute the reference statistics")
    a = p.parse_args(argv)
    if not a.stats_only:
        res = train_classifier(a.out, epochs=a.epochs, threads=a.threads, data_dir=a.data_dir)
        print(f"test accuracy {res.test_accuracy:.4f} after {res.epochs} epochs ({res.seconds:.0f}s) -> {res.weights}")
    stats = write_reference_stats(a.stats_out, a.out, a.data_dir)
    print(f"reference stats of {stats['n']} test images -> {a.stats_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
