"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (IDX gzip files), offline only.

IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header of a
4-byte magic number ``0x00 0x00 <dtype> <ndim>`` followed by ``ndim`` 32-bit sizes, then the
raw data. Images are ``0x00000803`` (uint8, 3 dims), labels ``0x00000801`` (uint8, 1 dim).
Nothing here downloads; missing or corrupt files raise a one-line :class:`UserError`.
"""

from __future__ import annotations

import gzip
import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earlyq_sim.errors import UserError

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_DIR_ENV = "EARLYQ_FMNIST_DIR"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _hint() -> str:
    return f"install Debian package '{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}) or pass data_dir"


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one gzip (or raw) IDX file into a uint8 array; check magic number and size."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; {_hint()}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read IDX gzip ({exc}); {_hint()}") from None
    if len(raw) < 4:
        raise UserError(f"{path}: too short for an IDX header; {_hint()}")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise UserError(f"{path}: IDX magic 0x{magic:08x}, expected 0x{expected_magic:08x}; {_hint()}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header; {_hint()}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise UserError(f"{path}: IDX payload has {len(raw) - header} bytes, header says {count}; {_hint()}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip IDX file (used by tests and for small exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir``, else ``$EARLYQ_FMNIST_DIR``, else the Debian install location."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    path = Path(data_dir)
    if not path.is_dir():
        raise UserError(f"{path}: Fashion-MNIST directory not found; {_hint()}")
    return path


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"split: {split!r} is not allowed; allowed {', '.join(SPLITS)}")
    return split


@lru_cache(maxsize=4)
def _load_raw(split: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = SPLITS[split]
    images = read_idx(Path(data_dir) / img_name, IMAGES_MAGIC)
    labels = read_idx(Path(data_dir) / lbl_name, LABELS_MAGIC)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise UserError(f"{data_dir}: {split} images {images.shape} and labels {labels.shape} do not match; {_hint()}")
    return images, labels


def load_fmnist_uint8(split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Raw images ``(N, 28, 28)`` uint8 and labels ``(N,)`` uint8 of one split."""
    return _load_raw(check_split(split), str(resolve_data_dir(data_dir)))


def resize_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Antialiased resize of ``(N, 1, H, W)`` float images; area pooling when the size divides.

    28 -> 16 does not divide, so bilinear with ``antialias=True`` (a triangle filter widened by
    the scale factor) is used; it avoids the aliasing of plain bilinear sampling.
    """
    h = images.shape[-1]
    if resolution == h:
        return images
    if h % resolution == 0:
        return F.avg_pool2d(images, h // resolution)
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear",
                         antialias=True, align_corners=False)


def load_fmnist(split: str = "train", resolution: int = 16, data_dir=None,
                with_labels: bool = False):
    """Fashion-MNIST as float32 ``(N, 1, resolution, resolution)`` in [-1, 1].

    With ``with_labels=True`` returns ``(images, labels)`` with labels int64 ``(N,)``.
    """
    if int(resolution) != resolution or not 4 <= resolution <= 28:
        raise UserError(f"resolution: {resolution!r} is not allowed; allowed integers 4..28")
    raw, labels = load_fmnist_uint8(split, data_dir)
    x = torch.from_numpy(raw.astype(np.float32) / 255.0).unsqueeze(1)
    x = resize_images(x, int(resolution)).clamp(0.0, 1.0) * 2.0 - 1.0
    if with_labels:
        return x, torch.from_numpy(labels.astype(np.int64))
    return x


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Model-range images in [-1, 1] ``(N, 1, H, W)`` -> uint8 ``(N, H, W)`` (round to nearest)."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).squeeze(1).cpu().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W)`` or ``(N, 1, H, W)`` -> float ``(N, 1, H, W)`` in [-1, 1]."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return x / 127.5 - 1.0
