"""Capture the CLI's outputs on a fixed set of commands, or compare two captures.

Used to prove that a refactor changes no result: capture before, capture after, compare.

    python benchmarks/output_snapshot.py capture DIR [--quick]
    python benchmarks/output_snapshot.py compare BEFORE AFTER

``capture`` runs the commands with whatever ``earlyq_sim`` is importable (it prints which file)
and writes each command's stdout (``NN_name.stdout``) and ``--out`` directory under DIR.
``compare`` checks every file byte for byte except the fields that measure wall time or name
the output path (``VOLATILE``, ``SECONDS``, the quality table's two time columns, the capture
folder's own path): those are masked before comparing. PDFs are compared without their creation
date, and by their text (timings masked) when the bytes differ.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

COMMANDS = [
    ("archs", ["archs"]),
    ("models", ["models"]),
    ("demo", ["run", "--arch", "stripes", "--out", "{out}"]),
    ("sweep", ["sweep", "examples/sweeps/ddpm_quick.yaml", "--out", "{out}"]),
    *[(f"sd_{a}", ["run", "--model", "sd-v1.5", "--arch", a, "--out", "{out}"])
      for a in ("stripes", "loom", "bitfusion", "int8-systolic")],
    ("sample", ["sample", "--n", "16", "--schedule", "a4@0-0.2,a8@0.2-1,p16", "--keep", "io", "--out", "{out}"]),
    ("trace", ["trace", "--model", "sd-v1.5"]),
    ("export_scalesim", ["export", "--model", "ddpm-cifar10", "--format", "scalesim", "--out", "{out}"]),
    ("export_zigzag", ["export", "--model", "ddpm-cifar10", "--format", "zigzag", "--out", "{out}"]),
]
QUICK = {"archs", "models", "sweep", "sd_stripes", "trace", "export_scalesim", "export_zigzag"}

# wall-clock measurements and run-specific paths: masked before comparing
VOLATILE = re.compile(r"(time|seconds|_s\b|_s\"|images_per_s|elapsed|wall|\bs\)|it/s|out/|/tmp/|"
                      r"images/s|calib.*\bs\b|date_utc|commit|dirty|command_line|provenance:|^command:)", re.I)
NUM = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")
SECONDS = re.compile(r"\d+(\.\d+)? s\b|\d+(\.\d+)? images/s")  # "in 6.3 s", "sampling 7.6 s (2.1 images/s"


def capture(dest: Path, quick: bool) -> int:
    import earlyq_sim
    print(f"earlyq_sim from {earlyq_sim.__file__}")
    dest.mkdir(parents=True, exist_ok=True)
    runner = ("import sys; from earlyq_sim.cli import main; sys.argv[0] = 'earlyq-sim'; "
              "sys.exit(main())")
    bad = 0
    for i, (name, args) in enumerate(COMMANDS):
        if quick and name not in QUICK:
            continue
        out = dest / name
        argv = [a.replace("{out}", str(out)) for a in args]
        res = subprocess.run([sys.executable, "-c", runner, *argv], capture_output=True, text=True)
        (dest / f"{i:02d}_{name}.stdout").write_text(res.stdout)
        (dest / f"{i:02d}_{name}.rc").write_text(f"{res.returncode}\n")
        print(f"{name}: exit {res.returncode}")
        bad += res.returncode != 0
        if res.returncode:
            print(res.stderr[-2000:])
    return 1 if bad else 0


def _mask_text(text: str) -> str:
    lines, timed_table = [], False
    for line in text.splitlines():
        if "sample s" in line and "calib s" in line:  # quality table: its last two columns are seconds
            timed_table = True
        elif timed_table and line.strip() and not line.startswith(("FD vs", "sample s:", "-")):
            line = " ".join(line.split()[:-2])
        elif not line.strip():
            timed_table = False
        line = SECONDS.sub("# s", line)
        lines.append(NUM.sub("#", line) if VOLATILE.search(line) else line)
    return "\n".join(lines)


def _mask_json(obj):
    if isinstance(obj, dict):
        return {k: ("#" if VOLATILE.search(k) else _mask_json(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mask_json(v) for v in obj]
    if isinstance(obj, str):
        return _mask_text(obj)
    return obj


def _mask_csv(text: str) -> list:
    import csv
    import io
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return rows
    vol = [bool(VOLATILE.search(h)) for h in rows[0]]
    return [rows[0]] + [["#" if i < len(vol) and vol[i] else c for i, c in enumerate(r)] for r in rows[1:]]


def _read(p: Path, root: Path) -> str:
    return p.read_text().replace(str(root), "<DIR>")  # each capture names its own output folders


def _pdf_text(p: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True, text=True, check=True).stdout


def _same(a: Path, b: Path, ra: Path, rb: Path) -> bool:
    suf = a.suffix
    if suf == ".json":
        return _mask_json(json.loads(_read(a, ra))) == _mask_json(json.loads(_read(b, rb)))
    if suf == ".csv":
        return _mask_csv(_read(a, ra)) == _mask_csv(_read(b, rb))
    if suf in (".stdout", ".md", ".txt"):
        return _mask_text(_read(a, ra)) == _mask_text(_read(b, rb))
    if suf == ".pdf":
        strip = re.compile(rb"/CreationDate \(.*?\)|/ModDate \(.*?\)")
        if strip.sub(b"", a.read_bytes()) == strip.sub(b"", b.read_bytes()):
            return True
        if shutil.which("pdftotext") is None:  # poppler-utils: compares the text when bytes differ
            print(f"note: {a.name}: bytes differ and pdftotext is missing; install poppler-utils")
            return False
        # timings printed on a page change the bytes: compare the pages' text with them masked
        return _mask_text(_pdf_text(a)) == _mask_text(_pdf_text(b))
    if suf == ".parquet":
        import pandas as pd
        da, db = pd.read_parquet(a), pd.read_parquet(b)
        keep = [c for c in da.columns if not VOLATILE.search(c)]
        return list(da.columns) == list(db.columns) and da[keep].equals(db[keep])
    return filecmp.cmp(a, b, shallow=False)


def compare(a: Path, b: Path) -> int:
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    bad = 0
    for rel in sorted(set(fa) ^ set(fb)):
        print(f"only in {'before' if rel in fa else 'after'}: {rel}")
        bad += 1
    for rel in sorted(set(fa) & set(fb)):
        if not _same(a / rel, b / rel, a, b):
            print(f"differs: {rel}")
            bad += 1
    print(f"{len(set(fa) & set(fb))} files compared, {bad} differences")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="run the commands and store their outputs")
    c.add_argument("dest", type=Path)
    c.add_argument("--quick", action="store_true", help="cost-lane commands only (seconds)")
    d = sub.add_parser("compare", help="compare two captures")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    return capture(args.dest, args.quick) if args.cmd == "capture" else compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
