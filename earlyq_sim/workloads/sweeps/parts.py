"""A sweep's part files on disk: one writer at a time, and every part checked before it is trusted.

* Lock: ``<out>/.lock`` (created exclusively, holding the writer's pid and host) refuses a
  second sweep on the same folder with a one-line error; a lock whose process is gone (killed
  run) is stale and taken over.
* Checksums: each ``part-<hash>.parquet`` is followed by ``part-<hash>.parquet.sha256`` (the
  SHA-256 of the part's bytes, written after it). A part without it, or whose bytes no longer
  match it (a corrupted page, column data or header), is removed with a warning, so its points
  are computed again; merging reads only verified parts.
"""

from __future__ import annotations

import hashlib
import os
import socket
import warnings
from pathlib import Path

import pandas as pd

from earlyq_sim.atomic_io import atomic_write_bytes, file_sha256, write_parquet
from earlyq_sim.errors import UserError

LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class SweepLock:
    """Context manager holding ``<folder>/.lock`` for this process."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK
        self.me = f"{os.getpid()} {socket.gethostname()}"

    def __enter__(self) -> "SweepLock":
        for _ in range(2):  # a stale lock is removed once, then taken
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.path.read_text(errors="replace").split()
                pid = int(holder[0]) if holder and holder[0].isdigit() else -1
                host = holder[1] if len(holder) > 1 else ""
                if pid > 0 and (host != socket.gethostname() or _alive(pid)):
                    raise UserError(f"{self.path.parent}: another sweep (pid {pid} on {host or '?'}) is writing "
                                    "here; wait for it to finish or use another --out") from None
                self.path.unlink(missing_ok=True)  # its process is gone: a killed run's lock
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(self.me + "\n")
            return self
        raise UserError(f"{self.path}: cannot take the sweep lock; remove it if no sweep is running")

    def __exit__(self, *exc) -> None:
        try:
            if self.path.read_text().strip() == self.me:
                self.path.unlink()
        except OSError:
            pass


def part_name(keys: list[str]) -> str:
    """File name of the part holding these point keys."""
    return f"part-{hashlib.sha256(chr(10).join(keys).encode()).hexdigest()[:16]}.parquet"


def _digest_path(part: Path) -> Path:
    return part.with_name(part.name + ".sha256")


def write_part(path: Path, df: pd.DataFrame) -> None:
    """The part, then its checksum (a part without one is not trusted)."""
    write_parquet(path, df)
    atomic_write_bytes(_digest_path(path), (file_sha256(path) + "\n").encode())


def verified_parts(parts_dir: Path) -> list[Path]:
    """Parts whose bytes match their checksum; the others are removed (their points rerun)."""
    good = []
    for f in sorted(parts_dir.glob("part-*.parquet")):
        d = _digest_path(f)
        try:
            ok = d.read_text().strip() == file_sha256(f)
        except OSError:
            ok = False
        if ok:
            good.append(f)
        else:
            warnings.warn(f"earlyq-sim sweep: part {f.name} fails its checksum or has none; its points run again",
                          stacklevel=2)
            f.unlink(missing_ok=True)
            d.unlink(missing_ok=True)
    return good


def clean_temps(folder: Path) -> None:
    """Remove temporary files a killed run left behind (atomic writers' ``.NAME.XXXX.tmp``)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def done_keys(parts_dir: Path) -> set[str]:
    """Point keys in verified parts; a part that passes its checksum but cannot be read is removed."""
    keys: set[str] = set()
    for f in verified_parts(parts_dir):
        try:
            keys.update(pd.read_parquet(f, columns=["point_key"])["point_key"])
        except Exception as e:  # noqa: BLE001 - any read failure means "not done"
            warnings.warn(f"earlyq-sim sweep: dropping unreadable part {f} ({e})", stacklevel=2)
            f.unlink(missing_ok=True)
            _digest_path(f).unlink(missing_ok=True)
    return keys


def remove_parts(parts_dir: Path) -> None:
    for f in list(parts_dir.glob("part-*.parquet")) + list(parts_dir.glob("part-*.parquet.sha256")):
        f.unlink(missing_ok=True)
