"""Image quality in sweeps: one cell per (model, schedule, baseline, quality settings), cached on disk.

Quality does not depend on the arch, so a sweep with ``metrics: [cost, quality]`` computes it
once per *quality cell* and joins the cell's columns to every arch point of that model and
schedule. A cell runs the same quality lane as ``earlyq-sim run`` (``evaluate_quality``: full
precision, the baseline and the schedule, integer emulation, same seeds) once per seed, pools the
images over seeds, measures every registered metric (``quality_metrics``) and judges the
schedule (``quality_check.judge``).

Each cell is ``<out>/quality/cell-<key>.json``, written atomically; ``key`` hashes the cell's
fingerprint: model, SHA-256 of its weights, of the feature network and of the reference
statistics, the schedule and baseline at the quality step count, every quality setting, the
tool version and ``QUALITY_VERSION``. A rerun reuses a cell whose file holds that fingerprint and
whose row matches its stored digest; a corrupt file, or one from other settings, is warned about
and computed again (its file is replaced).

Models without trained weights and a feature network (``quality_supported``) get empty (NaN)
quality columns and one note.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from earlyq_sim.atomic_io import file_sha256, to_json, write_json
from earlyq_sim.schedule import PrecisionSchedule
from earlyq_sim.workloads.quality.metric_registry import METRICS
from earlyq_sim.workloads.sweeps.spec import ScheduleEntry, SweepSpec
from earlyq_sim.workloads.sweeps.quality_spec import QualitySettings

#: Bump when a cell's row layout or how it is computed changes, so old cells are not reused.
QUALITY_VERSION = "1"
#: run label in evaluate_quality -> column prefix ("" for the schedule, as in the cost columns)
RUNS = (("schedule", ""), ("baseline", "baseline_"), ("full precision", "fp_"))
CHECK_COLUMNS = ("fd_delta", "fd_delta_ci95_lo", "fd_delta_ci95_hi", "fd_limit", "quality_ok", "quality_reasons")
INFO_COLUMNS = ("quality_key", "quality_n_images", "quality_seeds", "quality_steps")


def metric_columns() -> list[str]:
    """Registered metrics per run: the schedule's under their registry names, the baseline's and
    the full-precision run's prefixed (metrics measured against full precision: not for itself)."""
    return [p + m.name for run, p in RUNS for m in METRICS.values()
            if not (run == "full precision" and m.vs_full_precision)]


def quality_columns() -> list[str]:
    """Every column a quality sweep adds, in table order."""
    return [*INFO_COLUMNS, *metric_columns(), *CHECK_COLUMNS]


@dataclass(frozen=True)
class QualityCell:
    """One model x schedule x baseline x settings: what a quality measurement depends on."""

    model: str
    entry: ScheduleEntry
    baseline: str  # uniform schedule text, built like the cost lane's (prob bits of two-stage entries)
    steps: int
    settings: QualitySettings
    key: str
    fingerprint: dict = field(compare=False, repr=False)

    def schedules(self) -> tuple[PrecisionSchedule, PrecisionSchedule]:
        """(schedule, baseline) at the quality step count; an interval holding no step is refused."""
        return (self.entry.build(self.steps).check_stages(),
                PrecisionSchedule.parse(self.baseline, self.steps, prob_bits=self.entry.prob_bits))


@dataclass
class QualityPlan:
    """The cells of a sweep and, per model, each schedule entry's cell key (None: no quality)."""

    cells: dict[str, QualityCell]  # key -> cell, first-seen order
    entry_keys: dict[str, list[str] | None]
    notes: list[str]


def _file_prints(model: str) -> dict:
    from earlyq_sim.models.registry import MODELS
    from earlyq_sim.workloads.quality.feature_net import FEATURE_NET_FILE, REF_STATS_FILE

    return {"weights": file_sha256(MODELS[model].weights_path), "feature_net": file_sha256(FEATURE_NET_FILE),
            "reference": file_sha256(REF_STATS_FILE)}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def plan_quality(spec: SweepSpec) -> QualityPlan:
    """Every quality cell of the spec; schedules that cannot be built at the quality step count are
    a one-line error naming the field (before any work)."""
    import earlyq_sim
    from earlyq_sim.errors import UserError
    from earlyq_sim.workloads.quality.evaluate import quality_supported
    from earlyq_sim.workloads.sweeps.points import steps_for

    s = spec.quality
    cells: dict[str, QualityCell] = {}
    entry_keys: dict[str, list[str] | None] = {}
    notes = []
    for model in spec.models:
        reason = quality_supported(model)
        if reason:
            entry_keys[model] = None
            notes.append(f"quality: {model}: {reason}; its quality columns are empty (NaN)")
            continue
        steps = s.steps or steps_for(spec, model)
        prints = _file_prints(model)
        keys = []
        for i, entry in enumerate(spec.schedules):
            cell = QualityCell(model, entry, spec.baseline, steps, s, "", {})
            try:
                sched, base = cell.schedules()
            except UserError as e:
                where = "quality.steps" if s.steps else "steps"
                raise UserError(f"{spec.source}: schedules[{i}] at {where} {steps}: {e}") from None
            fp = {"quality": QUALITY_VERSION, "tool": earlyq_sim.__version__, "model": model, **prints,
                  "schedule": sched.to_dict(), "baseline": base.to_dict(), "settings": {**asdict(s), "steps": steps}}
            key = _digest(fp)[:24]
            cells.setdefault(key, QualityCell(model, entry, spec.baseline, steps, s, key, fp))
            keys.append(key)
        entry_keys[model] = keys
    return QualityPlan(cells, entry_keys, notes)


