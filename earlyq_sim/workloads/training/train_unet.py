"""Train the small Fashion-MNIST DDPM (diffusers ``UNet2DModel``, epsilon prediction).

Resumable: a checkpoint holds model, EMA, optimizer, step, elapsed seconds and the state of the
one ``torch.Generator`` that draws every batch index, timestep and noise sample, so a resumed
run repeats the loss sequence of an uninterrupted one exactly. Checkpoints are safetensors +
JSON (``safe_ckpt``); nothing a user can place is unpickled. The EMA decay warms up as
``min(decay, (1 + step) / (10 + step))`` because a fixed 0.999 from step 0 still carries ~22% of
the random initial weights after 1500 steps (REFERENCES.md, EMA trap).

Run: ``python -m earlyq_sim.workloads.training.train_unet --ckpt-dir /work/ckpt/fmnist16 --steps 200000``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from earlyq_sim.atomic_io import atomic_path
from earlyq_sim.errors import UserError
from earlyq_sim.workloads.training.run_common import (Curve, LoopConfig, StopOnSignals, TrainResult, add_loop_args,
                                                     ema_decay_at, lr_at, run_main)
from earlyq_sim.models.registry import CONFIG_DIR, WEIGHTS_DIR
from earlyq_sim.workloads.sampling.sampler_registry import make_scheduler
from earlyq_sim.workloads.training import safe_ckpt as sc
from earlyq_sim.workloads.training.datasets import load_fmnist

CKPT_PREFIX = "ckpt_"


# ---- model config, building and weights ----------------------------------------------------
def load_model_config(name: str = "fmnist16") -> dict:
    """The shipped config ``models/configs/<name>.json`` as ``{unet, scheduler, resolution, weights, ...}``.

    The file itself is a plain diffusers ``UNet2DModel`` config (so ``UNet2DModel.from_config``
    reads it directly); the project's extras (scheduler, dataset, weights file) sit under the
    ``_earlyq`` key, which diffusers ignores like every key starting with an underscore.
    """
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR).glob("*.json"))
        raise UserError(f"{path}: model config not found; allowed names {', '.join(known)}")
    with open(path) as fh:
        raw = json.load(fh)
    extra = raw.get("_earlyq")
    if not isinstance(extra, dict) or "scheduler" not in extra:
        raise UserError(f"{path}: field '_earlyq.scheduler' missing; allowed a UNet2DModel config with an _earlyq block")
    unet = {k: v for k, v in raw.items() if not k.startswith("_")}
    return {**extra, "unet": unet, "config_path": str(path)}


def build_unet(model_cfg: dict):
    """A randomly initialised diffusers ``UNet2DModel`` from the config's ``unet`` block."""
    from diffusers import UNet2DModel

    return UNet2DModel(**model_cfg["unet"])


def build_scheduler(model_cfg: dict, kind: str = "ddpm"):
    """The sampler registry's scheduler ``kind`` built from the config's ``scheduler`` block."""
    return make_scheduler(kind, model_cfg["scheduler"])


