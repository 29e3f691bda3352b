"""Per-layer speed of the native i16 conv (quantize + exact int32 GEMM + rescale, one call) vs
float32 convs (mkldnn, NCHW and NHWC) on the conv shapes of the shipped fmnist16 UNet, vs
``torch._int_mm`` on one GEMM shape, and the register-only peak of ``vpmaddwd`` vs float32 FMA
(``peak_madd.c``).

Usage: .venv/bin/python benchmarks/bench_native_conv.py [--threads 1] [--repeats 7] [--batch 64]

Reports the best of ``--repeats`` per case (the machine is shared) in ms and in G multiply-adds
per second.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earlyq_sim.simulator.integer import native
from earlyq_sim.simulator.integer.quant_modules import Rescale

# (C_in, H, C_out, kernel) of fmnist16's convs at batch N (16x16 input, channels 32/64/128)
SHAPES = [(32, 16, 32, 3), (64, 16, 64, 3), (96, 16, 32, 3), (64, 8, 64, 3), (128, 8, 128, 3),
          (192, 8, 64, 3), (128, 4, 128, 3), (256, 4, 128, 3), (96, 16, 32, 1)]


def best(f, repeats: int) -> float:
    f()
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t)
    return out


def peak() -> str:
    """Compile and run peak_madd.c (register-only vpmaddwd vs FMA throughput), if a compiler exists."""
    src = Path(__file__).with_name("peak_madd.c")
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "peak")
        try:
            subprocess.run([os.environ.get("CC", "cc"), "-O2", "-mavx2", "-mfma", str(src), "-o", exe], check=True,
                           capture_output=True, timeout=60)
            return subprocess.run([exe], check=True, capture_output=True, text=True, timeout=120).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            return f"peak test not run: {e}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not native.available():
        raise SystemExit(f"native engine unavailable: {native.reason()}")
    n = a.batch
    print(f"batch {n}, torch threads {a.threads}; best of {a.repeats}; ms (G multiply-adds/s)")
    print(f"{'C_in x H x H -> C_out, k':28s} {'native i16':>16s} {'f32 NHWC':>16s} {'f32 NCHW':>16s}")
    tot = np.zeros(3)
    g = torch.Generator().manual_seed(0)
    for c, h, co, k in SHAPES:
        x = torch.randn(n, c, h, h, generator=g)
        w = torch.randint(-127, 128, (co, c, k, k), generator=g)
        p = k // 2
        ep = native.Epilogue(None, Rescale.make(np.full(co, 1e-4), 32, (co, 1, 1)).arrays, -32767, 32767, 0.01)
        wpk = native.pack_weight(w)
        xf, wf = x.clone(), w.float()
        xcl, wcl = x.contiguous(memory_format=torch.channels_last), wf.contiguous(memory_format=torch.channels_last)
        ts = [best(lambda: native.conv2d(x, 0.05, -128.0, 127.0, wpk, co, (k, k), (1, 1), (p, p), ep, False, 32,
                                         False), a.repeats),
              best(lambda: F.conv2d(xcl, wcl, None, 1, p), a.repeats),
              best(lambda: F.conv2d(xf, wf, None, 1, p), a.repeats)]
        tot += ts
        macs = n * h * h * co * c * k * k
        cells = " ".join(f"{t * 1e3:7.2f} ({macs / t / 1e9:5.1f})" for t in ts)
        print(f"{c:4d} x {h:2d} x {h:2d} -> {co:4d}, {k}x{k}     {cells}")
    print(f"{'total':28s} " + " ".join(f"{t * 1e3:16.2f}" for t in tot))
    a8 = torch.randint(-128, 128, (4096, 1152), dtype=torch.int8, generator=g)
    b8 = torch.randint(-128, 128, (1152, 128), dtype=torch.int8, generator=g)
    af, bf = a8.float(), b8.float()
    t_int = best(lambda: torch._int_mm(a8, b8), 2)
    t_f32 = best(lambda: af @ bf, a.repeats)
    print(f"GEMM 4096x1152x128: torch._int_mm {t_int * 1e3:.1f} ms, float32 matmul {t_f32 * 1e3:.1f} ms")
    print("one core, registers only:", peak())


if __name__ == "__main__":
    main()
