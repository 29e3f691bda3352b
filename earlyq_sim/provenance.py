"""Where a result came from: tool version, git commit, date, command line, Python and NumPy.

Written into every run's ``summary.json`` and report (with the full resolved arch specs and the
schedule), so a table found on a disk months later says what produced it.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import subprocess
import sys
from pathlib import Path

_COMMAND_LINE: list[str] | None = None  # set by the CLI entry point; None when called from Python


def set_command_line(argv: list[str]) -> None:
    """Record the command line of this process (the CLI calls this once)."""
    global _COMMAND_LINE
    _COMMAND_LINE = list(argv)


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("earlyq-sim")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def git_state() -> dict:
    """Commit and whether the work tree had changes, when the package runs from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=5, check=True).stdout.strip()
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance() -> dict:
    """The provenance block of a summary (JSON-ready)."""
    import numpy as np

    return {"tool": "earlyq-sim", "version": tool_version(), "git": git_state(),
            "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command_line": None if _COMMAND_LINE is None else shlex.join(_COMMAND_LINE),
            "python": platform.python_version(), "numpy": np.__version__, "platform": sys.platform}
