"""What every training loop of the project shares: the result record, the learning-rate and EMA
schedules, and the training-curve CSV (``step, loss, lr, seconds``; seconds of training)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

CSV_FIELDS = ("step", "loss", "lr", "seconds")


@dataclass(frozen=True)
class LoopConfig:
    """Hyper-parameters and paths every training loop has (times in seconds, lr per step)."""

    ckpt_dir: str
    steps: int = 200_000
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 500
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1
    ckpt_every_steps: int = 0          # 0: only time-based / final checkpoints (tests use steps)
    ckpt_every_s: float = 300.0
    keep_ckpts: int = 2
    export_path: str | None = None     # EMA weights (safetensors), written atomically
    export_every_s: float = 600.0
    log_every: int = 50
    data_dir: str | None = None


@dataclass(frozen=True)
class TrainResult:
    """What one call trained: per-step losses of this call, final step, checkpoint path."""

    start_step: int
    end_step: int
    losses: tuple[float, ...] = field(repr=False)
    last_ckpt: str | None
    seconds: float


def lr_at(step: int, cfg) -> float:
    """Linear warm-up to ``cfg.lr`` over ``cfg.warmup_steps``, then constant."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)


def ema_decay_at(step: int, max_decay: float) -> float:
    """EMA decay with a warm-up, ``min(max_decay, (1 + step) / (10 + step))``: early weights are
    not averaged over thousands of untrained steps (the EMA trap in REFERENCES.md)."""
    return min(max_decay, (1.0 + step) / (10.0 + step))


def open_curve(path: Path, resume_step: int):
    """The training-curve CSV opened for appending, rows past the resumed step dropped."""
    rows = []
    if path.is_file() and resume_step > 0:
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
    fh = open(path, "w", newline="")
    writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    fh.flush()
    return fh, writer
