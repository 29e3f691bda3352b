"""One UNet forward, bit-exact integer emulation vs float32, on the architecture configs (random
init where the project ships no weights: speed does not depend on the weight values).

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_int_forward.py [--model ddpm-cifar10]
       [--batch 2 16] [--threads 2] [--repeats 3] [--check]

Calibrates on 2 images x 2 steps (ranges only matter for the values, not the speed), then
times one forward at late-stage bits (W8A8, 16-bit probabilities) per batch size, best of
``--repeats``. ``--check`` also runs the f64 engine and asserts bit-identical outputs.
"""

from __future__ import annotations

import argparse
import time

import torch

from earlyq_sim.models.loader import build_unet, config_for, load_unet
from earlyq_sim.models.registry import resolve_model
from earlyq_sim.simulator.integer.quant_modules import QuantConfig
from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate
from earlyq_sim.schedule import PrecisionSchedule


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ddpm-cifar10")
    ap.add_argument("--batch", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    info = resolve_model(a.model)
    try:
        unet, init = load_unet(a.model), "trained weights"
    except Exception:           # no shipped weights: the architecture with random init
        unet, init = build_unet(config_for(info)).eval(), "random init"
    cfg = unet.config
    sch = PrecisionSchedule.parse("a8,w8,p16", 2)
    qm = quantize_and_calibrate(unet, sch, n_calib=2, calib_steps=2, batch_size=2, progress=False)
    qm.set_step_bits(sch.step_bits(1), 0)
    qm.set_mode("int")
    t = torch.tensor(500)
    print(f"{a.model} ({init}), {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M params, W8A8P16, "
          f"torch threads {a.threads}, best of {a.repeats}")
    for b in a.batch:
        x = torch.randn(b, cfg.in_channels, cfg.sample_size, cfg.sample_size)
        with torch.no_grad():
            y_int = qm(x, t).sample
            unet(x, t)
            bi = bf = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                qm(x, t)
                bi = min(bi, time.perf_counter() - t0)
                t0 = time.perf_counter()
                unet(x, t)
                bf = min(bf, time.perf_counter() - t0)
            same = ""
            if a.check:
                object.__setattr__(qm.qstate, "cfg", QuantConfig(engine="f64"))
                for g in qm.gemms.values():
                    g._plans.clear()
                same = f", bit-identical to f64: {torch.equal(qm(x, t).sample, y_int)}"
                object.__setattr__(qm.qstate, "cfg", QuantConfig())
                for g in qm.gemms.values():
                    g._plans.clear()
                qm(x, t)
        print(f"  batch {b:3d}: integer {bi * 1e3:8.1f} ms, float32 {bf * 1e3:8.1f} ms, "
              f"ratio float/int {bf / bi:.2f}{same}")


if __name__ == "__main__":
    main()
