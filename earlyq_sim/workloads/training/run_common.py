"""What every training loop of the project shares: the result record, the learning-rate and EMA
schedules, and the training-curve CSV (``step, loss, lr, seconds``; seconds of training)."""

from __future__ import annotations

import csv
import signal
from dataclasses import dataclass, field
from pathlib import Path

from earlyq_sim.errors import UserError

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


def add_loop_args(p, lr=None, warmup_steps=None, lr_help: str | None = None) -> None:
    """The command-line options of ``LoopConfig`` (an argparse parser), shared by the trainers."""
    p.add_argument("--ckpt-dir", required=True, help="checkpoints, training curve and log (resumes from it)")
    p.add_argument("--steps", type=int, default=200_000, help="train until this step")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=lr, help=lr_help)
    p.add_argument("--warmup-steps", type=int, default=warmup_steps, help="linear lr warm-up, steps")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--ckpt-every-s", type=float, default=300.0, help="seconds between checkpoints")
    p.add_argument("--export", dest="export_path", default=None, help="EMA weights file (safetensors)")
    p.add_argument("--export-every-s", type=float, default=600.0, help="seconds between exports")
    p.add_argument("--log-every", type=int, default=50, help="steps per training-curve row")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: Debian's)")


class Curve:
    """Per-step losses of this call and the training-curve CSV: one row (the window's mean loss,
    the lr, seconds trained) every ``every`` steps."""

    def __init__(self, path: Path, resume_step: int, every: int):
        self.fh, self.writer = open_curve(path, resume_step)
        self.every, self.window, self.losses = every, [], []

    def add(self, step: int, loss: float, lr: float, seconds: float) -> float | None:
        """Record one step; returns the mean loss when this step wrote a row."""
        self.losses.append(loss)
        self.window.append(loss)
        if step % self.every:
            return None
        mean = sum(self.window) / len(self.window)
        self.writer.writerow({"step": step, "loss": f"{mean:.6f}", "lr": f"{lr:.3e}", "seconds": f"{seconds:.1f}"})
        self.fh.flush()
        self.window.clear()
        return mean

    def close(self) -> None:
        self.fh.close()


class StopOnSignals:
    """SIGTERM / SIGINT only raise ``requested``: the loop finishes its step, checkpoints, exports
    and returns. ``restore()`` puts the previous handlers back (call it in a ``finally``)."""

    def __init__(self):
        self.requested = False
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not in the main thread: nothing to catch
                pass

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def run_main(parse, train, argv, what: str = "") -> int:
    """A trainer's ``main``: parse, train, one line of result; a UserError is one line, exit 2."""
    try:
        cfg = parse(argv)
        res = train(cfg)
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    print(f"trained {what(cfg) + ' ' if callable(what) else what}steps {res.start_step}..{res.end_step} in "
          f"{res.seconds:.0f}s; checkpoint {res.last_ckpt}")
    return 0
