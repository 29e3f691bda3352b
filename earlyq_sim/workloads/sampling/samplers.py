"""DDIM / DDPM sampling with per-step activation bits from a PrecisionSchedule.

Schedulers are diffusers' ``DDIMScheduler`` / ``DDPMScheduler`` built from a config dict (no
download; default: diffusers' defaults, i.e. 1000 training steps, linear betas 1e-4..0.02).
Each image ``j`` has its own ``torch.Generator`` seeded from ``(seed, j)``, so its starting
noise and step noise do not depend on the batch size; a run is reproducible bit for bit for
a given (seed, schedule, batch size, thread count).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.sampling.sampler_registry import SAMPLERS, make_scheduler, sampler_spec
from earlyq_sim.schedule import PrecisionSchedule

def image_generators(seed: int, start: int, stop: int) -> list[torch.Generator]:
    """One generator per image index, seeded from (seed, index) through NumPy's SeedSequence."""
    gens = []
    for j in range(start, stop):
        s = int(np.random.SeedSequence([int(seed), j]).generate_state(1, np.uint64)[0] >> 1)
        gens.append(torch.Generator().manual_seed(s))
    return gens


def set_steps(sched, sampler: str, num_steps: int) -> None:
    """``sched.set_timesteps`` with the step count checked first: a scheduler cannot take more
    steps than the model was trained with (one line naming both, not diffusers' traceback)."""
    train = int(sched.config.num_train_timesteps)
    if num_steps > train:
        raise UserError(f"sampling: --steps {num_steps} is more than the {train} steps the model's {sampler} "
                        f"scheduler was trained with; allowed 1..{train}")
    sched.set_timesteps(num_steps)


def stage_index_per_step(schedule: PrecisionSchedule) -> list[int]:
    """Interval (stage) index of every step 0..T-1."""
    out: list[int] = []
    for st in schedule.stages():
        out.extend([st.index] * st.steps)
    return out


def run_sampler(unet, n: int, seed: int, sampler: str = "ddim", num_steps: int = 50, batch_size: int = 64,
                eta: float = 0.0, scheduler_config: dict | None = None,
                on_step: Callable[[int], None] | None = None, progress: bool = True,
                desc: str | None = None) -> torch.Tensor:
    """Run the reverse process; ``on_step(i)`` is called before the UNet call of step ``i``
    (0 = first, noisiest). Returns float32 samples (N, C, H, W), unclipped."""
    if n < 1 or batch_size < 1 or num_steps < 1:
        raise UserError(f"sampling: n={n}, batch_size={batch_size}, num_steps={num_steps}; all must be >= 1")
    spec = sampler_spec(sampler)
    if not spec.takes_eta and eta != 0.0:
        with_eta = ", ".join(s.name for s in SAMPLERS.values() if s.takes_eta)
        raise UserError(f"sampling: eta applies to {with_eta} only; use eta=0 with sampler {sampler!r}")
    sched = make_scheduler(sampler, scheduler_config)
    set_steps(sched, sampler, num_steps)
    c, size = int(unet.config.in_channels), unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    outs = []
    bar = tqdm(total=-(-n // batch_size) * num_steps, disable=not progress, desc=desc or f"{sampler} x{n}", leave=False,
               unit="step")
    with torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            gens = image_generators(seed, start, stop)
            x = torch.stack([torch.randn(c, h, w, generator=g) for g in gens]) * sched.init_noise_sigma
            for i, t in enumerate(sched.timesteps):
                if on_step is not None:
                    on_step(i)
                eps = unet(sched.scale_model_input(x, t), t).sample
                kw = {"eta": eta} if spec.takes_eta else {}
                x = sched.step(eps, t, x, generator=gens, **kw).prev_sample
                if not bool(torch.isfinite(x).all()):  # never turn NaN into black images silently
                    raise UserError(f"sampling: step {i} of {num_steps} (timestep {int(t)}): non-finite values "
                                    "(NaN or inf) in the model output or sample; check the model's weights and "
                                    "the sampler settings")
                bar.update(1)
            outs.append(x)
    bar.close()
    return torch.cat(outs)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Samples in [-1, 1] (N,C,H,W) -> uint8 images (N,H,W,C)."""
    img = torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
    return img.permute(0, 2, 3, 1).contiguous().numpy()


def sample(unet, schedule: PrecisionSchedule | None, n: int, seed: int, sampler: str = "ddim",
           num_steps: int | None = None, batch_size: int = 64, eta: float = 0.0,
           scheduler_config: dict | None = None, mode: str = "int", progress: bool = True) -> np.ndarray:
    """Generate ``n`` images as uint8 (N, H, W, C).

    ``unet``: a float diffusers UNet (then ``schedule`` must be None: float32 sampling) or a
    QuantizedUNet (``mode`` 'int' or 'fake', bits of step ``i`` = ``schedule.step_bits(i)``,
    ranges of its interval). ``num_steps`` defaults to ``schedule.num_steps`` (50 without one).
    """
    from earlyq_sim.simulator.integer.quantize_model import QuantizedUNet
    quantized = isinstance(unet, QuantizedUNet)
    if schedule is None:
        if quantized:
            unet.set_mode("float")
        steps = num_steps or 50
        return to_uint8(run_sampler(unet, n, seed, sampler, steps, batch_size, eta, scheduler_config,
                                    None, progress, desc=f"sampling {n} images, {sampler} fp32"))
    if not quantized:
        raise UserError("sample: a precision schedule needs a quantized model; "
                        "use quantize_and_calibrate(unet, schedule) first, or schedule=None for float")
    if num_steps is not None and num_steps != schedule.num_steps:
        raise UserError(f"sample: num_steps {num_steps} differs from the schedule's {schedule.num_steps}; "
                        "use schedule.with_steps(num_steps) and calibrate for it")
    if mode not in ("int", "fake"):
        raise UserError(f"sample: mode {mode!r} is unknown; allowed int, fake")
    per_step = schedule.per_step()
    stage = stage_index_per_step(schedule)
    unet.set_mode(mode)
    unet.set_keep(schedule)     # the schedule decides which layers are held, every run

    def on_step(i: int) -> None:
        unet.set_step_bits(per_step[i], stage[i])

    label = schedule.label if len(schedule.label) <= 32 else schedule.label[:29] + "..."
    return to_uint8(run_sampler(unet, n, seed, sampler, schedule.num_steps, batch_size, eta, scheduler_config,
                                on_step, progress, desc=f"sampling {n} images, {sampler} {mode} {label}"))
