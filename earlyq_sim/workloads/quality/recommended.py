"""Schedules the reproduction found to keep quality, per model: what `run` uses by default.

docs/reproduction.md (fmnist16, 3 seeds x 256 images, 20 DDIM steps): with 16-bit attention
probabilities and the input/output convs plus the decoder's skip-concat 1x1 convs held at 8 bits,
4-bit activations on the first 20% of the steps give FD 11.44 +- 0.19 against 10.85 +- 0.47 for
W8A8 (same held layers), while the old default (4 bits on the first 40%, nothing held) gave FD 84.
The same layers exist in every built-in UNet, so the cost-only models use the same setting
(its speedup is then what the quality-preserving schedule buys, not an optimistic one).
"""

from __future__ import annotations

RECOMMENDED = "a4@0-0.2,a8@0.2-1,w8,p16,k8:io|*conv_shortcut"
SOURCE = "docs/reproduction.md: FD 11.44 +- 0.19 vs 10.85 +- 0.47 for W8A8,p16 (fmnist16, 3 seeds x 256 images)"
#: built-in models whose UNets hold conv_in, conv_out and decoder conv_shortcut layers
MODELS = ("fmnist16", "ddpm-cifar10", "ldm4-bedroom", "sd-v1.5", "sdxl")


def recommended_schedule(model: str) -> str | None:
    """The quality-preserving default schedule of a built-in model, or None (use the two-stage default)."""
    return RECOMMENDED if model in MODELS else None
