"""Validate the cost lane against Bit Fusion's published per-layer simulator results.

Usage (from the repo root, main venv; about 15 s, no downloads):

    .venv/bin/python benchmarks/validate_bitfusion.py [--write docs/validation_bitfusion.md] [--csv out.csv]

1. Builds Bit Fusion's eight benchmark networks in PyTorch (``bitfusion_nets.py``: AlexNet and
   ResNet-18 in their WRPN form, SVHN, CIFAR-10, LeNet-5, VGG-7, RNN, LSTM; batch 16) and traces
   them with our tracer (meta tensors).
2. Costs every conv/FC layer on the ``bitfusion-isca18`` preset at that layer's own published
   activation/weight bits (``StepBits(w, a, a)``, one layer at a time).
3. Compares with the published results of Bit Fusion's simulator for the same 16x32 design
   (``benchmarks/data/bitfusion/``, copied from hsharma35/bitfusion @ 04ec1c87
   ``results/bitfusion-eyeriss-sim-sweep.csv``): compute cycles (its Cycles minus Memory wait
   cycles) and total cycles at its 192-bit interface, its untiled closed form
   (``bitfusion_reference.compute_cycles``, checked equal to its 4096-bit run on every layer), and
   its energy (core / SRAM / DRAM) from its published access counts and constants.
4. Splits every compute-cycle ratio into three factors (ours / ours without fill/drain, that /
   Bit Fusion's closed form, that / Bit Fusion's tiled result) and writes the report.

The same layers are also costed with the preset's dataflow switched to ws (sensitivity only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # sibling modules
import bitfusion_reference as bref  # noqa: E402
from bitfusion_nets import NETWORKS, trace_network  # noqa: E402

ARCH = "bitfusion-isca18"


def steady_cycles(arch, M, N, K, G, x_bits, y_bits):
    """Our compute cycles without fill/drain and preload: ``G * passes * row_folds * col_folds *
    slot * ceil(T / lanes)`` with one temporal block (the streaming the array does)."""
    import numpy as np

    from earlyq_sim.simulator.cost.cycle_model import bit_factors
    from earlyq_sim.simulator.cost.mapping import ceil_div, map_gemm

    mp = map_gemm(arch.array.dataflow, arch.array.rows, arch.array.cols, M, N, K)
    f = bit_factors(arch.pe, np.asarray(x_bits), np.asarray(y_bits))
    return np.asarray(G) * f.passes * mp.row_folds * mp.col_folds * f.slot * ceil_div(mp.T, f.lanes)


def fold_count(arch, M, N, K, G, x_bits, y_bits):
    """Folds the array runs (each pays ``preload + R + C - 2`` once per temporal tile)."""
    from earlyq_sim.simulator.cost.cycle_model import bit_factors
    from earlyq_sim.simulator.cost.mapping import map_gemm

    mp = map_gemm(arch.array.dataflow, arch.array.rows, arch.array.cols, M, N, K)
    return G * bit_factors(arch.pe, x_bits, y_bits).passes * mp.row_folds * mp.col_folds


def evaluate_layers(arch, g):
    """Our cost of every row of ``g`` at its own bits; one output row per layer."""
    import pandas as pd

    from earlyq_sim.schedule import StepBits
    from earlyq_sim.simulator.cost.cost_model import evaluate
    from earlyq_sim.simulator.cost.mapper import describe_mappings

    parts = []
    for (a, w), sub in g.groupby(["act_bits", "weight_bits"], sort=False):
        parts.append(evaluate(arch, sub, StepBits(int(w), int(a), int(a))))
    out = pd.concat(parts).loc[g.index]
    out["mapping"] = describe_mappings(out["map_cand"], out["map_order"], out["tile_m"], out["tile_n"],
                                       out["tile_k"], arch.array.dataflow)
    return out


def collect(arch_name: str = ARCH) -> tuple:
    """One row per published layer: ours (preset, and its ws variant) and Bit Fusion's numbers."""
    import numpy as np
    import pandas as pd

    from earlyq_sim.simulator.cost.arch import load_arch

    arch = load_arch(arch_name)
    ws = replace(arch, array=replace(arch.array, dataflow="ws"))
    pub, pub4k = bref.load_published(bref.BW_BITS), bref.load_published(4096)
    rows, t_ours = [], 0.0
    for net in NETWORKS:
        g, _ = trace_network(net)
        t0 = time.perf_counter()
        ours = evaluate_layers(arch, g)
        t_ours += time.perf_counter() - t0
        ours_ws = evaluate_layers(ws, g)
        args = [g[c].to_numpy() for c in ("M", "N", "K", "G", "act_bits", "weight_bits")]
        steady = steady_cycles(arch, *args)
        folds = fold_count(arch, *args)
        for i, (_, r) in enumerate(g.iterrows()):
            p, p4 = pub.loc[(net, r["layer"])], pub4k.loc[(net, r["layer"])]
            o = ours.iloc[i]
            be = bref.energy_pj(p)
            rows.append(dict(
                network=net, layer=r["layer"], op=r["op"], M=int(r["M"]), N=int(r["N"]), K=int(r["K"]),
                a=int(r["act_bits"]), w=int(r["weight_bits"]), im2col=bool(r["im2col"]),
                pf=bref.perf_factor(int(r["act_bits"]), int(r["weight_bits"])),
                bf_total=int(p["Cycles"]), bf_stall=int(p["Memory wait cycles"]), bf_compute=int(p["compute"]),
                bf_closed=bref.compute_cycles(bref.shape_of(r), int(r["act_bits"]), int(r["weight_bits"]),
                                              bool(r["im2col"])),
                bf_compute_4k=int(p4["compute"]),
                bf_dram_bytes=(float(p["DRAM Read"]) + float(p["DRAM Write"])) / 8.0,
                bf_e_core=be["core"], bf_e_sram=be["sram"], bf_e_dram=be["dram"],
                ours_compute=float(o["compute_cycles"]), ours_cycles=float(o["cycles"]),
                ours_steady=float(steady[i]), ours_folds=int(folds[i]),
                ours_dram_bytes=float(o["dram_bytes"]), ours_compulsory=float(o["compulsory_dram_bytes"]),
                ours_e_core=float(o["energy_compute_pj"]), ours_e_sram=float(o["energy_sram_pj"]),
                ours_e_dram=float(o["energy_dram_pj"]), ours_e_leak=float(o["energy_leak_pj"]),
                ours_mapping=o["mapping"], ws_compute=float(ours_ws.iloc[i]["compute_cycles"]),
                ws_cycles=float(ours_ws.iloc[i]["cycles"])))
    df = pd.DataFrame(rows)
    df["err_compute"] = df["ours_compute"] / df["bf_compute"] - 1.0
    df["err_total"] = df["ours_cycles"] / df["bf_total"] - 1.0
    df["err_ws_compute"] = df["ws_compute"] / df["bf_compute"] - 1.0
    # ours / published compute = fill/drain x packing x Bit Fusion's tiling (exact product)
    df["f_fill"] = df["ours_compute"] / df["ours_steady"]
    df["f_pack"] = df["ours_steady"] / df["bf_closed"]
    df["f_tile"] = df["bf_closed"] / df["bf_compute"]
    assert np.allclose(df["f_fill"] * df["f_pack"] * df["f_tile"], df["ours_compute"] / df["bf_compute"])
    return df, arch, t_ours


