"""What a report is built from: a `run --out` folder or a `sweep --out` folder, read back from
disk (or handed over in memory by `run`), checked field by field.

A folder's kind is decided by a registry of detectors (first match wins): a run folder holds
``summary.json``; a sweep folder holds ``results.parquet`` or ``results.csv``. Anything missing
or unreadable is a one-line :class:`UserError` naming the file and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from earlyq_sim.errors import UserError

SAMPLE_RUNS = ("full precision", "baseline", "schedule")  # quality runs, in display order


@dataclass
class RunData:
    """A cost run (and its quality lane, if it ran): summary dict and the tables `run` writes."""

    summary: dict
    per_stage: pd.DataFrame
    per_step: pd.DataFrame
    per_layer: pd.DataFrame
    quality: pd.DataFrame | None = None
    images: dict = field(default_factory=dict)  # run label -> uint8 (N, H, W, C)
    source: str = ""

    kind = "run"


@dataclass
class SweepData:
    """A sweep's results table (one row per point) and its manifest, if there is one."""

    results: pd.DataFrame
    manifest: dict = field(default_factory=dict)
    source: str = ""

    kind = "sweep"


def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: cannot be read as JSON ({type(e).__name__}); rerun the command that wrote it") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: top level is {type(d).__name__}; allowed a JSON object")
    return d


def _read_table(folder: Path, stem: str, required: tuple[str, ...]) -> pd.DataFrame:
    """``folder/stem.parquet`` (else ``.csv``) with ``required`` columns."""
    for suffix in (".parquet", ".csv"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            try:
                df = pd.read_parquet(p) if suffix == ".parquet" else pd.read_csv(p)
            except Exception as e:  # noqa: BLE001 - a damaged table is the user's file
                raise UserError(f"{p}: cannot be read as a table ({type(e).__name__})") from None
            missing = [c for c in required if c not in df.columns]
            if missing:
                raise UserError(f"{p}: column {missing[0]!r} is missing; allowed a table written by earlyq-sim")
            return df
    raise UserError(f"{folder}: no {stem}.parquet or {stem}.csv; allowed a `run --out` or `sweep --out` folder")


def require(d: dict, dotted: str, where: str, kind=None):
    """``d['a']['b']`` for ``dotted='a.b'``, or a UserError naming the file and field."""
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise UserError(f"{where}: field {dotted!r} is missing; allowed a summary.json written by earlyq-sim run")
        cur = cur[part]
    if kind is not None and (not isinstance(cur, kind) or isinstance(cur, bool)):
        raise UserError(f"{where}: field {dotted!r} is {type(cur).__name__}; allowed {getattr(kind, '__name__', kind)}")
    return cur


SUMMARY_FIELDS = {"model.name": str, "model.params": int, "model.macs_per_step": int, "arch.name": str,
                  "arch.clock_mhz": (int, float), "reference_arch.name": str, "schedule.label": str,
                  "baseline.label": str, "total.steps": int, "total.latency_ms": (int, float),
                  "total.energy_mj": (int, float), "total.baseline_latency_ms": (int, float),
                  "total.baseline_energy_mj": (int, float), "stages": list, "basis.normalisation": str}
STAGE_COLUMNS = ("stage", "start", "end", "steps", "act_bits", "weight_bits", "prob_bits", "latency_ms", "energy_mj",
                 "baseline_latency_ms", "baseline_energy_mj", "speedup", "compute_speedup", "energy_saving",
                 "speedup_vs_ref", *(f"energy_{p}_mj" for p in ("compute", "sram", "dram", "leak")))
STEP_COLUMNS = ("step", "act_bits", "latency_ms", "energy_mj", "cum_latency_ms", "baseline_latency_ms", "speedup")
LAYER_COLUMNS = ("stage", "name", "op", "unit", "M", "N", "K", "macs", "act_bits", "cycles", "compute_cycles",
                 "mem_cycles", "bound", "traffic_x_compulsory", "mapping", "energy_uj", "baseline_cycles", "speedup")
SWEEP_COLUMNS = ("model", "arch", "schedule", "baseline", "num_steps", "latency_ms", "energy_mj", "speedup")


def check_summary(summary: dict, where: str) -> dict:
    for dotted, kind in SUMMARY_FIELDS.items():
        require(summary, dotted, where, kind)
    return summary


def load_run(folder: Path) -> RunData:
    """A `run --out` folder: summary.json, per_stage/per_step/per_layer tables, quality.csv and
    samples_*.npy when the quality lane ran."""
    summary = check_summary(_read_json(folder / "summary.json"), str(folder / "summary.json"))
    data = RunData(summary, _read_table(folder, "per_stage", STAGE_COLUMNS),
                   _read_table(folder, "per_step", STEP_COLUMNS), _read_table(folder, "per_layer", LAYER_COLUMNS),
                   source=str(folder))
    if (folder / "quality.csv").is_file():
        data.quality = _read_table(folder, "quality", ("run", "schedule"))
    for label in SAMPLE_RUNS:
        p = folder / f"samples_{label.replace(' ', '_')}.npy"
        if p.is_file():
            try:
                imgs = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UserError(f"{p}: cannot be read as a .npy array ({type(e).__name__})") from None
            if imgs.ndim != 4 or imgs.dtype != np.uint8:
                raise UserError(f"{p}: shape {imgs.shape} dtype {imgs.dtype}; allowed uint8 (N, H, W, C)")
            data.images[label] = imgs
    return data


def load_sweep(folder: Path) -> SweepData:
    """A `sweep --out` folder: results.parquet (else .csv) and manifest.json if present."""
    df = _read_table(folder, "results", SWEEP_COLUMNS)
    if df.empty:
        raise UserError(f"{folder}: the results table has no rows; allowed a sweep with at least one point")
    manifest = _read_json(folder / "manifest.json") if (folder / "manifest.json").is_file() else {}
    return SweepData(df, manifest, str(folder))


KINDS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], object]]] = {
    "run": (lambda d: (d / "summary.json").exists(), load_run),
    "sweep": (lambda d: (d / "results.parquet").exists() or (d / "results.csv").exists(), load_sweep),
}


def load_report_input(folder) -> RunData | SweepData:
    """Read a run or sweep folder (kind from :data:`KINDS`), or a one-line UserError."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such folder; allowed a `run --out` or `sweep --out` folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; allowed a `run --out` or `sweep --out` folder")
    for detect, load in KINDS.values():
        if detect(folder):
            return load(folder)
    raise UserError(f"{folder}: neither summary.json (a run) nor results.csv/parquet (a sweep); allowed a "
                    "`run --out` or `sweep --out` folder")
