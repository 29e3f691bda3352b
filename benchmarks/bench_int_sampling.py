"""Images/s of bit-exact integer-emulated sampling vs float32 sampling of the same UNet, on CPU.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_int_sampling.py [--n 64] [--steps 20]
       [--threads 1] [--model fmnist16|tiny] [--repeats 2]

Runs are interleaved (float, int, fake, float, int, fake, ...) and the best of ``--repeats`` is
kept, because the CPU is shared. Profiles of one integer and one float32 UNet forward (best of 3)
say where time goes; the numba kernels of ``fused_kernels`` show up as ``fused::*`` events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import defaultdict
from pathlib import Path

import torch

from earlyq_sim.models.loader import load_unet
from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate, sample
from earlyq_sim.workloads.quality.evaluate import scheduler_config_for
from earlyq_sim.schedule import PrecisionSchedule

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = {     # first match wins
    "gemm (conv, mm, bmm; exact float kernels in int mode)": ("mkldnn_convolution", "_slow_conv2d", "aten::mm",
                                                              "aten::bmm", "addmm", "_int_mm", "aten::convolution"),
    "attention kernel (SDPA, float model only)": ("scaled_dot_product",),
    "native i16 conv/linear (C: quantize, int32 GEMM, rescale)": ("native::",),
    "fused quantize (numba, one pass)": ("fused::quantize",),
    "fused rescale + dequantize (numba, one pass)": ("fused::requant", "fused::combine"),
    "torch quantize/rescale passes (round, clamp, int64 ops)": ("aten::round", "aten::clamp", "bitwise",
                                                                "aminmax", "aten::mul_", "aten::add_"),
    "copies and casts (copy_, to)": ("aten::copy_", "_to_copy", "aten::clone"),
    "float ops (norm, silu, softmax, add, ...)": ("group_norm", "silu", "softmax", "aten::add", "aten::mul",
                                                  "aten::div", "layer_norm", "upsample", "cat", "exp", "sin", "cos"),
}
FUSED = ("quantize_centered", "requant_dequant", "quantize_prob_limbs", "combine_limbs")


def build(model: str):
    if model == "fmnist16":
        w = ROOT / "earlyq_sim/models/weights/fmnist16.safetensors"
        if w.is_file():
            return load_unet("fmnist16"), scheduler_config_for("fmnist16"), "fmnist16 (trained)"
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    un = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(32, 64), layers_per_block=1,
                     down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                     norm_num_groups=8, attention_head_dim=32)
    return un.eval(), None, "tiny random-init UNet2DModel"


def categorize(events) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for e in events:
        name = e.key
        for cat, keys in CATEGORIES.items():
            if any(k in name for k in keys):
                out[cat] += e.self_cpu_time_total / 1e3
                break
        else:
            out["other"] += e.self_cpu_time_total / 1e3
    return dict(out)


@contextlib.contextmanager
def fused_events():
    """Label the fused numba kernels and the native C calls as profiler events (both are
    invisible to torch otherwise)."""
    try:
        from earlyq_sim.simulator.integer import fused_kernels as fk
    except ImportError:         # before the fused kernels existed
        yield
        return
    try:
        from earlyq_sim.simulator.integer import native
    except ImportError:         # before the native engine existed
        native = None
    # (module, function names, event prefix): the numba passes and the C engine
    targets = [(fk, [n for n in FUSED if hasattr(fk, n)], "fused::")]
    if native is not None:
        targets.append((native, ["conv2d", "linear"], "native::"))
    saved = [(mod, n, getattr(mod, n)) for mod, names, _ in targets for n in names]

    def labelled(label, f):
        def g(*a, **k):
            with torch.profiler.record_function(label):
                return f(*a, **k)
        return g
    for mod, names, prefix in targets:
        for n in names:
            setattr(mod, n, labelled(prefix + n, getattr(mod, n)))
    try:
        yield
    finally:
        for mod, n, f in saved:
            setattr(mod, n, f)


def profile_best(f, repeats: int = 3) -> dict[str, float]:
    """Profile categories (ms) of the fastest of ``repeats`` profiled calls."""
    best = None
    with fused_events():
        f()
        for _ in range(repeats):
            with torch.profiler.profile() as p:
                f()
            cats = categorize(p.key_averages())
            if best is None or sum(cats.values()) < sum(best.values()):
                best = cats
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="fmnist16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--schedule", default="a4@0-0.4,a8@0.4-1,w8,p16")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    unet, sched_cfg, label = build(a.model)
    schedule = PrecisionSchedule.parse(a.schedule, a.steps)
    t0 = time.perf_counter()
    qm = quantize_and_calibrate(unet, schedule, n_calib=32, calib_steps=10, batch_size=32,
                                scheduler_config=sched_cfg, progress=False)
    t_cal = time.perf_counter() - t0
    runs = {
        "float32": lambda: sample(unet, None, a.n, 0, num_steps=a.steps, batch_size=a.n,
                                  scheduler_config=sched_cfg, progress=False),
        "int (bit-exact)": lambda: sample(qm, schedule, a.n, 0, batch_size=a.n, scheduler_config=sched_cfg,
                                          progress=False),
        "fake-quant float32": lambda: sample(qm, schedule, a.n, 0, batch_size=a.n, scheduler_config=sched_cfg,
                                             mode="fake", progress=False),
    }
    best = {k: float("inf") for k in runs}
    imgs = {}
    for _ in range(a.repeats):
        for k, f in runs.items():
            t = time.perf_counter()
            imgs[k] = f()
            best[k] = min(best[k], time.perf_counter() - t)
    qm.qstate.engine_calls.clear()
    runs["int (bit-exact)"]()
    engines = dict(qm.qstate.engine_calls)
    # profile one integer forward (late-stage bits) and one float forward at batch n
    x, t = torch.randn(a.n, unet.config.in_channels, 16, 16), torch.tensor(500)
    qm.set_step_bits(schedule.step_bits(a.steps - 1), len(schedule.intervals) - 1)
    qm.set_mode("int")
    prof = {}
    with torch.no_grad():
        for name, f in (("int", lambda: qm(x, t)), ("float32", lambda: unet(x, t))):
            prof[name] = profile_best(f)
    print(f"model: {label}; {a.n} images x {a.steps} DDIM steps; schedule {schedule.label}; "
          f"torch threads {a.threads}; calibration {t_cal:.1f} s")
    for k, s in best.items():
        print(f"  {k:20s} {s:7.2f} s  {a.n / s:7.2f} images/s")
    ratio = best["float32"] / best["int (bit-exact)"]
    print(f"  speed ratio int / float32 = {ratio:.2f} (>= 1 means the integer run is at least as fast)")
    print(f"  GEMM engine calls in one int run: {engines}")
    i, fq, fl = (imgs[k].astype(float) for k in ("int (bit-exact)", "fake-quant float32", "float32"))
    print(f"  mean |pixel difference| (0..255): int vs fake {abs(i - fq).mean():.2f}, "
          f"int vs float32 {abs(i - fl).mean():.2f}, fake vs float32 {abs(fq - fl).mean():.2f}")
    for name, cats in prof.items():
        tot = sum(cats.values())
        print(f"  profile, one {name} UNet forward at batch {a.n} (late-stage bits): {tot:.0f} ms self CPU")
        for c, ms in sorted(cats.items(), key=lambda kv: -kv[1]):
            print(f"    {c:62s} {ms:7.1f} ms {100 * ms / tot:5.1f}%")
    gemm = next(k for k in CATEGORIES if k.startswith("gemm"))
    print(f"  floor: integer GEMMs alone {prof['int'].get(gemm, 0):.0f} ms vs the whole float32 forward "
          f"{sum(prof['float32'].values()):.0f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps({"images_per_s": {k: a.n / s for k, s in best.items()},
                                            "ratio_int_over_float": ratio, "profile_ms": prof,
                                            "engines": engines}, indent=1))


if __name__ == "__main__":
    main()
