"""Sample grids: uint8 images tiled into one picture (PNG) and a side-by-side figure for the PDF."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile uint8 images ``(N, H, W, C)`` (or ``(N, H, W)``) into one ``(rows*H', cols*W', C)`` array."""
    imgs = np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[..., None]
    n, h, w, c = imgs.shape
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = imgs[i]
    return grid


def save_grid_png(path, images: np.ndarray, ncols: int | None = None, scale: int = 4) -> None:
    """Write a grid PNG (nearest-neighbour upscaled by ``scale`` so small images stay visible)."""
    from earlyq_sim.atomic_io import atomic_write_bytes

    g = image_grid(images, ncols)
    g = np.repeat(np.repeat(g, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    plt.imsave(buf, g[..., 0] if g.shape[-1] == 1 else g, cmap="gray" if g.shape[-1] == 1 else None,
               vmin=0, vmax=255, format="png")
    atomic_write_bytes(path, buf.getvalue())


def draw_sample_grids(fig, axes, images: dict, titles: dict | None = None, max_images: int = 64) -> None:
    """One panel per run (e.g. full precision / baseline / schedule) on ``axes``, first
    ``max_images`` each; titles are wrapped to the panel's width."""
    from earlyq_sim.reports.page import wrap

    for ax, (label, imgs) in zip(axes, images.items()):
        g = image_grid(imgs[:max_images])
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        width = ax.get_position().width
        title = "\n".join(x for part in str((titles or {}).get(label, label)).split("\n")
                          for x in wrap(fig, part, 8, width))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
