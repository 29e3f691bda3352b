"""Timestep-aware calibration of activation ranges (Q-Diffusion style), per precision interval.

The full-precision model runs through the sampler on calibration noise; at ``calib_steps``
steps spread uniformly over the whole trajectory, every quantized tensor position records
statistics into the observer of that step's precision interval. Ranges are then fitted

* per interval (range set ``i``) at that interval's activation bits: a 4-bit early interval
  gets its own clipping, and
* shared (range set ``-1``) from the pooled statistics, at every activation bit-width the
  schedule uses.

GEMM outputs (16-bit grid) use the min-max magnitude times ``out_headroom``. Results go to one
safetensors file (ranges tensor + JSON metadata: model fingerprint, schedule, settings),
written atomically; loading checks model and schedule.
"""

from __future__ import annotations

import json
import re
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from earlyq_sim.atomic_io import atomic_path
from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer.quant_modules import SHARED
from earlyq_sim.workloads.sampling.samplers import run_sampler, stage_index_per_step
from earlyq_sim.schedule import PrecisionSchedule

FORMAT = "earlyq-calibration-v1"


@dataclass(frozen=True)
class CalibrationResult:
    """Fitted ranges: key ``slot|set|bits`` -> (lo, hi) in real units."""

    fingerprint: str
    schedule: dict
    steps: tuple[int, ...]
    settings: dict
    ranges: dict


def calib_step_indices(num_steps: int, count: int) -> list[int]:
    """``count`` step indices spread uniformly over 0..T-1 (fewer if T is small)."""
    if count < 1:
        raise UserError(f"calibration: calib_steps {count!r} must be >= 1")
    return sorted({int(round(v)) for v in np.linspace(0, num_steps - 1, min(count, num_steps))})


def _schedule_key(s: PrecisionSchedule) -> dict:
    d = s.to_dict()
    d.pop("label", None)
    return d


def calibrate(qmodel, schedule: PrecisionSchedule, n_samples: int = 64, calib_steps: int = 20,
              sampler: str = "ddim", eta: float = 0.0, seed: int = 12345, batch_size: int = 64,
              scheduler_config: dict | None = None, progress: bool = True) -> CalibrationResult:
    """Observe the float model along the sampler trajectory, fit and apply all ranges."""
    steps = calib_step_indices(schedule.num_steps, calib_steps)
    chosen = set(steps)
    qmodel.set_keep(schedule)
    stage = stage_index_per_step(schedule)
    qmodel.set_mode("calibrate")
    for s in qmodel.slots().values():
        s.observers.clear()

    def on_step(i: int) -> None:
        qmodel.set_observe(stage[i] if i in chosen else None)

    run_sampler(qmodel, n_samples, seed, sampler, schedule.num_steps, batch_size, eta, scheduler_config,
                on_step, progress, desc=f"calibrating on {n_samples} images (observers on {len(chosen)} steps)")
    qmodel.set_observe(None)
    ranges = fit_ranges(qmodel, schedule)
    cfg = qmodel.cfg
    settings = {"n_samples": n_samples, "calib_steps": calib_steps, "sampler": sampler, "eta": eta,
                "seed": seed, "observer": cfg.observer, "out_bits": cfg.out_bits,
                "out_headroom": cfg.out_headroom, "act_signed": cfg.act_signed}
    res = CalibrationResult(qmodel.fingerprint, _schedule_key(schedule), tuple(steps), settings, ranges)
    apply_calibration(qmodel, res)
    return res


def fit_ranges(qmodel, schedule: PrecisionSchedule) -> dict[str, tuple[float, float]]:
    """Fit ranges from the observers filled so far (range set = interval index), then free them.

    Use it directly for models the sampler cannot drive (e.g. UNet2DConditionModel): run
    forwards in ``calibrate`` mode with ``qmodel.set_observe(interval_index)``, then call this
    and :func:`apply_calibration`.
    """
    cfg = qmodel.cfg
    bits_of = {st.index: st.bits.act for st in schedule.stages()}
    ranges: dict[str, tuple[float, float]] = {}
    for name, slot in qmodel.slots().items():
        if not slot.observers:
            continue
        pooled = None
        for sid, obs in sorted(slot.observers.items()):
            if pooled is None:
                pooled = type(obs)()
            pooled.merge(obs)
        if slot.held is not None:       # held layer: its own bits in every interval
            sets = [(sid, obs, [slot.held.act]) for sid, obs in slot.observers.items()]
            sets.append((SHARED, pooled, [slot.held.act]))
        else:
            sets = [(sid, obs, [bits_of[sid]]) for sid, obs in slot.observers.items()]
            sets.append((SHARED, pooled, sorted({iv.act_bits for iv in schedule.intervals})))
        for sid, obs, bit_list in sets:
            if slot.kind == "out":
                a = max(-obs.min, obs.max) * cfg.out_headroom
                ranges[f"{name}|{sid}|{cfg.out_bits}"] = (-a, a)
                continue
            for b in bit_list:
                ranges[f"{name}|{sid}|{b}"] = tuple(float(v) for v in obs.range_for(b, cfg.act_signed))
        slot.observers.clear()          # free the samples
    return ranges


