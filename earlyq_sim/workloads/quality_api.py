"""Quality-lane entry points: load a UNet, quantize + calibrate it, sample images.

Typical use::

    qm = quantize_and_calibrate(unet, schedule, n_calib=64, calib_steps=20, save="calib.safetensors")
    imgs = sample(qm, schedule, n=256, seed=0)            # uint8 (N, H, W, C), integer emulation
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.quant_modules import QuantConfig
from earlyq_sim.simulator.quantize_model import QuantizedUNet, quantize_unet
from earlyq_sim.workloads.calibration import calibrate, load_calibration, save_calibration
from earlyq_sim.workloads.samplers import sample  # noqa: F401  (re-exported API)
from earlyq_sim.workloads.schedule import PrecisionSchedule


def load_unet(config_path: str | os.PathLike, weights_path: str | os.PathLike):
    """A UNet2DModel from a diffusers config JSON and a safetensors state dict (strict match)."""
    from diffusers import UNet2DModel
    from safetensors.torch import load_file
    config_path, weights_path = Path(config_path), Path(weights_path)
    for p in (config_path, weights_path):
        if not p.is_file():
            raise UserError(f"model file {p}: not found")
    try:
        cfg = json.loads(config_path.read_text())
        unet = UNet2DModel.from_config(cfg)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"model config {config_path}: not a UNet2DModel config ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    state = load_file(str(weights_path))
    own = unet.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or bad:
        first = (missing or extra or bad)[0]
        raise UserError(f"checkpoint {weights_path}: does not match config {config_path.name} "
                        f"({len(missing)} missing, {len(extra)} unexpected, {len(bad)} wrong-shape tensors, "
                        f"e.g. {first!r})")
    unet.load_state_dict(state)
    return unet.eval()


def quantize_and_calibrate(unet, schedule: PrecisionSchedule, n_calib: int = 64, calib_steps: int = 20,
                           range_mode: str = "interval", sampler: str = "ddim", eta: float = 0.0,
                           seed: int = 12345, batch_size: int = 64, scheduler_config: dict | None = None,
                           save: str | os.PathLike | None = None, load: str | os.PathLike | None = None,
                           config: QuantConfig | None = None, progress: bool = True, **quant_kw) -> QuantizedUNet:
    """Quantize ``unet`` (weights at ``schedule.weight_bits``) and calibrate activation ranges.

    ``load``: reuse a calibration file (checked against model and schedule) instead of
    calibrating; ``save``: write the calibration. ``quant_kw``: QuantConfig fields.
    """
    qm = quantize_unet(unet, config, **quant_kw)
    qm.set_range_mode(range_mode)
    if load is not None:
        load_calibration(load, qm, schedule)
    else:
        res = calibrate(qm, schedule, n_calib, calib_steps, sampler, eta, seed, batch_size,
                        scheduler_config, progress)
        if save is not None:
            save_calibration(save, res)
    qm.set_step_bits(schedule.step_bits(0), 0)
    qm.set_mode("int")
    return qm
