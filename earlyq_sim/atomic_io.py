"""Atomic writers: any file (``atomic_path``), bytes, and result tables (CSV, Parquet, JSON, NPY).

A user's results are never half-written: each file is written to a temporary sibling and moved
into place with ``os.replace``, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas only where a table is written: the CLI checks its input before it loads
    import pandas as pd


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for any writer (a library's ``save(path)``, a compiler's
    ``-o``); moved onto ``path`` when the block succeeds, deleted when it raises. ``suffix`` ends
    the temporary name (for writers that append an extension, like ``np.savez``). The file gets
    the permissions a plain new file would have (mkstemp and safetensors make 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_out_dir(path: str | os.PathLike) -> Path:
    """Refuse an output folder that cannot be written, before any work starts (one-line error)."""
    from earlyq_sim.errors import UserError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: exists and is not a folder; allowed a folder path")
    _check_writable(path if path.exists() else path.parent, path)
    return path


def check_out_file(path: str | os.PathLike) -> Path:
    """Refuse an output file that cannot be written, before any work starts (one-line error)."""
    from earlyq_sim.errors import UserError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path}: is a folder; allowed a file path")
    _check_writable(path.parent, path)
    return path


def _check_writable(folder: Path, path: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a writable folder."""
    from earlyq_sim.errors import UserError

    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"--out {path}: {folder} is not a writable folder")


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder for a whole set of outputs, swapped in for ``path`` only when the
    block succeeds: ``path`` then holds this run, or (killed or failed) still the previous one,
    never a mix of two runs."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "run")  # two renames: the gap is not a mix, only a missing folder
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (checksums of parts, weights, libraries)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def to_json(obj, indent: int = 2) -> str:
    """JSON text with NumPy scalars converted and NaN/inf written as null."""
    return json.dumps(_jsonable(obj), indent=indent, allow_nan=False)


def write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (to_json(obj) + "\n").encode())


def write_csv(path, df: pd.DataFrame) -> Path:
    return atomic_write_bytes(path, df.to_csv(index=False).encode())


def write_parquet(path, df: pd.DataFrame) -> Path:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def write_npy(path, array: np.ndarray) -> Path:
    """Write a NumPy array as ``.npy`` atomically."""
    buf = io.BytesIO()
    np.save(buf, array)
    return atomic_write_bytes(path, buf.getvalue())


def write_table(folder, stem: str, df: pd.DataFrame, formats=("csv", "parquet")) -> list[Path]:
    """Write ``df`` as ``folder/stem.<fmt>`` for each format; returns the paths written."""
    out = []
    for fmt in formats:
        p = Path(folder) / f"{stem}.{fmt}"
        out.append(write_csv(p, df) if fmt == "csv" else write_parquet(p, df))
    return out
