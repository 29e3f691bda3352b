"""What one denoiser call takes, per diffusers class: conditioning fields and placeholder inputs.

A registry keyed by the diffusers class name. Each entry says whether the class is conditional
(so classifier-free guidance can double its batch), which config field gives the width of its
conditioning tokens, how to make placeholder keyword inputs for one forward at a batch (on the
current device or fake mode: tracing depends on shapes only), and an optional fix-up after the
build. Adding a class is one ``register_denoiser(DenoiserClass(...))`` call.

Shapes follow the published pipelines: SDXL's added conditioning is the pooled OpenCLIP-bigG
embedding plus 6 size/crop ids; PixArt-alpha at 1024^2 adds resolution (2) and aspect ratio (1);
SD3 and FLUX take a pooled text embedding and (FLUX) 3-axis position ids for RoPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from earlyq_sim.registry import Registry

if TYPE_CHECKING:  # torch loads only when inputs are made: `run` checks names before torch imports
    import torch

    from earlyq_sim.models.registry import ModelInfo


@dataclass(frozen=True)
class DenoiserClass:
    """One diffusers denoiser class the project can build and trace.

    ``encoder_field``: config field holding the conditioning-token width (None: no tokens, e.g.
    DiT's class labels); ``encoder_default`` its diffusers default and ``default_tokens`` the
    token count a user folder gets (built-ins state theirs in ``ModelInfo.encoder_shape``).
    ``make_inputs(config, info, batch)`` returns the forward's keyword inputs.
    """

    name: str
    conditional: bool
    make_inputs: Callable[[dict, "ModelInfo", int], dict]
    encoder_field: str | None = None
    encoder_default: int | None = None
    default_tokens: int = 77
    after_build: Callable[["torch.nn.Module"], None] | None = None


DENOISERS: Registry = Registry("model class")


def register_denoiser(entry: DenoiserClass) -> DenoiserClass:
    return DENOISERS.register(entry.name, entry)


def _time(batch: int, flow: bool = False) -> "torch.Tensor":
    """Placeholder timestep per sample: integer 500 (DDPM-style) or 0.5 (flow matching, in 0..1
    for FLUX, which scales by 1000 itself; SD3 takes it as given; only the shape matters)."""
    import torch

    return torch.full((batch,), 0.5) if flow else torch.full((batch,), 500, dtype=torch.long)


def _tokens(info: "ModelInfo", batch: int) -> "torch.Tensor":
    import torch

    tokens, width = info.encoder_shape
    return torch.zeros(batch, tokens, width)


def _unet(config: dict, info: "ModelInfo", batch: int) -> dict:
    import torch

    c, h, w = info.sample_shape
    inputs = {"sample": torch.zeros(batch, c, h, w), "timestep": _time(batch)}
    if info.conditional:
        inputs["encoder_hidden_states"] = _tokens(info, batch)
    if config.get("addition_embed_type") == "text_time":
        # SDXL: pooled text embedding + 6 ids (original size, crop top-left, target size), each
        # id embedded at addition_time_embed_dim; the rest of the projection input is the pooling.
        n_ids, per_id = 6, int(config.get("addition_time_embed_dim") or 256)
        pooled = int(config["projection_class_embeddings_input_dim"]) - n_ids * per_id
        inputs["added_cond_kwargs"] = {"text_embeds": torch.zeros(batch, pooled),
                                       "time_ids": torch.zeros(batch, n_ids)}
    return inputs


def _dit(config: dict, info: "ModelInfo", batch: int) -> dict:
    import torch

    c, h, w = info.sample_shape
    return {"hidden_states": torch.zeros(batch, c, h, w), "timestep": _time(batch),
            "class_labels": torch.zeros(batch, dtype=torch.long)}


def _tie_dit_embedders(model: "torch.nn.Module") -> None:
    """DiT has one timestep + class embedder (Peebles and Xie 2023); diffusers builds a copy in
    every block's AdaLayerNormZero and its conversion fills all copies with the same weights. Tie
    them so the parameter count is the published model's; each block still runs its copy, as
    diffusers does (about 1.6 M MACs a block)."""
    blocks = model.transformer_blocks
    for block in list(blocks)[1:]:
        block.norm1.emb = blocks[0].norm1.emb


def _pixart(config: dict, info: "ModelInfo", batch: int) -> dict:
    import torch

    c, h, w = info.sample_shape
    extra = config.get("use_additional_conditions")
    if extra is None:  # diffusers' rule: the 1024^2 model (latent 128) embeds size and aspect ratio
        extra = config.get("sample_size") == 128
    cond = ({"resolution": torch.zeros(batch, 2), "aspect_ratio": torch.zeros(batch, 1)} if extra
            else {"resolution": None, "aspect_ratio": None})
    return {"hidden_states": torch.zeros(batch, c, h, w), "encoder_hidden_states": _tokens(info, batch),
            "timestep": _time(batch), "added_cond_kwargs": cond}


def _sd3(config: dict, info: "ModelInfo", batch: int) -> dict:
    import torch

    c, h, w = info.sample_shape
    return {"hidden_states": torch.zeros(batch, c, h, w), "encoder_hidden_states": _tokens(info, batch),
            "pooled_projections": torch.zeros(batch, int(config.get("pooled_projection_dim", 2048))),
            "timestep": _time(batch, flow=True)}


def _flux(config: dict, info: "ModelInfo", batch: int) -> dict:
    """FLUX packs the latent (c, h, w) into (h/2 * w/2) tokens of 4c; ids are (token, 3 axes)."""
    import torch

    c, h, w = info.sample_shape
    tokens = (h // 2) * (w // 2)
    text = info.encoder_shape[0]
    inputs = {"hidden_states": torch.zeros(batch, tokens, 4 * c), "encoder_hidden_states": _tokens(info, batch),
              "pooled_projections": torch.zeros(batch, int(config.get("pooled_projection_dim", 768))),
              "timestep": _time(batch, flow=True),
              "img_ids": torch.zeros(tokens, 3), "txt_ids": torch.zeros(text, 3)}
    if config.get("guidance_embeds"):
        inputs["guidance"] = torch.full((batch,), 3.5)  # FLUX.1 dev's distilled guidance scale
    return inputs


register_denoiser(DenoiserClass("UNet2DModel", False, _unet))
register_denoiser(DenoiserClass("UNet2DConditionModel", True, _unet, "cross_attention_dim", 1280, 77))
register_denoiser(DenoiserClass("DiTTransformer2DModel", True, _dit, after_build=_tie_dit_embedders))
register_denoiser(DenoiserClass("PixArtTransformer2DModel", True, _pixart, "caption_channels", 4096, 120))
register_denoiser(DenoiserClass("SD3Transformer2DModel", True, _sd3, "joint_attention_dim", 4096, 333))
register_denoiser(DenoiserClass("FluxTransformer2DModel", True, _flux, "joint_attention_dim", 4096, 256))
