"""Quality-lane entry points: load a UNet, quantize + calibrate it, sample images.

Typical use (``earlyq_sim.models.loader.load_unet`` loads a built-in or local UNet with weights)::

    qm = quantize_and_calibrate(unet, schedule, n_calib=64, calib_steps=20, save="calib.safetensors")
    imgs = sample(qm, schedule, n=256, seed=0)            # uint8 (N, H, W, C), integer emulation
"""

from __future__ import annotations

import os

from earlyq_sim.simulator.integer.quant_modules import QuantConfig
from earlyq_sim.simulator.integer.quantize_model import QuantizedUNet, quantize_unet
from earlyq_sim.workloads.sampling.calibration import calibrate, load_calibration, save_calibration
from earlyq_sim.workloads.sampling.samplers import sample  # noqa: F401  (re-exported API)
from earlyq_sim.schedule import PrecisionSchedule


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