def save_unet_safetensors(model, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write the model's state dict as safetensors atomically (tmp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # readable like any new file (safetensors writes 0600)
        save_file(state, str(tmp), metadata=metadata or {})


def load_trained_unet(name: str = "fmnist16", weights: str | os.PathLike | None = None):
    """The trained UNet (EMA weights) from the shipped safetensors, or ``weights`` (a training
    export), in eval mode without gradients; ``models.loader.load_unet`` does the loading."""
    from earlyq_sim.models.loader import load_unet

    path = Path(weights) if weights else WEIGHTS_DIR / load_model_config(name)["weights"]
    if not path.is_file():
        raise UserError(f"{path}: trained weights not found; train with "
                        f"'python -m earlyq_sim.workloads.training.train_unet --ckpt-dir DIR --export {path}'")
    try:
        model = load_unet(name, weights=path)
    except UserError as exc:
        raise UserError(f"{path}: weights do not load into config '{name}' ({exc}); re-export them") from None
    return model.requires_grad_(False)


def trained_step(name: str = "fmnist16", weights=None) -> int | None:
    """Training step recorded in the shipped safetensors metadata (None if unknown)."""
    from safetensors import safe_open

    path = Path(weights) if weights else WEIGHTS_DIR / load_model_config(name)["weights"]
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as fh:
        step = (fh.metadata() or {}).get("step")
    return int(step) if step is not None else None


def sample_ddim(model, n: int, steps: int = 50, seed: int = 0, batch_size: int = 250,
                name: str = "fmnist16") -> torch.Tensor:
    """Full-precision DDIM (eta 0) samples ``(n, C, R, R)`` clipped to [-1, 1]: the one sampling
    loop (``samplers.run_sampler``), so image i's noise is seeded by (seed, i) as everywhere else."""
    from earlyq_sim.workloads.sampling.samplers import run_sampler

    x = run_sampler(model, n, seed, "ddim", steps, batch_size, 0.0, load_model_config(name)["scheduler"],
                    progress=False)
    return x.clamp(-1, 1)


# ---- training -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """Hyper-parameters and paths of one diffusion training run (``LoopConfig`` plus these)."""

    milestone_every: int = 1000        # EMA weights at multiples of this step kept in milestones/
    model_name: str = "fmnist16"


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``ckpt_dir`` (their JSON sidecars), oldest first."""
    return sc.list_checkpoints(ckpt_dir)


def refuse_pickled_checkpoints(ckpt_dir: str | os.PathLike) -> None:
    """Checkpoints of the earlier ``torch.save`` format are never loaded: unpickling a file a user
    can place runs its code. Say so instead of silently starting over."""
    old = sorted(Path(ckpt_dir).glob(f"{CKPT_PREFIX}*.pt")) if Path(ckpt_dir).is_dir() else []
    if old and not list_checkpoints(ckpt_dir):
        raise UserError(f"{old[-1]}: a pickled (torch.save) checkpoint; it is not loaded because unpickling "
                        "runs code; checkpoints are now safetensors + JSON: pick a new --ckpt-dir")


class _Trainer:
    """Holds the mutable training state; one instance per ``train_diffusion`` call."""

    def __init__(self, cfg: TrainConfig, data: torch.Tensor):
        self.cfg = cfg
        self.data = data
        model_cfg = load_model_config(cfg.model_name)
        torch.manual_seed(cfg.seed)  # weight init; a resume overwrites it with the checkpoint
        self.model = build_unet(model_cfg)
        self.ema = build_unet(model_cfg)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.scheduler = build_scheduler(model_cfg, kind="ddpm")
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.seconds = 0.0

    # ---- checkpoints -------------------------------------------------------------------
    def save(self) -> Path:
        info = {"seconds": self.seconds, "gen_state_hex": sc.torch_state_hex(self.gen.get_state()),
                "torch_rng_hex": sc.torch_state_hex(torch.get_rng_state()), "config": asdict(self.cfg)}
        return sc.save_checkpoint(self.cfg.ckpt_dir, self.step, {"model": self.model, "ema": self.ema}, self.opt,
                                  info, self.cfg.keep_ckpts)

    def resume(self) -> Path | None:
        refuse_pickled_checkpoints(self.cfg.ckpt_dir)
        ckpts = list_checkpoints(self.cfg.ckpt_dir)
        if not ckpts:
            return None
        info = sc.load_checkpoint(ckpts[-1], {"model": self.model, "ema": self.ema}, self.opt)
        self.step, self.seconds = int(info["step"]), float(info["seconds"])
        self.gen.set_state(sc.torch_state_from_hex(info["gen_state_hex"]))
        torch.set_rng_state(sc.torch_state_from_hex(info["torch_rng_hex"]))
        return ckpts[-1]

    def export(self) -> None:
        if self.cfg.export_path:
            save_unet_safetensors(self.ema, self.cfg.export_path,
                                           metadata={"step": str(self.step), "ema": "true"})

    # ---- one optimisation step ---------------------------------------------------------
    def train_step(self) -> float:
        cfg = self.cfg
        n = self.data.shape[0]
        idx = torch.randint(0, n, (cfg.batch_size,), generator=self.gen)
        x0 = self.data[idx]
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=self.gen)
        xt = self.scheduler.add_noise(x0, noise, t)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, cfg)
        loss = F.mse_loss(self.model(xt, t).sample, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        decay = ema_decay_at(self.step, cfg.ema_decay)
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(pm, 1.0 - decay)
            for be, bm in zip(self.ema.buffers(), self.model.buffers()):
                be.copy_(bm)
        self.step += 1
        return float(loss.detach())


def train_diffusion(cfg: TrainConfig, data: torch.Tensor | None = None,
                    stop_after: int | None = None) -> TrainResult:
    """Train (or resume) until ``cfg.steps`` total steps; returns this call's losses.

    ``data``: float images ``(N, 1, 16, 16)`` in [-1, 1]; default the Fashion-MNIST train split.
    ``stop_after``: stop after this many steps in this call (still saving a checkpoint), for tests.
    The run also stops cleanly, with a checkpoint, on SIGTERM or SIGINT.
    """
    if cfg.batch_size < 1 or cfg.steps < 0:
        raise UserError(f"train: batch_size {cfg.batch_size} / steps {cfg.steps} invalid; allowed batch_size>=1, steps>=0")
    torch.set_num_threads(cfg.threads)
    if data is None:
        data = load_fmnist("train", resolution=load_model_config(cfg.model_name)["resolution"],
                           data_dir=cfg.data_dir)
    tr = _Trainer(cfg, data)
    tr.resume()
    start = tr.step
    Path(cfg.ckpt_dir).mkdir(parents=True, exist_ok=True)
    curve = Curve(Path(cfg.ckpt_dir) / "train_curve.csv", start, cfg.log_every)

    stop = StopOnSignals()  # finish the current step, checkpoint, export, return
    losses = curve.losses
    last_ckpt = last_export = time.monotonic()
    ckpt_path = None
    t_prev = time.monotonic()
    try:
        while tr.step < cfg.steps and not stop.requested:
            if stop_after is not None and len(losses) >= stop_after:
                break
            loss = tr.train_step()
            now = time.monotonic()
            tr.seconds += now - t_prev
            t_prev = now
            curve.add(tr.step, loss, lr_at(tr.step - 1, cfg), tr.seconds)
            if (cfg.ckpt_every_steps and tr.step % cfg.ckpt_every_steps == 0) or now - last_ckpt >= cfg.ckpt_every_s:
                ckpt_path = tr.save()
                last_ckpt = now
            if cfg.milestone_every and tr.step % cfg.milestone_every == 0:
                save_unet_safetensors(tr.ema, Path(cfg.ckpt_dir) / "milestones" / f"ema_{tr.step:08d}.safetensors",
                                      metadata={"step": str(tr.step), "ema": "true"})
            if cfg.export_path and now - last_export >= cfg.export_every_s:
                tr.export()
                last_export = now
        if tr.step > start or ckpt_path is None:
            ckpt_path = tr.save()
        tr.export()
    finally:
        curve.close()
        stop.restore()
    return TrainResult(start, tr.step, tuple(losses), str(ckpt_path), tr.seconds)


def _parse(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m earlyq_sim.workloads.training.train_unet", description=__doc__.split("\n")[0])
    add_loop_args(p, lr=5e-4, warmup_steps=500)
    p.add_argument("--milestone-every", type=int, default=1000, help="keep EMA weights at multiples of this step")
    a = p.parse_args(argv)
    return TrainConfig(**vars(a))


def main(argv=None) -> int:
    return run_main(_parse, train_diffusion, argv)


if __name__ == "__main__":
    raise SystemExit(main())
