"""The small Fashion-MNIST classifier whose penultimate features define the Frechet distance (FD).

Inception weights are a download (unavailable offline), so the project trains its own domain
classifier at 16x16 (``train_classifier.py``) and ships it with reference statistics of the
test split: FD numbers are comparable between runs of this tool, not with published FIDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from earlyq_sim.errors import UserError
from earlyq_sim.models.registry import WEIGHTS_DIR

FEATURE_NET_FILE = WEIGHTS_DIR / "fmnist16_featnet.safetensors"
REF_STATS_FILE = WEIGHTS_DIR / "fmnist16_test_stats.npz"
FEATURE_DIM = 128
RESOLUTION = 16


class FeatureNet(nn.Module):
    """4 conv layers (BatchNorm, ReLU, two 2x2 max-pools) -> 128-d ReLU features -> 10 logits.

    Input: float ``(N, 1, 16, 16)`` in [-1, 1].
    """

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM, num_classes: int = 10):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, width), *block(width, width), nn.MaxPool2d(2),          # 8x8
            *block(width, 2 * width), *block(2 * width, 2 * width), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(2 * width * 16, feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (post-ReLU) 128-d features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))


def load_feature_net(path: str | os.PathLike | None = None) -> FeatureNet:
    """The shipped feature network in eval mode; one-line UserError if the file is missing."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path) if path else FEATURE_NET_FILE
    if not path.is_file():
        raise UserError(f"{path}: feature network not found; train it with "
                        f"'python -m earlyq_sim.workloads.training.train_classifier --out {path}'")
    net = FeatureNet()
    try:
        net.load_state_dict(load_file(str(path)))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise UserError(f"{path}: not a FeatureNet safetensors file ({type(exc).__name__}); retrain it") from None
    return net.eval().requires_grad_(False)


def as_model_input(images) -> torch.Tensor:
    """uint8 ``(N, H, W)`` / ``(N, 1, H, W)`` -> float ``(N, 1, H, W)`` in [-1, 1]; floats pass through.

    Float inputs must already be in [-1, 1]. The resolution must be 16x16.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise UserError(f"images: numpy dtype {images.dtype} not allowed; allowed uint8 (0..255)")
        x = torch.from_numpy(images.astype(np.float32)) / 127.5 - 1.0
    elif isinstance(images, torch.Tensor):
        x = images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()
    else:
        raise UserError(f"images: type {type(images).__name__} not allowed; allowed numpy uint8 or torch tensor")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, RESOLUTION, RESOLUTION):
        raise UserError(f"images: shape {tuple(images.shape)} not allowed; allowed (N, 16, 16) or (N, 1, 16, 16)")
    return x


@torch.no_grad()
def extract_features(images, net: FeatureNet | None = None, batch_size: int = 1000) -> np.ndarray:
    """Penultimate features ``(N, 128)`` float64 of images (uint8 0..255 or float in [-1, 1])."""
    net = net if net is not None else load_feature_net()
    x = as_model_input(images)
    out = [net.features(x[i:i + batch_size]).double() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, FEATURE_DIM))


def load_reference(path: str | os.PathLike | None = None) -> dict:
    """Shipped test-split reference: ``mu`` (128,), ``sigma`` (128, 128), ``features`` (N, 128),
    and ``radii_k3`` (N,), the k=3 nearest-neighbour radii of ``features`` for precision/recall."""
    path = Path(path) if path else REF_STATS_FILE
    if not path.is_file():
        raise UserError(f"{path}: reference statistics not found; create them with "
                        f"'python -m earlyq_sim.workloads.training.train_classifier --stats-only'")
    with np.load(path) as z:
        return {"mu": z["mu"].astype(np.float64), "sigma": z["sigma"].astype(np.float64),
                "features": z["features"].astype(np.float64),
                **{k: z[k].astype(np.float64) for k in z.files if k.startswith("radii_k")}}
