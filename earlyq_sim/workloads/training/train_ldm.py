"""Train fmnist28-ldm, a class-conditional latent diffusion model on Fashion-MNIST 28x28.

Stage ``ae``: the ``AutoencoderKL`` (loss: L1 + MSE reconstruction + 1e-6 KL, see the AE
config), EMA weights exported with the measured latent ``scaling_factor`` in the metadata.
Stage ``unet``: the ``UNet2DConditionModel`` plus the class-token encoder on the frozen AE's
latent means (cached once in the checkpoint folder), epsilon prediction, 10% label dropout to
the null class for classifier-free guidance.

Resumable exactly: every random draw (batch indices, noise, timesteps, label dropout, posterior
samples) comes from one ``torch.Generator`` saved in the checkpoint with the model, EMA and
AdamW state (pickle-free, see ``safe_ckpt``), so a resumed run repeats the loss sequence of an
uninterrupted one bit for bit (same thread count). EMA decay warms up as
``min(decay, (1 + step) / (10 + step))``. Times are wall-clock seconds.

Run: ``python -m earlyq_sim.workloads.training.train_ldm --stage ae --ckpt-dir DIR --steps N``
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from earlyq_sim.atomic_io import file_sha256
from earlyq_sim.errors import UserError
from earlyq_sim.workloads.training.run_common import (Curve, LoopConfig, StopOnSignals, TrainResult, add_loop_args,
                                                     ema_decay_at, lr_at, run_main)
from earlyq_sim.models.registry import WEIGHTS_DIR
from earlyq_sim.workloads.training import ldm_models as lm
from earlyq_sim.workloads.training import safe_ckpt as sc
from earlyq_sim.workloads.training.datasets import load_fmnist

STAGES = ("ae", "unet")
SCALE_SAMPLES = 4096  # training images whose latent means set the scaling factor
LATENT_CACHE = "latents_train.safetensors"
log = logging.getLogger("earlyq.train_ldm")


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """One run's hyper-parameters and paths (``LoopConfig`` plus these; times in seconds)."""

    stage: str = "unet"                # ae | unet
    lr: float = 3e-4
    kl_weight: float = 1e-6
    label_dropout: float = 0.1
    export_cond: str | None = None     # UNet stage: EMA condition encoder; default <export>_cond
    config_out: str | None = None      # AE stage: AE config with the measured scaling_factor
    eval_every: int = 500              # AE stage: test PSNR of the EMA every this many steps (0: off)
    eval_n: int = 1000                 # AE stage: test images per evaluation
    ae_config: str = lm.AE_CONFIG
    unet_config: str = lm.UNET_CONFIG
    ae_weights: str = str(WEIGHTS_DIR / "fmnist28_ae.safetensors")  # UNet stage input


