"""Run every benchmark script in this folder in turn; results are printed (record them in RESULTS.md)."""

import platform
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent


def main() -> int:
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}")
    rc = 0
    for script in sorted(here.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        rc |= subprocess.call([sys.executable, str(script)])
    return rc


if __name__ == "__main__":
    sys.exit(main())