def apply_calibration(qmodel, res: CalibrationResult | dict) -> None:
    """Install fitted ranges (a CalibrationResult or a ``fit_ranges`` dict) into the model."""
    slots = qmodel.slots()
    ranges = res.ranges if isinstance(res, CalibrationResult) else res
    for key, (lo, hi) in ranges.items():
        name, sid, bits = key.rsplit("|", 2)
        if name not in slots:
            raise UserError(f"calibration: tensor {name!r} is not in this model; calibrated for another model")
        slots[name].set_range((int(sid), int(bits)), lo, hi)


def save_calibration(path: str | os.PathLike, res: CalibrationResult) -> Path:
    """Write ``res`` to a safetensors file atomically (temp file + rename)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(res.ranges)
    arr = torch.tensor([res.ranges[k] for k in keys], dtype=torch.float64).reshape(-1, 2)
    meta = {"format": FORMAT, "fingerprint": res.fingerprint, "schedule": res.schedule,
            "steps": list(res.steps), "settings": res.settings, "keys": keys}
    with atomic_path(path) as tmp:
        save_file({"ranges": arr}, str(tmp), metadata={"meta": json.dumps(meta)})
    return path


def load_calibration(path: str | os.PathLike, qmodel, schedule: PrecisionSchedule) -> CalibrationResult:
    """Read a calibration file, check it belongs to this model and schedule, and apply it."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file {path}: not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
            arr = f.get_tensor("ranges")
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
        raise UserError(f"calibration file {path}: not a calibration file ({type(e).__name__})") from None
    _check_meta(meta, arr, path)
    if meta["fingerprint"] != qmodel.fingerprint:
        raise UserError(f"calibration file {path}: field fingerprint {meta['fingerprint']} does not match "
                        f"this model ({qmodel.fingerprint}); it was calibrated for another model or checkpoint")
    want = _schedule_key(schedule)
    if meta["schedule"] != want:
        got = PrecisionSchedule.from_dict(meta["schedule"]).label
        raise UserError(f"calibration file {path}: field schedule is {got!r} "
                        f"({meta['schedule']['num_steps']} steps); this run uses {schedule.label!r} "
                        f"({schedule.num_steps} steps); recalibrate")
    s = meta["settings"]
    if s["out_bits"] != qmodel.cfg.out_bits:
        raise UserError(f"calibration file {path}: field out_bits is {s['out_bits']}; "
                        f"this model uses {qmodel.cfg.out_bits}")
    ranges = {k: (float(v[0]), float(v[1])) for k, v in zip(meta["keys"], arr.tolist())}
    res = CalibrationResult(meta["fingerprint"], meta["schedule"], tuple(meta["steps"]), s, ranges)
    qmodel.set_keep(schedule)
    apply_calibration(qmodel, res)
    return res


#: the metadata fields a calibration file must hold, and their JSON types
META_FIELDS = {"format": str, "fingerprint": str, "schedule": dict, "steps": list, "settings": dict, "keys": list}


def _check_meta(meta, arr, path) -> None:
    """Every metadata field present with its type, ranges finite and one (lo, hi) pair per key:
    a hand-edited or truncated file is a one-line error naming the field, never a KeyError."""
    if not isinstance(meta, dict):
        raise UserError(f"calibration file {path}: metadata is {type(meta).__name__}; expected a JSON object "
                        f"with fields {', '.join(META_FIELDS)}")
    for field, kind in META_FIELDS.items():
        if field not in meta:
            raise UserError(f"calibration file {path}: field {field} is missing; a calibration file holds "
                            f"{', '.join(META_FIELDS)} (write it with `earlyq-sim calibrate`)")
        if not isinstance(meta[field], kind):
            raise UserError(f"calibration file {path}: field {field} is {type(meta[field]).__name__}; "
                            f"expected {kind.__name__}")
    if meta["format"] != FORMAT:
        raise UserError(f"calibration file {path}: field format is {meta['format']!r}; expected {FORMAT}")
    if "out_bits" not in meta["settings"]:
        raise UserError(f"calibration file {path}: field settings.out_bits is missing")
    bad = [k for k in meta["keys"] if not isinstance(k, str) or not re.fullmatch(r".+\|-?\d+\|\d+", k)]
    if bad or len(set(meta["keys"])) != len(meta["keys"]):
        raise UserError(f"calibration file {path}: field keys must be distinct 'layer|slot|bits' names"
                        + (f"; got {str(bad[0])[:40]!r}" if bad else "; got a repeat"))
    if tuple(arr.shape) != (len(meta["keys"]), 2):
        raise UserError(f"calibration file {path}: tensor ranges has shape {tuple(arr.shape)}; expected "
                        f"({len(meta['keys'])}, 2), one (lo, hi) per key")
    if not bool(torch.isfinite(arr).all()) or bool((arr[:, 0] > arr[:, 1]).any()):
        raise UserError(f"calibration file {path}: tensor ranges holds a non-finite or inverted (lo > hi) range")
    try:
        PrecisionSchedule.from_dict(meta["schedule"])
    except Exception as e:  # noqa: BLE001 - a malformed schedule is the file's fault
        raise UserError(f"calibration file {path}: field schedule is malformed ({type(e).__name__})") from None