# ---- autoencoder helpers ----------------------------------------------------------------------
@torch.no_grad()
def latent_means(ae, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Posterior means (N, 4, 7, 7) of ``images`` (N, 1, 28, 28) in [-1, 1], unscaled."""
    # contiguous: the mean is a channel slice of the encoder output, and a strided batch would
    # take other conv kernels than one read back from the cache (ulp-level resume mismatch)
    return torch.cat([ae.encode(images[i:i + batch]).latent_dist.mean.contiguous()
                      for i in range(0, len(images), batch)])


def measure_scaling_factor(ae, images: torch.Tensor) -> float:
    """1 / std of the latent means of the first ``SCALE_SAMPLES`` images (as SD's 0.18215)."""
    return float(1.0 / latent_means(ae, images[:SCALE_SAMPLES]).std())


@torch.no_grad()
def reconstruction_psnr(ae, images: torch.Tensor, batch: int = 500) -> float:
    """Mean per-image PSNR in dB of decode(mean) vs ``images``, on the [0, 1] pixel scale."""
    vals = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        rec = ae.decode(ae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        mse = ((rec - x) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-12)
        vals.append(-10.0 * torch.log10(mse))
    return float(torch.cat(vals).mean())


def load_latent_data(cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor):
    """(scaled latents, labels, scaling factor, AE sha256); latent means cached in the ckpt dir,
    keyed by the AE file's SHA-256 so a new AE invalidates the cache."""
    ae = lm.build_autoencoder(cfg.ae_config)
    meta = lm.load_weights(ae, cfg.ae_weights)
    if "scaling_factor" not in meta:
        raise UserError(f"{cfg.ae_weights}: no scaling_factor in metadata; export it with --stage ae")
    sha, sf = file_sha256(cfg.ae_weights), float(meta["scaling_factor"])
    cache = Path(cfg.ckpt_dir) / LATENT_CACHE
    if cache.is_file():
        t, m = lm.load_tensors(cache)
        if m.get("ae_sha256") == sha and t["mean"].shape[0] == len(images):
            return t["mean"].contiguous() * sf, t["labels"].contiguous(), sf, sha
    t0 = time.monotonic()
    means = latent_means(ae.eval(), images)
    lm.save_tensors(cache, {"mean": means, "labels": labels}, {"ae_sha256": sha, "scaling_factor": sf})
    log.info("encoded %d images to latents in %.0f s (cache %s)", len(images), time.monotonic() - t0, cache)
    return means * sf, labels, sf, sha


# ---- trainer ---------------------------------------------------------------------------------
class _Trainer:
    """Mutable state of one run: modules, their EMA copies, AdamW, the generator, step, seconds."""

    def __init__(self, cfg: TrainConfig, data: torch.Tensor, labels: torch.Tensor | None):
        self.cfg, self.data, self.labels = cfg, data, labels
        torch.manual_seed(cfg.seed)  # weight init; a resume overwrites every tensor
        if cfg.stage == "ae":
            self.parts = {"model": lm.build_autoencoder(cfg.ae_config)}
        else:
            self.parts = {"model": lm.build_unet(cfg.unet_config), "cond": lm.build_condition_encoder(cfg.unet_config)}
            from diffusers import DDPMScheduler
            self.scheduler = DDPMScheduler.from_config(lm.read_json_config(cfg.unet_config)[1]["scheduler"])
        self.ema = {k: copy.deepcopy(m).requires_grad_(False) for k, m in self.parts.items()}
        params = [p for m in self.parts.values() for p in m.parameters()]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.seconds, self.extra = 0, 0.0, {}

    def modules(self) -> dict:
        return {**self.parts, **{f"ema_{k}": m for k, m in self.ema.items()}}

    def save(self) -> Path:
        info = {"stage": self.cfg.stage, "seconds": self.seconds, "config": asdict(self.cfg),
                "gen_state_hex": sc.torch_state_hex(self.gen.get_state()),
                "torch_rng_hex": sc.torch_state_hex(torch.get_rng_state()),
                "numpy_rng": sc.numpy_state_json(), **self.extra}
        return sc.save_checkpoint(self.cfg.ckpt_dir, self.step, self.modules(), self.opt, info, self.cfg.keep_ckpts)

    def resume(self) -> Path | None:
        ckpts = sc.list_checkpoints(self.cfg.ckpt_dir)
        if not ckpts:
            return None
        info = sc.load_checkpoint(ckpts[-1], self.modules(), self.opt)
        if info.get("stage") != self.cfg.stage:
            raise UserError(f"{ckpts[-1]}: a {info.get('stage')!r} checkpoint; this run is stage {self.cfg.stage!r}")
        if self.extra.get("ae_sha256") and info.get("ae_sha256") not in (None, self.extra["ae_sha256"]):
            raise UserError(f"{ckpts[-1]}: trained on another autoencoder than {self.cfg.ae_weights}; "
                            "pass the original --ae-weights or a new --ckpt-dir")
        self.step, self.seconds = int(info["step"]), float(info["seconds"])
        self.gen.set_state(sc.torch_state_from_hex(info["gen_state_hex"]))
        torch.set_rng_state(sc.torch_state_from_hex(info["torch_rng_hex"]))
        sc.set_numpy_state(info["numpy_rng"])
        return ckpts[-1]

    def loss(self) -> torch.Tensor:
        cfg, g = self.cfg, self.gen
        idx = torch.randint(0, self.data.shape[0], (cfg.batch_size,), generator=g)
        x0 = self.data[idx]
        if cfg.stage == "ae":
            ae = self.parts["model"]
            post = ae.encode(x0).latent_dist
            err = ae.decode(post.sample(generator=g)).sample - x0
            pixels = err[0].numel()
            # LDM weighs the KL against the pixel-summed reconstruction; divide both by the pixel
            # count so the logged loss reads per pixel (AdamW does not care about the scale).
            per_image = (err.abs() + err.pow(2)).flatten(1).sum(1) + cfg.kl_weight * post.kl()
            return per_image.mean() / pixels
        labels = self.labels[idx].clone()
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.label_dropout
        labels[drop] = self.parts["cond"].null_index
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=g)
        xt = self.scheduler.add_noise(x0, noise, t)
        eps = self.parts["model"](xt, t, encoder_hidden_states=self.parts["cond"](labels)).sample
        return F.mse_loss(eps, noise)

    def train_step(self) -> float:
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        loss = self.loss()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], self.cfg.grad_clip)
        self.opt.step()
        decay = ema_decay_at(self.step, self.cfg.ema_decay)
        with torch.no_grad():
            for k, m in self.parts.items():
                for pe, pm in zip(self.ema[k].parameters(), m.parameters()):
                    pe.lerp_(pm, 1.0 - decay)
                for be, bm in zip(self.ema[k].buffers(), m.buffers()):
                    be.copy_(bm)
        self.step += 1
        return float(loss.detach())

    def export(self, scale_images: torch.Tensor | None) -> None:
        cfg = self.cfg
        meta = {"step": self.step, "ema": "true", "stage": cfg.stage}
        if not cfg.export_path:
            return
        if cfg.stage == "ae":
            ema = self.ema["model"].eval()
            sf = measure_scaling_factor(ema, scale_images)
            lm.save_tensors(cfg.export_path, ema.state_dict(), {**meta, "scaling_factor": repr(sf)})
            if cfg.config_out:
                lm.write_ae_config(cfg.config_out, sf, cfg.ae_config)
            log.info("exported AE EMA step %d, scaling_factor %.5f -> %s", self.step, sf, cfg.export_path)
            return
        lm.save_tensors(cfg.export_path, self.ema["model"].state_dict(), {**meta, **self.extra})
        lm.save_tensors(cond_path(cfg), self.ema["cond"].state_dict(), {**meta, **self.extra})
        log.info("exported UNet + condition encoder EMA step %d -> %s", self.step, cfg.export_path)


