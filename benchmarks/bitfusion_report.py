"""Markdown report of ``validate_bitfusion.py``: summary, per-layer tables, energy, explanations.

Every number in the text is computed from the per-layer table, so the report follows the model.
"""

from __future__ import annotations

TARGET = 10.0  # mean |relative error| of per-layer compute cycles, %, per network


def _pct(v: float) -> str:
    return f"{v:+.1f}"


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _factor_rows(df) -> list[list]:
    rows = []
    for net, d in df.groupby("network", sort=False):
        oc, st, cl, bf = (d[c].sum() for c in ("ours_compute", "ours_steady", "bf_closed", "bf_compute"))
        rows.append([net, f"{oc / st:.3f}", f"{st / cl:.3f}", f"{cl / bf:.3f}", f"{oc / bf:.3f}",
                     f"{100 * (oc - st) / oc:.1f}"])
    return rows


def build_report(df, s, arch, wall_s: float, t_ours: float, diag=None) -> str:
    """The report; ``df`` per layer and ``s`` per network (``validate_bitfusion.collect``/``summary``),
    ``diag`` an optional per-network summary with the finer tile grid (diagnostic)."""
    met = [r.network for r in s.itertuples() if r.mean_compute <= TARGET]
    fill = arch.array.rows + arch.array.cols - 2
    L = ["# Validation against Bit Fusion's published simulator results", "",
         "Command: `.venv/bin/python benchmarks/validate_bitfusion.py --write docs/validation_bitfusion.md`",
         f"(wall time {wall_s:.0f} s, of which our cost model {t_ours * 1e3:.0f} ms for all {len(df)} layers).", "",
         "- **Reference**: Bit Fusion's own simulator (Sharma et al., ISCA 2018; github hsharma35/bitfusion @ "
         "04ec1c87), its published per-layer results `results/bitfusion-eyeriss-sim-sweep.csv` for the "
         "configuration `bf_e_conf.ini` (16x32 Fusion Units, 500 MHz, 64/32/16 KB weight/activation/output "
         "SRAM, 192-bit memory interface, 8-bit max, 2-bit min). The rows used are copied to "
         "`benchmarks/data/bitfusion/` (see its README).",
         f"- **Ours**: arch `{arch.name}` (`earlyq_sim/simulator/cost/archs/{arch.name}.yaml`, every number with "
         "its source), the networks of Bit Fusion's `benchmarks.py` written in PyTorch "
         "(`benchmarks/bitfusion_nets.py`; the published sweep ran AlexNet and ResNet-18 in their WRPN 2x form, "
         "batch 16), traced by our tracer and costed layer by layer at each layer's published activation/weight "
         "bits. Pooling and other vector ops are left out: Bit Fusion's simulator costs only conv and FC layers.",
         "- **Compute cycles**: Bit Fusion's `Cycles - Memory wait cycles` vs our `compute_cycles` (no "
         "memory stalls). **Total**: its `Cycles` vs our `cycles` (latency with DRAM at 24 B/cycle).",
         "- **Closed form**: Bit Fusion's untiled count `B*ceil(OC/M)*OH*OW*K^2*ceil(IC/(N*pf))` (im2col for a "
         "layer fed by the network input: `B*OH*OW*ceil(OC/M)*ceil(K^2*IC/(N*pf))`), "
         "`pf = floor(8/max(a,2))*floor(8/max(w,2))`, restated in `benchmarks/bitfusion_reference.py`. It "
         f"equals the compute cycles of Bit Fusion's own 4096-bit run on "
         f"{int((df['bf_closed'] == df['bf_compute_4k']).sum())} of {len(df)} layers, which also confirms "
         "every layer's shape and precision in our PyTorch definitions.", "",
         "## Summary", "",
         f"Mean and worst |error| over a network's layers (unweighted); `net`: error of the network's summed "
         f"cycles. Target: mean compute error <= {TARGET:g} %.", ""]
    L += _table(["network", "layers", "compute: mean abs err %", "worst err % (layer)", "net err %",
                 "total: mean abs err %", "worst err %", "net err %", "target"],
                [[r.network, r.layers, f"{r.mean_compute:.1f}", f"{_pct(r.worst_compute)} ({r.worst_layer})",
                  _pct(r.net_compute), f"{r.mean_total:.1f}", _pct(r.worst_total), _pct(r.net_total),
                  "met" if r.mean_compute <= TARGET else "missed"] for r in s.itertuples()])
    L += ["", f"Target met for {', '.join(met) if met else 'no network'}; missed for "
          f"{', '.join(n for n in s['network'] if n not in met) or 'none'}. The misses are not noise: every "
          "layer's ratio splits exactly into the three systematic factors below.", "",
          "## Where the compute difference comes from", "",
          "ours / Bit Fusion = (ours / ours without fill/drain) x (ours without fill/drain / Bit Fusion closed "
          "form) x (closed form / Bit Fusion published). Per network, on summed cycles:", ""]
    L += _table(["network", "fill/drain (ours/steady)", "packing (steady/closed form)",
                 "Bit Fusion tiling (closed/published)", "ours/published", "fill/drain share of ours %"],
                _factor_rows(df))
    L += ["", "### 1. Fill and drain (ours only)", "",
          f"Our systolic model pays `R + C - 2 = {fill}` cycles of wavefront fill/drain per fold (os has no "
          "weight preload), SCALE-Sim's convention (docs/validation.md). Bit Fusion's formula has none. "
          "A fold streams `ceil(K / lanes)` slots, and fused lanes (pf = 4 at 4 bits, 16 at 2 bits) shorten "
          f"the stream but not the fill, so the term is largest where K/pf is small: 1x1 convs at 4 bits "
          f"(ResNet-18 `conv*_a`: K = 128 -> 32 slots + {fill}), FC layers of 1024 inputs at 2 bits "
          f"(64 + {fill}), and first layers (VGG-7/LeNet-5 conv0/conv1_x: K = 27 or 25 -> 2 slots + {fill}, "
          "24x). The factor table gives its size per network.", "",
          "### 2. Packing of the reduction (both)", "",
          "Bit Fusion fuses BitBricks along the reduction: a Fusion Unit adds pf products of different input "
          "channels, so its 16 rows take 16 x pf channels per cycle, and a channel-wise conv pads the input "
          "channels to a multiple of 16 x pf *per kernel position* (`K^2 * ceil(IC/(N*pf))`). AlexNet conv2 "
          "(IC = 96 at pf = 4): 96 of 128 channel slots used (factor 0.750); LeNet-5 conv1 (IC = 32 at pf = 16): "
          "32 of 256 (0.125); CIFAR-10 conv1-2 and VGG-7 conv2 (IC = 128 at pf = 16): 0.5; SVHN conv1-2 (IC = 64): "
          "0.25. "
          "Ours streams the whole im2col reduction `K = K^2 * IC` in time, `ceil(K / pf)` slots, so it pays "
          "almost no padding; ours is faster there. On the first (im2col) layers Bit Fusion pads `K^2 * IC` "
          "to 16 x pf (SVHN conv0: 27 -> 64 at pf = 4) and ours rows hold 16 output pixels (no loss: "
          "16384 pixels). With IC a multiple of 16 x pf the packing factor is 1.000 (ResNet-18 after its stem, "
          "AlexNet conv3-5, the FC layers but LSTM's, whose 3600 inputs at pf = 4 give 0.987).", "",
          "### 3. Bit Fusion's tiling (theirs only)", "",
          "Bit Fusion's optimiser tries power-of-two tiles of batch, output rows/columns, input and output "
          "channels and charges every tile its own ceilings (`num_tiles * cycles(tile)`), so a tile that does "
          "not divide the layer costs as a full one: AlexNet conv3-5 at the 192-bit interface choose 2x2 "
          "output tiles of the 13x13 map (7 x 7 tiles = 196 pixel slots for 169 pixels, factor 0.862), "
          "conv2 (27x27 -> 28x28) 0.930, LSTM (OC = 3600 in tiles of 128) 0.974. At 4096 bits its optimiser picks untiled "
          "mappings and equals the closed form on every layer. Our os mapper tiles only whole folds, "
          "so tiling never changes our compute count.", "",
          "### Dataflow of the preset", "",
          "Our `bitfusion` PE type puts fused MACs on the dataflow's temporal dimension; that is the "
          "reduction only under `os`, which is why the preset uses os. Under ws (the other shipped archs' "
          "dataflow) lanes divide the output-pixel stream while every fold still pays preload + fill/drain "
          "(16 + 46), and the mapper's temporal tiles (a 32-bit partial-sum tile of 16 KB / 2 holds 64 "
          "pixels x 32 channels) pay it again per tile; the same layers are then far off:", ""]
    L += _table(["network", "os (preset): mean abs err %", "ws: mean abs err %"],
                [[r.network, f"{r.mean_compute:.1f}", f"{r.mean_ws:.1f}"] for r in s.itertuples()])
    L += ["", "## Total cycles (with memory)", "",
          "Bit Fusion: `compute + max(0, DRAM bits / 192 - compute) + first fill + last write-back`. Ours: "
          "`memory.overlap: tiles` (the same shape: first fill and last write-back exposed, the rest "
          "overlapped). The DRAM traffic differs for reasons independent of the cycle model:", "",
          "- **Outputs**: Bit Fusion writes every output at 32 bits (`oprec = 32`) to DRAM; ours writes it "
          "requantised at the activation bits (2-8 bits), 4-16x less. Its first layers are memory-bound "
          "for this reason (VGG-7 conv1: 8.4 MB of 32-bit outputs, 0.70 M cycles vs 0.066 M compute).",
          "- **First layer inputs**: Bit Fusion moves the im2col-expanded input (K^2 copies) from DRAM; ours "
          "the real input tensor.",
          "- **Tiling**: Bit Fusion splits the reduction (input-channel tiles, partial sums kept in OBUF); our "
          "os mapper never splits it (outputs finish in the PEs), so a layer whose `K x 32` weight tile does "
          "not fit half the 64 KB WBUF (K > 2048 at 4 bits, K > 4096 at 2 bits: AlexNet conv2-5 and fc1-2, "
          "ResNet-18 conv4_x_b and conv5_x_b, CIFAR-10 conv5) has no tiled candidate and falls back to a one-block schedule that refetches per fold. And the mapper's "
          "tile grid is relative (the dimension and 5 halvings, in folds): for large M the smallest M tile "
          "(ResNet-18 conv2_x: 50176 / 32 = 1568 rows) does not fit the 16 KB IBUF half, so no tiled "
          "candidate exists even where a 16-row tile would fit (see the diagnostic below).", ""]
    if diag is not None:
        L += ["Diagnostic (not the shipped model): the same run with the mapper's tile grid widened from 6 to "
              "13 sizes per spatial dimension (`mapper.SPLITS = 13` set at run time by this script, halvings "
              "down to 1/4096 of the dimension):", ""]
        L += _table(["network", "total: mean abs err % (shipped grid)", "(13 sizes)", "net err % (shipped)",
                     "(13 sizes)"],
                    [[a.network, f"{a.mean_total:.1f}", f"{b.mean_total:.1f}", _pct(a.net_total),
                      _pct(b.net_total)] for a, b in zip(s.itertuples(), diag.itertuples())])
        L += [""]
    L += ["## Energy (per network, uJ)", "",
          "Bit Fusion's from its published access counts and its constants (core 235.104 pJ per compute "
          "cycle, CACTI pJ/bit per buffer and direction, DRAM 15 pJ/bit; `bitfusion_reference.energy_pj`); "
          "ours from the preset (0.028699 pJ per BitBrick step = 235.104 pJ / 8192 bricks, one SRAM figure "
          "0.4387 pJ/B = the mean of its six, DRAM 120 pJ/B, no leakage, as its model).", ""]
    rows = []
    for net, d in df.groupby("network", sort=False):
        e = [d[c].sum() / 1e6 for c in ("bf_e_core", "ours_e_core", "bf_e_sram", "ours_e_sram", "bf_e_dram",
                                         "ours_e_dram")]
        rows.append([net] + [f"{v:,.1f}" for v in e] + [f"{(e[1] + e[3] + e[5]) / (e[0] + e[2] + e[4]):.2f}"])
    L += _table(["network", "core BF", "core ours", "SRAM BF", "SRAM ours", "DRAM BF", "DRAM ours",
                 "total ours/BF"], rows)
    L += ["", "- **Core**: Bit Fusion charges the whole array per compute cycle, idle units included; ours "
          "charges per MAC (bricks used), so ours is lower by the array's idle share (padding, fill/drain) "
          "and equal at full use.",
          "- **SRAM**: Bit Fusion reads a weight and an activation from SRAM for every MAC (its IBUF and WBUF "
          "reads equal MACs x bits); ours counts array-side operand reads once per fold (PE registers reuse "
          "them) plus every DRAM byte, so ours is about an order of magnitude lower.",
          "- **DRAM**: follows the traffic differences above (32-bit outputs and im2col inputs on its side, "
          "refetches of our os fallback schedules on ours).", "",
          "## What this says about our model", "",
          "No arithmetic bug showed up: with the two mappings packed alike (ResNet-18 after its stem: IC a "
          "multiple of 16 x pf, one fold per 16 pixels x 32 channels) our compute cycles equal Bit Fusion's "
          "closed form plus exactly `folds x (R + C - 2)` on every layer "
          "(`tests/benchmarks/test_validate_bitfusion.py`). Four modelling choices decide the gap:", "",
          "1. **Fused lanes sit on the temporal dimension** (`pe_types/bitfusion.py`: `lanes = "
          "floor(bricks / bricks per MAC)`, applied as `ceil(T / lanes)`). Bit Fusion fuses along the "
          "reduction; the two agree only under os. Under ws (the shipped `bitfusion` arch) a 2-bit fold "
          "streams T/16 rows behind an unchanged preload + fill/drain, and a partial-sum-limited temporal "
          "tile repays it per tile: on this design ws is 5-33x off on average (table above). How much it costs the "
          "shipped 32x32 arch with 2 MiB buffers depends on its tile lengths and was not measured here.",
          "2. **Fill/drain per fold is never overlapped** with the next fold (SCALE-Sim's convention, "
          "validated in docs/validation.md). Bit Fusion's formula charges none; a pipelined array would "
          "hide most of it. At Bit Fusion's short low-bit folds it is 4-69 % of our cycles (table above).",
          "3. **os never splits the reduction**, so on a 64 KB WBUF many layers have no tiled candidate and "
          "fall back to a one-block schedule with per-fold refetch (ResNet-18 conv5_1_b: 244 MB of DRAM "
          "against 5.5 MB compulsory and Bit Fusion's 77 MB).",
          "4. **The mapper's tile grid is relative** (`mapper.SPLITS = 6`: the dimension and 5 halvings): "
          "with small buffers and large layers no tile small enough is tried (diagnostic above; 13 sizes "
          "take ResNet-18's net total error from +105 % to +71 %; conv2_1_b's DRAM from 247 MB, 38x "
          "compulsory, to 16 MB and its latency from 10.3 M to 4.19 M cycles, compute-bound).", "",
          "## Per layer: compute cycles", "",
          "`closed`: Bit Fusion's closed form; `BF`: its published compute cycles (192-bit run); `steady`: ours "
          "without fill/drain; factors as above; `a/w`: activation/weight bits (1 = binary, run as 2).", ""]
    L += _table(["network", "layer", "a/w", "pf", "M", "N", "K", "BF", "closed", "ours", "err %", "steady",
                 "fill", "packing", "BF tiling"],
                [[r.network, r.layer, f"{r.a}/{r.w}", r.pf, r.M, r.N, r.K, f"{r.bf_compute:,}", f"{r.bf_closed:,}",
                  f"{r.ours_compute:,.0f}", _pct(100 * r.err_compute), f"{r.ours_steady:,.0f}", f"{r.f_fill:.3f}",
                  f"{r.f_pack:.3f}", f"{r.f_tile:.3f}"] for r in df.itertuples()])
    L += ["", "## Per layer: total cycles and DRAM traffic", "",
          "`BF stall`: its Memory wait cycles; DRAM in MB (10^6 B), ours with its compulsory floor.", ""]
    L += _table(["network", "layer", "BF total", "BF stall", "BF DRAM", "ours total", "err %", "ours DRAM",
                 "compulsory", "our mapping"],
                [[r.network, r.layer, f"{r.bf_total:,}", f"{r.bf_stall:,}", f"{r.bf_dram_bytes / 1e6:.2f}",
                  f"{r.ours_cycles:,.0f}", _pct(100 * r.err_total), f"{r.ours_dram_bytes / 1e6:.2f}",
                  f"{r.ours_compulsory / 1e6:.2f}", r.ours_mapping] for r in df.itertuples()])
    return "\n".join(L) + "\n"
