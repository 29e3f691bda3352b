"""The Bit Fusion preset and validation (benchmarks/validate_bitfusion.py): the preset holds the
published numbers, our PyTorch nets reproduce the published layers, and our compute cycles equal
Bit Fusion's closed form plus our fill/drain where the two mappings pack the reduction alike."""

import sys
from pathlib import Path

import numpy as np
import pytest

from earlyq_sim.simulator.cost.arch import load_arch
from earlyq_sim.simulator.cost.cycle_model import peak_macs_per_cycle

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bitfusion_reference as bref  # noqa: E402
import validate_bitfusion as vb  # noqa: E402
from bitfusion_nets import trace_network  # noqa: E402


@pytest.fixture(scope="module")
def resnet():
    return trace_network("RESNET-18")[0]


def test_preset_holds_the_published_configuration():
    a = load_arch("bitfusion-isca18")
    assert (a.array.rows, a.array.cols, a.clock_mhz) == (16, 32, 500.0)  # bf_e_conf.ini a, c, frequency
    assert (a.buffers.ifmap_kib, a.buffers.filter_kib, a.buffers.ofmap_kib) == (32, 64, 16)
    assert a.buffers.double_buffered and a.dram_bytes_per_cycle == 24  # 192-bit interface
    assert a.accumulator.width_bits == 32
    # core 235.104 pJ per cycle of the whole array at full use, DRAM 15 pJ/bit, no leakage
    assert a.energy.step_pj * 16 * 32 * 16 == pytest.approx(235.104, rel=1e-4)
    assert a.energy.dram_pj_per_byte == 15 * 8 and a.energy.leakage_mw == 0
    bits = np.array([8, 4, 2, 1])
    assert peak_macs_per_cycle(a, bits, bits).tolist() == [512, 2048, 8192, 8192]  # 1-bit runs as 2
    assert [bref.perf_factor(int(b), int(b)) for b in bits] == [1, 4, 16, 16]


def test_closed_form_reproduces_the_published_layers(resnet):
    # Bit Fusion's 4096-bit run is untiled: its compute cycles are the closed form on every layer,
    # which also checks our PyTorch layer shapes and published precisions
    pub = bref.load_published(4096)
    for net, g in (("RESNET-18", resnet), ("LeNet-5", trace_network("LeNet-5")[0])):
        got = [bref.compute_cycles(bref.shape_of(r), r.act_bits, r.weight_bits, r.im2col) for _, r in g.iterrows()]
        want = [int(pub.loc[(net, layer), "compute"]) for layer in g["layer"]]
        assert got == want, net
    # a layer with a 2x-padded reduction: LeNet-5 conv1 takes 32 of 256 channel slots per cycle
    s = bref.ConvShape(16, 32, 64, 16, 16, 5)
    assert bref.compute_cycles(s, 2, 2, False) == 16 * 2 * 16 * 16 * 25 * 1 == 204800


def test_our_compute_is_the_closed_form_plus_fill_drain_where_the_reduction_packs_alike(resnet):
    arch = load_arch("bitfusion-isca18")
    g = resnet[~resnet["im2col"]]  # channel-wise layers, input channels a multiple of 16 x pf
    ours = vb.evaluate_layers(arch, g)["compute_cycles"].to_numpy()
    args = [g[c].to_numpy() for c in ("M", "N", "K", "G", "act_bits", "weight_bits")]
    closed = np.array([bref.compute_cycles(bref.shape_of(r), r.act_bits, r.weight_bits, False)
                       for _, r in g.iterrows()])
    fill = arch.array.rows + arch.array.cols - 2  # os: no preload
    assert np.array_equal(vb.steady_cycles(arch, *args), closed)
    assert np.array_equal(ours, closed + vb.fold_count(arch, *args) * fill)
    # module5 conv5_1_b: 49 x 32 folds of 9216 / 4 slots + 46 fill = +2.0 % over Bit Fusion
    i = list(g["layer"]).index("module5/conv5_1_b/Convolution")
    assert ours[i] == 49 * 32 * (9216 // 4 + 46) and ours[i] / closed[i] == pytest.approx(1.02, abs=1e-3)