def collect_with_grid(splits: int):
    """Diagnostic only: ``collect`` with the mapper trying ``splits`` spatial tile sizes per dimension
    (the shipped grid has 6: the dimension and 5 halvings); restored afterwards."""
    from earlyq_sim.simulator.cost import mapper

    old = mapper.SPLITS
    mapper.SPLITS = splits
    try:
        return collect()
    finally:
        mapper.SPLITS = old


def summary(df):
    """Per network: mean and worst |relative error| over layers (compute, total, ws compute) and
    the error of the network's summed cycles."""
    import pandas as pd

    out = []
    for net, d in df.groupby("network", sort=False):
        worst = d.loc[d["err_compute"].abs().idxmax()]
        out.append(dict(
            network=net, layers=len(d),
            mean_compute=100 * d["err_compute"].abs().mean(), worst_compute=100 * worst["err_compute"],
            worst_layer=worst["layer"], net_compute=100 * (d["ours_compute"].sum() / d["bf_compute"].sum() - 1),
            mean_total=100 * d["err_total"].abs().mean(), worst_total=100 * d.loc[d["err_total"].abs().idxmax(),
                                                                                   "err_total"],
            net_total=100 * (d["ours_cycles"].sum() / d["bf_total"].sum() - 1),
            mean_ws=100 * d["err_ws_compute"].abs().mean(),
            mean_closed=100 * (d["ours_steady"] / d["bf_closed"] - 1).abs().mean()))
    return pd.DataFrame(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", default=None, help="write the markdown report here (docs/validation_bitfusion.md)")
    ap.add_argument("--csv", default=None, help="also write the per-layer table as CSV")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bitfusion_report import build_report

    t0 = time.perf_counter()
    df, arch, t_ours = collect()
    s = summary(df)
    diag = summary(collect_with_grid(13)[0])
    text = build_report(df, s, arch, wall_s=time.perf_counter() - t0, t_ours=t_ours, diag=diag)
    print(s.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
