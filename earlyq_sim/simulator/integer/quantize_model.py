"""Wrap any diffusers UNet (UNet2DModel, UNet2DConditionModel) into a quantized model.

Every ``nn.Conv2d`` and ``nn.Linear`` becomes a QuantConv2d / QuantLinear and every diffusers
``Attention`` gets a :class:`QuantAttnProcessor`, so QK^T and PV are integer matmuls too.
The wrapper works on a deep copy; the caller's model is untouched.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass

import torch.nn as nn

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.integer.quant_attention import QuantAttnProcessor
from earlyq_sim.simulator.integer.quant_modules import (MODES, SHARED, QuantConfig, QuantConv2d,
                                                QuantLinear, QuantState, Slot, _QuantGemm)
from earlyq_sim.simulator.integer.quantizers import ACT_BITS, PROB_BITS, WEIGHT_BITS, check_range
from earlyq_sim.schedule import StepBits


@dataclass(frozen=True)
class AccBound:
    """Static accumulator need of one GEMM at the current bits."""

    layer: str
    K: int                  # reduction length
    bound: float            # largest |acc| any input can produce (incl. bias)
    bits_needed: int        # signed accumulator bits for that bound
    can_exceed: bool        # bits_needed > configured acc_bits


def model_fingerprint(unet: nn.Module) -> str:
    """Hash of the config and of every parameter's name, shape and (sum, sum |x|)."""
    h = hashlib.sha256()
    cfg = getattr(unet, "config", {})
    h.update(json.dumps({k: v for k, v in dict(cfg).items() if not k.startswith("_")},
                        sort_keys=True, default=str).encode())
    for name, t in sorted(unet.state_dict().items()):
        t64 = t.detach().double()
        h.update(f"{name}:{tuple(t.shape)}:{float(t64.sum())!r}:{float(t64.abs().sum())!r}".encode())
    return h.hexdigest()[:16]


class QuantizedUNet(nn.Module):
    """A quantized UNet. Call it like the UNet; choose ``mode`` and per-step bits first."""

    def __init__(self, unet: nn.Module, cfg: QuantConfig) -> None:
        super().__init__()
        self.fingerprint = model_fingerprint(unet)
        self.unet = copy.deepcopy(unet).eval()
        self.qstate = QuantState(cfg)
        self.gemms: dict[str, _QuantGemm] = {}
        self.attn: dict[str, QuantAttnProcessor] = {}
        self._swap()
        self.range_mode = "interval"

    # -- construction ------------------------------------------------------------------------
    def _swap(self) -> None:
        from diffusers.models.attention_processor import Attention
        targets = [(n, m) for n, m in self.unet.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for name, mod in targets:
            parent_name, _, attr = name.rpartition(".")
            parent = self.unet.get_submodule(parent_name) if parent_name else self.unet
            cls = QuantConv2d if isinstance(mod, nn.Conv2d) else QuantLinear
            q = cls(mod, name, self.qstate)
            setattr(parent, attr, q)
            self.gemms[name] = q
        for name, mod in self.unet.named_modules():
            if isinstance(mod, Attention):
                proc = QuantAttnProcessor(name, self.qstate)
                mod.set_processor(proc)
                self.attn[name] = proc
        if not self.gemms:
            raise UserError("model: no nn.Conv2d or nn.Linear found; expected a diffusers UNet")

    def slots(self) -> dict[str, Slot]:
        out = {}
        for g in self.gemms.values():
            out[g.act.name], out[g.out.name] = g.act, g.out
        for p in self.attn.values():
            out.update({s.name: s for s in p.slots.values()})
        return out

    @property
    def config(self):
        return self.unet.config

    @property
    def cfg(self) -> QuantConfig:
        return self.qstate.cfg

    def forward(self, *args, **kwargs):
        return self.unet(*args, **kwargs)

    # -- state ---------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """``float`` | ``calibrate`` | ``fake`` | ``int``."""
        if mode not in MODES:
            raise UserError(f"mode: {mode!r} is unknown; allowed {', '.join(MODES)}")
        self.qstate.mode = mode

    def set_range_mode(self, range_mode: str) -> None:
        """``interval``: each precision interval uses its own calibrated ranges; ``shared``: one set."""
        if range_mode not in ("interval", "shared"):
            raise UserError(f"range mode: {range_mode!r} is unknown; allowed interval, shared")
        self.range_mode = range_mode

    def set_step_bits(self, bits: StepBits, interval_index: int = 0) -> None:
        """Bits for the next forward passes, and the interval whose calibrated ranges apply."""
        check_range(bits.weight, WEIGHT_BITS, "weight bits")
        check_range(bits.act, ACT_BITS, "activation bits")
        check_range(bits.prob, PROB_BITS, "attention-probability bits")
        self.qstate.bits = bits
        self.qstate.range_set = SHARED if self.range_mode == "shared" else int(interval_index)

    def set_keep(self, schedule) -> None:
        """Hold the layers that ``schedule.keep`` matches at ``schedule.layer_bits`` in every step
        (weights and activations; attention probabilities of held attention layers too)."""
        held = schedule.held_bits
        if schedule.keep:
            schedule.check_keep_matches([*self.gemms, *self.attn], "the quantized UNet")
        for name, g in self.gemms.items():
            g.held = g.act.held = g.out.held = held if schedule.keeps(name) else None
        for name, p in self.attn.items():
            for s in p.slots.values():
                s.held = held if schedule.keeps(name) else None

    def set_observe(self, range_set: int | None) -> None:
        """Calibrate mode: record statistics into ``range_set`` (None: this step records nothing)."""
        self.qstate.obs_set = range_set

    # -- reports -------------------------------------------------------------------------------
    def accumulator_report(self, seq_len: dict[str, int] | None = None) -> list[AccBound]:
        """Static accumulator bounds at the current bits for every conv/linear, and for the
        attention matmuls whose key length is given in ``seq_len`` (name -> tokens)."""
        acc_bits = self.cfg.acc_bits
        rows = []

        def row(name, k, bound):
            need = int(bound).bit_length() + 1
            rows.append(AccBound(name, int(k), float(bound), need, need > acc_bits))

        for name, g in self.gemms.items():
            row(name, *g.static_bound())
        for name, p in self.attn.items():
            if seq_len and name in seq_len:
                mod = self.unet.get_submodule(name)
                head_dim = mod.inner_dim // mod.heads
                for which, k, b in p.static_bounds(seq_len[name], head_dim):
                    row(f"{name}.{which}", k, b)
        return rows


def quantize_unet(unet: nn.Module, cfg: QuantConfig | None = None, **kw) -> QuantizedUNet:
    """Quantized copy of ``unet``; ``kw`` are QuantConfig fields (e.g. ``acc_bits=24``)."""
    if isinstance(unet, QuantizedUNet):
        raise UserError("model: already quantized; pass the float UNet")
    return QuantizedUNet(unet, cfg or QuantConfig(**kw))