def compute_cell(cell: QualityCell) -> dict:
    """Run the quality lane for ``cell`` (every seed) and return its record (row, verdict, seconds)."""
    from earlyq_sim.workloads.quality.evaluate import _nchw, evaluate_quality
    from earlyq_sim.workloads.quality.metrics import quality_metrics
    from earlyq_sim.workloads.quality.quality_check import judge

    t0 = time.perf_counter()
    s = cell.settings
    sched, base = cell.schedules()
    pooled: dict[str, list] = {}
    for seed in s.seeds:
        q = evaluate_quality(cell.model, sched, base, n=s.n, seed=seed, sampler=s.sampler, batch_size=s.batch_size,
                             calib_n=s.calib_n, calib_steps=s.calib_steps, progress=False, threads=s.threads)
        for run, imgs in q.images.items():
            pooled.setdefault(run, []).append(imgs)
    images = {run: np.concatenate(v) for run, v in pooled.items()}
    fp = _nchw(images["full precision"])
    row = {"quality_key": cell.key, "quality_n_images": int(len(fp)),
           "quality_seeds": ",".join(map(str, s.seeds)), "quality_steps": cell.steps}
    for run, prefix in RUNS:
        m = quality_metrics(_nchw(images[run]), None if run == "full precision" else fp)
        row.update({prefix + k: float(m[k]) for k in METRICS if k in m})
    v = judge(images, n_boot=s.n_boot)
    row.update({"fd_delta": v.fd_delta, "fd_delta_ci95_lo": v.fd_delta_ci95[0], "fd_delta_ci95_hi": v.fd_delta_ci95[1],
                "fd_limit": v.fd_limit, "quality_ok": bool(v.ok), "quality_reasons": "; ".join(v.reasons)})
    row = {k: row.get(k, math.nan) for k in quality_columns()}
    return {"key": cell.key, "fingerprint": cell.fingerprint, "row": row, "row_sha256": _digest(_row_json(row)),
            "verdict": v.as_dict(), "seconds": round(time.perf_counter() - t0, 3)}


def _row_json(row: dict):
    return json.loads(to_json(row))  # NaN -> null, as stored


def cell_path(folder: Path, key: str) -> Path:
    return Path(folder) / f"cell-{key}.json"


def write_cell(folder: Path, record: dict) -> Path:
    """The cell's record as JSON, atomically."""
    return write_json(cell_path(folder, record["key"]), record)


def read_cell(folder: Path, cell: QualityCell) -> dict | None:
    """The stored record of ``cell``, or None when absent; a file that cannot be read, holds another
    fingerprint or fails its row digest is warned about and ignored (the cell is computed again)."""
    path = cell_path(folder, cell.key)
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
        ok = (rec["key"] == cell.key and _digest(rec["fingerprint"])[:24] == cell.key
              and json.loads(to_json(cell.fingerprint)) == rec["fingerprint"]
              and _digest(rec["row"]) == rec["row_sha256"] and list(rec["row"]) == quality_columns())
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        warnings.warn(f"earlyq-sim sweep: quality cell {path.name} is corrupt or from other settings; "
                      "computing it again", stacklevel=2)
        return None
    return rec


def join_quality(df: pd.DataFrame, spec: SweepSpec, plan: QualityPlan, rows: dict[str, dict]) -> pd.DataFrame:
    """``df`` (cost rows in point order) with the quality columns of each row's cell; rows of
    models without quality get NaN. ``rows``: cell key -> stored row."""
    n_block = len(spec.archs) * len(spec.schedules)
    keys: list = []
    for model in spec.models:
        ek = plan.entry_keys[model]
        keys += [None] * n_block if ek is None else ek * len(spec.archs)
    table = pd.DataFrame([rows[k] for k in plan.cells], columns=quality_columns()).set_index("quality_key", drop=False)
    q = table.reindex(pd.Index(keys, dtype=object)).reset_index(drop=True)
    q["quality_key"] = pd.array(keys, dtype="str")
    for c in ("quality_n_images", "quality_steps"):
        q[c] = pd.to_numeric(q[c]).astype("Int64")
    q["quality_ok"] = q["quality_ok"].astype("boolean")
    for c in (c for c in quality_columns() if c not in ("quality_key", "quality_seeds", "quality_reasons",
                                                       "quality_ok", "quality_n_images", "quality_steps")):
        q[c] = q[c].astype(float)
    return pd.concat([df.reset_index(drop=True), q], axis=1)
