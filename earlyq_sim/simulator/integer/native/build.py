"""Building and trusting the compiled kernel library (``igemm.c`` -> ``igemm-<key>.so``).

A shared library is code: loading one that someone else planted runs their code. So the library
is only built into and loaded from a private directory (owned by this user, not a symlink,
writable by nobody else), and a library file is loaded only if it is a regular file owned by
this user, writable by nobody else, with the SHA-256 this process recorded beside it when it
built it (``<library>.sha256``). Directories tried in order: ``$EARLYQ_NATIVE_CACHE`` or
``~/.cache/earlyq-sim/native``; ``<tmp>/earlyq-sim-native-<uid>``; a fresh ``mkdtemp`` directory
(private by construction, rebuilt each process). A directory that fails the checks is skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from earlyq_sim.atomic_io import atomic_path, atomic_write_bytes, file_sha256

SRC = Path(__file__).with_name("igemm.c")


def cache_dir() -> Path:
    env = os.environ.get("EARLYQ_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "earlyq-sim" / "native"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def private_dir(d: Path) -> bool:
    """Create ``d`` (0700) if missing; True when it is a real directory we alone can write."""
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(d)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _private(st)


def trusted_library(path: Path) -> bool:
    """A library file this user built: regular, ours, not writable by others, hash as recorded."""
    try:
        st = os.lstat(path)
        rec = path.with_name(path.name + ".sha256")
        if not (stat.S_ISREG(st.st_mode) and _private(st) and _private(os.lstat(rec))):
            return False
        return rec.read_text().strip() == file_sha256(path)
    except OSError:
        return False


def library_name(cc: str, flags: list[str]) -> str:
    """File name of the library for this source, compiler and flags."""
    key = hashlib.sha256(SRC.read_bytes() + " ".join([cc] + flags).encode()).hexdigest()[:16]
    return f"igemm-{key}.so"


def compile_library(cc: str, flags: list[str], out: Path) -> None:
    """Compile to ``out`` atomically and record its hash beside it (hash written last)."""
    with atomic_path(out, suffix=".so") as tmp:  # concurrent builders each write their own temp file
        r = subprocess.run([cc, *flags, str(SRC), "-o", str(tmp)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            err = r.stderr.strip().splitlines()
            raise RuntimeError(f"{cc} failed: {err[-1] if err else r.returncode}")
        digest = file_sha256(tmp)
    atomic_write_bytes(out.with_name(out.name + ".sha256"), (digest + "\n").encode())


def candidate_dirs() -> list[Path]:
    return [cache_dir(), Path(tempfile.gettempdir()) / f"earlyq-sim-native-{os.getuid()}"]


def build(flag_sets: list[list[str]]) -> Path:
    """Path of a trusted library, compiling it if needed (the first flag set that compiles)."""
    cc = os.environ.get("CC", "cc")
    err: Exception | None = None
    for flags in flag_sets:
        name = library_name(cc, flags)
        for d in candidate_dirs() + [None]:
            if d is None:  # last resort: a fresh private directory for this process
                d = Path(tempfile.mkdtemp(prefix="earlyq-sim-native-"))
            elif not private_dir(d):
                err = PermissionError(f"{d}: not a private directory of this user; skipped")
                continue
            out = d / name
            if trusted_library(out):
                return out
            try:
                compile_library(cc, flags, out)
                return out
            except OSError as e:            # this directory: try the next one
                err = e
            except (RuntimeError, subprocess.SubprocessError) as e:     # the compiler: next flags
                err = e
                break
    raise RuntimeError(str(err))