def cond_path(cfg: TrainConfig) -> str:
    """Condition-encoder export path: ``--export-cond``, else ``<export stem>_cond.safetensors``."""
    p = Path(cfg.export_path)
    return cfg.export_cond or str(p.with_name(p.stem + "_cond" + p.suffix))


def _setup_logging(ckpt_dir: Path) -> None:
    if any(getattr(h, "_earlyq_dir", None) == str(ckpt_dir) for h in log.handlers):
        return
    for h in list(log.handlers):
        log.removeHandler(h)
    fh = logging.FileHandler(ckpt_dir / "train.log")
    fh._earlyq_dir = str(ckpt_dir)
    fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(fh)
    log.setLevel(logging.INFO)


def train_ldm(cfg: TrainConfig, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
              test_images: torch.Tensor | None = None, stop_after: int | None = None) -> TrainResult:
    """Train (or resume) stage ``cfg.stage`` until ``cfg.steps`` total steps.

    ``images`` (N, 1, 28, 28) in [-1, 1] and ``labels`` (N,) int64: default the Fashion-MNIST
    train split; ``test_images``: AE evaluation set (default the test split, if eval is on).
    ``stop_after``: stop after this many steps in this call (checkpoint still saved), for tests.
    SIGTERM/SIGINT finish the current step, then checkpoint and export.
    """
    if cfg.stage not in STAGES or cfg.batch_size < 1 or cfg.steps < 0:
        raise UserError(f"train: stage {cfg.stage!r}, batch_size {cfg.batch_size}, steps {cfg.steps}; "
                        f"allowed stage in {STAGES}, batch_size >= 1, steps >= 0")
    torch.set_num_threads(cfg.threads)
    ckpt_dir = Path(cfg.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(ckpt_dir)
    if images is None:
        images, labels = load_fmnist("train", resolution=28, data_dir=cfg.data_dir, with_labels=True)
    if cfg.stage == "ae":
        data, extra = images, {}
        if test_images is None and cfg.eval_every > 0:
            test_images = load_fmnist("test", resolution=28, data_dir=cfg.data_dir)
    else:
        data, labels, sf, sha = load_latent_data(cfg, images, labels)
        extra = {"ae_sha256": sha, "scaling_factor": sf}
    tr = _Trainer(cfg, data, labels)
    tr.extra = extra
    resumed = tr.resume()
    start = tr.step
    log.info("stage %s: %s at step %d, target %d, %d threads", cfg.stage,
             f"resumed {resumed.name}" if resumed else "fresh start", start, cfg.steps, cfg.threads)
    curve = Curve(ckpt_dir / "train_curve.csv", start, cfg.log_every)
    stop = StopOnSignals()  # finish the current step, checkpoint, export, return
    losses = curve.losses
    last_ckpt = last_export = t_prev = time.monotonic()
    ckpt_path = None
    try:
        while tr.step < cfg.steps and not stop.requested:
            if stop_after is not None and len(losses) >= stop_after:
                break
            loss = tr.train_step()
            if not math.isfinite(loss):
                raise UserError(f"train: loss is {loss} at step {tr.step}; lower --lr and resume")
            now = time.monotonic()
            tr.seconds += now - t_prev
            t_prev = now
            mean = curve.add(tr.step, loss, lr_at(tr.step - 1, cfg), tr.seconds)
            if mean is not None:
                log.info("step %d loss %.5f lr %.2e %.0f s", tr.step, mean, lr_at(tr.step - 1, cfg), tr.seconds)
            if cfg.stage == "ae" and cfg.eval_every and tr.step % cfg.eval_every == 0:
                psnr = reconstruction_psnr(tr.ema["model"].eval(), test_images[:cfg.eval_n])
                with open(ckpt_dir / "eval_psnr.csv", "a") as ef:
                    ef.write(f"{tr.step},{psnr:.3f}\n")
                log.info("step %d EMA test PSNR %.2f dB (%d images)", tr.step, psnr, min(cfg.eval_n, len(test_images)))
                t_prev = time.monotonic()  # evaluation time is not training time
            if (cfg.ckpt_every_steps and tr.step % cfg.ckpt_every_steps == 0) or now - last_ckpt >= cfg.ckpt_every_s:
                ckpt_path = tr.save()
                last_ckpt = now
            if cfg.export_path and now - last_export >= cfg.export_every_s:
                tr.export(images)
                last_export = now
        if tr.step > start or ckpt_path is None:
            ckpt_path = tr.save()
        tr.export(images)
        log.info("stopped at step %d (%.0f s trained); checkpoint %s", tr.step, tr.seconds, ckpt_path)
    finally:
        curve.close()
        stop.restore()
    return TrainResult(start, tr.step, tuple(losses), str(ckpt_path), tr.seconds)


STAGE_DEFAULTS = {"ae": {"lr": 1e-3, "warmup_steps": 100}, "unet": {"lr": 3e-4, "warmup_steps": 500}}


def _parse(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m earlyq_sim.workloads.training.train_ldm",
                                description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=STAGES, required=True)
    add_loop_args(p, lr_help="default: ae 1e-3, unet 3e-4")
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--export-cond", default=None)
    p.add_argument("--config-out", default=None)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--ae-weights", default=TrainConfig.ae_weights)
    a = vars(p.parse_args(argv))
    for k, v in STAGE_DEFAULTS[a["stage"]].items():
        a[k] = v if a[k] is None else a[k]
    return TrainConfig(**a)


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    return run_main(_parse, train_ldm, argv, what=lambda cfg: cfg.stage)


if __name__ == "__main__":
    raise SystemExit(main())
