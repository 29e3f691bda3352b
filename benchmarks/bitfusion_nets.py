"""Bit Fusion's benchmark networks as PyTorch modules, with their published per-layer precisions.

Written from the definitions in Bit Fusion's simulator (github hsharma35/bitfusion @ 04ec1c87,
``bitfusion/src/benchmarks/benchmarks.py``); its published sweep (``results/bitfusion-eyeriss-
sim-sweep.csv``) was run by ``sweep.py`` with ``get_bench_nn(name, WRPN=True)``, so AlexNet and
ResNet-18 are the WRPN (2x wide) variants. Batch 16, NCHW here (NHWC there; same shapes).

Precision of a layer, as that simulator reads it (``simulator.get_cycles``): activation bits =
the dtype of the layer's input tensor, i.e. the ``c_dtype``/``f_dtype`` of the conv or FC that
produced it (dnnweaver2's pooling, flatten, concat and add keep their first input's dtype; the
network input has its own); weight bits = ``w_dtype``. ``FQDtype.Bin`` is 1 bit (run as 2).

A layer fed by the network input is computed with im2col in that simulator, every other conv
channel-wise (its ``get_cycles``); ``LayerInfo.im2col`` records which. Layer names are the module
paths; ``published_name`` gives the simulator's (``module2/conv2_1_a/Convolution``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BATCH = 16  # the published sweep's batch size (notebook: "We use a batch size of 16")


@dataclass(frozen=True)
class LayerInfo:
    """One conv/FC layer of a network: operand bits as published and how Bit Fusion computes it."""

    act_bits: int  # input activation bits (1 = binary)
    weight_bits: int
    im2col: bool = False  # fed by the network input: Bit Fusion computes it as an im2col GEMM


def conv(cin: int, cout: int, k: int, stride: int = 1, same: bool = True) -> nn.Conv2d:
    """Bit Fusion's conv: ``SAME`` pads k // 2 on each side, ``VALID`` none."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if same else 0)


def pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pool, stride 2, VALID (dnnweaver2's maxPool default)."""
    return F.max_pool2d(x, 2, 2)


class AlexNetWRPN(nn.Module):
    """AlexNet, WRPN 2x (``get_alex_net_wrpn``): two towers, 227x227x3 input."""

    input_shape = (3, 227, 227)

    def __init__(self):
        super().__init__()
        for t in "ab":
            setattr(self, f"conv1_{t}", conv(3, 96, 11, stride=4, same=False))
            setattr(self, f"conv2_{t}", conv(96, 256, 5))
            setattr(self, f"conv3_{t}", conv(512, 384, 3))
            setattr(self, f"conv4_{t}", conv(384, 384, 3))
            setattr(self, f"conv5_{t}", conv(384, 256, 3))
        self.fc1, self.fc2, self.fc3 = nn.Linear(6 * 6 * 512, 8192), nn.Linear(8192, 8192), nn.Linear(8192, 1000)

    def forward(self, x):
        c2 = torch.cat([pool(getattr(self, f"conv2_{t}")(pool(getattr(self, f"conv1_{t}")(x)))) for t in "ab"], 1)
        c5 = [pool(getattr(self, f"conv5_{t}")(getattr(self, f"conv4_{t}")(getattr(self, f"conv3_{t}")(c2))))
              for t in "ab"]
        return self.fc3(self.fc2(self.fc1(torch.cat(c5, 1).flatten(1))))

    # input FXP8; convs FXP4 x FXP4 except conv1 (w FXP8); fc1, fc2 w4; fc2 out FXP8; fc3 w8
    precisions = {**{f"conv1_{t}": LayerInfo(8, 8, True) for t in "ab"},
                  **{f"conv{i}_{t}": LayerInfo(4, 4) for i in (2, 3, 4, 5) for t in "ab"},
                  "fc1": LayerInfo(4, 4), "fc2": LayerInfo(4, 4), "fc3": LayerInfo(8, 8)}


class SVHN(nn.Module):
    """SVHN QNN (``get_svhn_qnn``): binary weights and activations after an 8-bit input."""

    input_shape = (3, 32, 32)
    widths = (64, 64, 128, 128, 256, 256)

    def __init__(self):
        super().__init__()
        cin = 3
        for i, w in enumerate(self.widths):
            setattr(self, f"conv{i}", conv(cin, w, 3))
            cin = w
        self.fc6, self.fc7, self.fc8 = nn.Linear(4 * 4 * cin, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)

    def forward(self, x):
        for i in range(len(self.widths)):
            x = getattr(self, f"conv{i}")(x)
            x = pool(x) if i % 2 else x  # pool after conv1, conv3, conv5
        return self.fc8(self.fc7(self.fc6(x.flatten(1))))

    precisions = {"conv0": LayerInfo(8, 1, True), **{f"conv{i}": LayerInfo(1, 1) for i in range(1, 6)},
                  "fc6": LayerInfo(1, 1), "fc7": LayerInfo(1, 1), "fc8": LayerInfo(1, 1)}


class CIFAR10(SVHN):
    """CIFAR-10 QNN (``get_cifar10_qnn``): 2-bit after an 8-bit first layer; SVHN's shape, 2x wide."""

    widths = (128, 128, 256, 256, 512, 512)
    precisions = {"conv0": LayerInfo(8, 8, True), **{f"conv{i}": LayerInfo(2, 2) for i in range(1, 6)},
                  "fc6": LayerInfo(2, 2), "fc7": LayerInfo(2, 2), "fc8": LayerInfo(2, 2)}


class LeNet5(nn.Module):
    """LeNet-5 TWN (``get_lenet_5_twn``): 2-bit everywhere, 2-bit input."""

    input_shape = (1, 32, 32)

    def __init__(self):
        super().__init__()
        self.conv0, self.conv1 = conv(1, 32, 5), conv(32, 64, 5)
        self.fc1, self.fc2 = nn.Linear(8 * 8 * 64, 512), nn.Linear(512, 10)

    def forward(self, x):
        return self.fc2(self.fc1(pool(self.conv1(pool(self.conv0(x)))).flatten(1)))

    precisions = {"conv0": LayerInfo(2, 2, True), "conv1": LayerInfo(2, 2), "fc1": LayerInfo(2, 2),
                  "fc2": LayerInfo(2, 2)}


class VGG7(nn.Module):
    """VGG-7 TWN (``get_vgg_7_twn``): two towers added before the FC, 2-bit everywhere."""

    input_shape = (3, 32, 32)

    def __init__(self):
        super().__init__()
        for t in "ab":
            setattr(self, f"conv1_{t}", conv(3, 128, 3))
            setattr(self, f"conv2_{t}", conv(128, 256, 3))
            setattr(self, f"conv3_{t}", conv(256, 512, 3))
        self.fc1 = nn.Linear(4 * 4 * 512, 1024)

    def forward(self, x):
        towers = []
        for t in "ab":
            y = x
            for i in (1, 2, 3):
                y = pool(getattr(self, f"conv{i}_{t}")(y))
            towers.append(y)
        return self.fc1((towers[0] + towers[1]).flatten(1))

    precisions = {**{f"conv1_{t}": LayerInfo(2, 2, True) for t in "ab"},
                  **{f"conv{i}_{t}": LayerInfo(2, 2) for i in (2, 3) for t in "ab"}, "fc1": LayerInfo(2, 2)}


class _Stage(nn.Module):
    """Two (1x1, 3x3) conv pairs; the first 1x1 may stride (``module{i}`` of ``get_resnet_18_wrpn``)."""

    def __init__(self, i: int, cin: int, cout: int, stride: int):
        super().__init__()
        for j in (1, 2):
            setattr(self, f"conv{i}_{j}_a", conv(cin if j == 1 else cout, cout, 1, stride=stride if j == 1 else 1))
            setattr(self, f"conv{i}_{j}_b", conv(cout, cout, 3))
        self.i = i

    def forward(self, x):
        for j in (1, 2):
            a = getattr(self, f"conv{self.i}_{j}_a")(x)
            x = getattr(self, f"conv{self.i}_{j}_b")(a)
        return a + x  # add{i}: the last pair's 1x1 output plus its 3x3 output


class ResNet18WRPN(nn.Module):
    """The simulator's "ResNet-18" (``get_resnet_18_wrpn``; not ResNet-18B): a 7x7 stem, then four
    stages of two (1x1, 3x3) pairs, 128-1024 channels, 4-bit after an 8-bit stem."""

    input_shape = (3, 224, 224)

    def __init__(self):
        super().__init__()
        self.conv1_a = conv(3, 128, 7, stride=2)
        self.module2 = _Stage(2, 128, 128, 1)
        self.module3 = _Stage(3, 128, 256, 2)
        self.module4 = _Stage(4, 256, 512, 2)
        self.module5 = _Stage(5, 512, 1024, 2)

    def forward(self, x):
        return self.module5(self.module4(self.module3(self.module2(pool(self.conv1_a(x))))))

    precisions = {"conv1_a": LayerInfo(8, 8, True),
                  **{f"module{i}.conv{i}_{j}_{t}": LayerInfo(4, 4) for i in (2, 3, 4, 5) for j in (1, 2) for t in "ab"}}


class OneFC(nn.Module):
    """``get_RNN`` / ``get_LSTM``: one 4-bit FC layer (the recurrent step's matrix product)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.matmul = nn.Linear(n_in, n_out)
        self.input_shape = (n_in,)

    def forward(self, x):
        return self.matmul(x)

    precisions = {"matmul": LayerInfo(4, 4)}


#: published network name (the CSV's ``Network``) -> module factory
NETWORKS = {
    "AlexNet": AlexNetWRPN, "SVHN": SVHN, "CIFAR10": CIFAR10, "LeNet-5": LeNet5, "VGG-7": VGG7,
    "RESNET-18": ResNet18WRPN, "RNN": lambda: OneFC(2 * 2048, 2 * 2048), "LSTM": lambda: OneFC(4 * 900, 4 * 900),
}


def published_name(layer: str, op: str) -> str:
    """The simulator's layer name for our module path: ``module2/conv2_1_a/Convolution``."""
    return layer.replace(".", "/") + ("/Convolution" if op == "conv" else "/MatMul")


def trace_network(name: str):
    """Trace network ``name`` at batch 16 on meta tensors; returns (GEMM op table with columns
    ``act_bits``, ``weight_bits``, ``im2col`` and ``layer`` (published name), the module)."""
    from earlyq_sim.simulator.cost.tracer import trace_module

    with torch.device("meta"):
        net = NETWORKS[name]()
        x = torch.empty((BATCH,) + tuple(net.input_shape))
    ops = trace_module(net, x, model_name=name).ops
    g = ops[ops["unit"] == "gemm"].copy()
    info = [net.precisions[n] for n in g["name"]]  # a KeyError names a layer without precisions
    if len(info) != len(net.precisions):
        raise AssertionError(f"{name}: traced {len(info)} GEMMs, precisions for {len(net.precisions)}")
    g["act_bits"] = [i.act_bits for i in info]
    g["weight_bits"] = [i.weight_bits for i in info]
    g["im2col"] = [i.im2col for i in info]
    g["layer"] = [published_name(n, op) for n, op in zip(g["name"], g["op"])]
    return g.reset_index(drop=True), net
