"""diffusers attention processor whose QK^T and PV are integer matmuls (see quant_modules for
which tensors are integer and which float; the projections are QuantLinear modules)."""

from __future__ import annotations

import numpy as np
import torch

from earlyq_sim.simulator.integer import fused_kernels as fk
from earlyq_sim.simulator.integer import int_kernels as ik
from earlyq_sim.simulator.integer.quant_modules import (QuantState, Rescale, Slot, _fdt, fake_out, int_finish,
                                                quantize_centered)
from earlyq_sim.simulator.integer.quantizers import dequantize, fake_quant, quantize


class QuantAttnProcessor:
    """diffusers attention processor with integer QK^T and PV (AttnProcessor semantics).

    Slots: ``q``, ``k``, ``v`` (act bits), ``p`` (prob bits, zero point 0), ``scores`` and
    ``pv`` (output grids). The projections ``to_q/to_k/to_v/to_out`` are QuantLinear modules.
    """

    def __init__(self, name: str, state: QuantState) -> None:
        self.qname, self.state = name, state
        self.slots = {k: Slot(f"{name}.{k}", kind, state) for k, kind in
                      (("q", "act"), ("k", "act"), ("v", "act"), ("p", "prob"), ("scores", "out"), ("pv", "out"))}
        self._rs: dict = {}

    def static_bounds(self, seq_k: int, head_dim: int) -> list[tuple[str, int, float]]:
        """[(matmul, K, max |acc|)] for QK^T and PV at the current bits."""
        s = {k: v.qparams() for k, v in self.slots.items()}
        return [("qk", head_dim, head_dim * s["q"].amax_centered * s["k"].amax_centered),
                ("pv", seq_k, seq_k * s["p"].amax_centered * s["v"].amax_centered)]

    def _attend(self, attn, query, key, value, mask):
        st, sl = self.state, self.slots
        if st.mode in ("float", "calibrate"):
            scores = torch.bmm(query, key.transpose(-1, -2)) * attn.scale
            probs = (scores if mask is None else scores + mask).softmax(dim=-1)
            out = torch.bmm(probs, value)
            if st.mode == "calibrate":
                for n, t in (("q", query), ("k", key), ("v", value), ("scores", scores), ("pv", out)):
                    sl[n].observe(t)
            return out
        scores = self.qk(query, key, attn.scale)
        probs = (scores if mask is None else scores + mask).softmax(dim=-1)
        return self.pv(probs, value)

    def qk(self, query: torch.Tensor, key: torch.Tensor, scale: float) -> torch.Tensor:
        """Scores ``scale * Q K^T`` (G, Lq, Lk) on the ``scores`` output grid (int or fake)."""
        st, sl = self.state, self.slots
        pq, pk, ps = sl["q"].qparams(), sl["k"].qparams(), sl["scores"].qparams()
        if st.mode == "fake":
            dt = _fdt(st)
            y = torch.bmm(dequantize(quantize(query, pq), pq).to(dt),
                          dequantize(quantize(key, pk), pk).to(dt).transpose(1, 2))
            return fake_out(y * scale, ps)
        bound = query.shape[-1] * pq.amax_centered * pk.amax_centered
        eng = ik.pick_engine(st.cfg.engine, bound)
        st.engine_calls[eng] += 1
        acc = ik.bmm_acc(quantize_centered(query, pq), pq.centered, quantize_centered(key, pk).transpose(1, 2),
                         pk.centered, eng, raw=True)
        return int_finish(acc, self._rescale("qk", pq.scale * pk.scale * scale / ps.scale), ps, st,
                          self.qname + ".qk", bound)

    def pv(self, probs: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``P V`` (G, Lq, d) on the ``pv`` output grid, P quantized at prob bits (int or fake)."""
        st, sl = self.state, self.slots
        pp, pv, po = sl["p"].qparams(), sl["v"].qparams(), sl["pv"].qparams()
        if st.mode == "fake":
            dt = _fdt(st)
            return fake_out(torch.bmm(fake_quant(probs, pp).to(dt), dequantize(quantize(value, pv), pv).to(dt)), po)
        bound = value.shape[1] * pp.qmax * pv.amax_centered
        eng = ik.pick_engine(st.cfg.engine, bound)
        vb = pv.centered
        if st.cfg.engine in ("auto", "i16") and eng != "f32" and pp.qmax > 255 and probs.dtype == torch.float32 \
                and value.shape[1] * 255 * pv.amax_centered <= ik.F32_EXACT:
            # prob codes > 8 bits: two 8-bit limbs, each product sum exact in float32, combined
            # exactly in float64 (cheaper than a float64 GEMM)
            st.engine_calls["f32 (2 limbs)"] += 1
            limbs = fk.quantize_prob_limbs(probs, pp.scale, pp.qmax)
            acc = fk.combine_limbs(ik.bmm_acc(limbs, (0, 255), quantize_centered(value, pv), vb, "f32", raw=True))
        else:
            st.engine_calls[eng] += 1
            # zero point 0: quantize_centered gives quantize's codes (probabilities are >= +0)
            acc = ik.bmm_acc(quantize_centered(probs, pp), (0, pp.qmax), quantize_centered(value, pv), vb, eng,
                             raw=True)
        return int_finish(acc, self._rescale("pv", pp.scale * pv.scale / po.scale), po, st, self.qname + ".pv",
                          bound)

    def _rescale(self, which: str, m: float) -> Rescale:
        key = (which, m)
        if key not in self._rs:
            self._rs[key] = Rescale.make(np.array([m]), self.state.cfg.acc_bits, (1,))
        return self._rs[key]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape)
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        hidden_states = self._attend(attn, query, key, value, attention_mask)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
