"""Models of the Fashion-MNIST 28x28 latent diffusion model (fmnist28-ldm): configs, building,
the class-token condition encoder, and pickle-free safetensors export/load.

Three parts, as in LDM / Stable Diffusion: a diffusers ``AutoencoderKL`` (1x28x28 pixels in
[-1, 1] <-> 4x7x7 latent), a diffusers ``UNet2DConditionModel`` on the latent multiplied by the
autoencoder's ``scaling_factor``, and :class:`ClassTokenEncoder`, a learned table that maps a
class label (10 = null class for classifier-free guidance) to ``encoder_hidden_states`` of shape
(tokens, dim) = (4, 64), standing in for Stable Diffusion's text encoder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from earlyq_sim.atomic_io import atomic_write_bytes
from earlyq_sim.errors import UserError
from earlyq_sim.models.registry import CONFIG_DIR, WEIGHTS_DIR

AE_CONFIG = "fmnist28-ae.json"
UNET_CONFIG = "fmnist28-ldm.json"


# ---- configs --------------------------------------------------------------------------------
def config_path(name_or_path: str | os.PathLike) -> Path:
    """A config file name under ``models/configs/`` or a path to a JSON file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    q = CONFIG_DIR / str(name_or_path)
    if q.is_file():
        return q
    raise UserError(f"{name_or_path}: config not found (neither a file nor a name under {CONFIG_DIR})")


def read_json_config(name_or_path) -> tuple[dict, dict]:
    """(diffusers kwargs without ``_``-keys, the ``_earlyq`` block) of a config file."""
    path = config_path(name_or_path)
    with open(path) as fh:
        raw = json.load(fh)
    extra = raw.get("_earlyq")
    if not isinstance(extra, dict):
        raise UserError(f"{path}: field '_earlyq' missing; allowed a diffusers config with an _earlyq block")
    return {k: v for k, v in raw.items() if not k.startswith("_")}, extra


def build_autoencoder(name_or_path=AE_CONFIG):
    """A randomly initialised ``AutoencoderKL`` from its config (weights: :func:`load_weights`)."""
    from diffusers import AutoencoderKL

    kwargs, _ = read_json_config(name_or_path)
    kwargs.pop("scaling_factor", None)  # a measured number, kept in the weights' metadata too
    return AutoencoderKL(**kwargs)


def build_unet(name_or_path=UNET_CONFIG):
    """A randomly initialised ``UNet2DConditionModel`` from its config."""
    from diffusers import UNet2DConditionModel

    kwargs, _ = read_json_config(name_or_path)
    return UNet2DConditionModel(**kwargs)


class ClassTokenEncoder(nn.Module):
    """Class label (B,) int64 in [0, num_classes] -> ``encoder_hidden_states`` (B, tokens, dim).

    Index ``num_classes`` is the null (unconditional) class used for classifier-free guidance.
    Initialised N(0, 1) like ``nn.Embedding``: unit-scale tokens, as a text encoder's layer-normed
    outputs are.
    """

    def __init__(self, num_classes: int = 10, tokens: int = 4, dim: int = 64):
        super().__init__()
        self.num_classes, self.tokens, self.dim = int(num_classes), int(tokens), int(dim)
        self.embedding = nn.Parameter(torch.randn(self.num_classes + 1, self.tokens, self.dim))

    @property
    def null_index(self) -> int:
        return self.num_classes

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding[labels]


def build_condition_encoder(name_or_path=UNET_CONFIG) -> ClassTokenEncoder:
    """The condition encoder described by ``_earlyq.condition_encoder`` of the UNet config."""
    kwargs, extra = read_json_config(name_or_path)
    ce = extra.get("condition_encoder") or {}
    enc = ClassTokenEncoder(ce.get("num_classes", 10), ce.get("tokens", 4), ce.get("dim", 64))
    if ce.get("null_index", enc.null_index) != enc.null_index:
        raise UserError(f"{name_or_path}: condition_encoder.null_index must equal num_classes")
    if enc.dim != kwargs.get("cross_attention_dim"):
        raise UserError(f"{name_or_path}: condition_encoder.dim {enc.dim} differs from cross_attention_dim "
                        f"{kwargs.get('cross_attention_dim')}")
    return enc


# ---- safetensors I/O (no pickle) ------------------------------------------------------------
def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    """safetensors bytes of CPU-contiguous copies; metadata values are stringified."""
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return save(flat, metadata={str(k): str(v) for k, v in (metadata or {}).items()})


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict | None = None) -> Path:
    """Write tensors as safetensors atomically (temp file in the same folder + ``os.replace``)."""
    return atomic_write_bytes(path, tensors_to_bytes(tensors, metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, on CPU."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
    except Exception as exc:
        raise UserError(f"{path}: cannot read safetensors file ({type(exc).__name__})") from None


def load_weights(module: nn.Module, path: str | os.PathLike) -> dict[str, str]:
    """Load a safetensors state dict into ``module`` (strict); returns the file's metadata."""
    sd, meta = load_tensors(path)
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not match the config ({str(exc).splitlines()[0]})") from None
    return meta


def write_ae_config(path: str | os.PathLike, scaling_factor: float, source=AE_CONFIG) -> Path:
    """Copy of the AE config with the measured ``scaling_factor`` filled in (atomic write)."""
    with open(config_path(source)) as fh:
        raw = json.load(fh)
    raw["scaling_factor"] = float(scaling_factor)
    raw["_earlyq"]["scaling_factor"] = float(scaling_factor)
    return atomic_write_bytes(path, (json.dumps(raw, indent=2) + "\n").encode())


# ---- trained model ---------------------------------------------------------------------------
def load_trained_ldm(unet_weights=None, cond_weights=None, ae_weights=None,
                     unet_config=UNET_CONFIG, ae_config=AE_CONFIG) -> dict:
    """The shipped (or given) weights as ``{unet, ae, cond, scaling_factor, config, step}``,
    eval mode, no gradients. Default files are named in the UNet config's ``_earlyq`` block."""
    _, extra = read_json_config(unet_config)
    unet_w = Path(unet_weights or WEIGHTS_DIR / extra["weights"])
    cond_w = Path(cond_weights or WEIGHTS_DIR / extra["condition_encoder"]["weights"])
    ae_w = Path(ae_weights or WEIGHTS_DIR / extra["autoencoder"]["weights"])
    unet, ae, cond = build_unet(unet_config), build_autoencoder(ae_config), build_condition_encoder(unet_config)
    meta = load_weights(unet, unet_w)
    load_weights(cond, cond_w)
    ae_meta = load_weights(ae, ae_w)
    if "scaling_factor" not in ae_meta:
        raise UserError(f"{ae_w}: metadata has no scaling_factor; re-export it with train_ldm --stage ae")
    for m in (unet, ae, cond):
        m.eval().requires_grad_(False)
    return {"unet": unet, "ae": ae, "cond": cond, "scaling_factor": float(ae_meta["scaling_factor"]),
            "config": extra, "step": int(meta["step"]) if "step" in meta else None}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
