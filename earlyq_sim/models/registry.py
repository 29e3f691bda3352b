"""Built-in UNet architectures: name -> :class:`ModelInfo`, and resolution of user model paths.

Each built-in is a diffusers config JSON under ``models/configs/`` (architecture only; weights,
where shipped, live under ``models/weights/``). Published sizes carry their source so tests and
docs can cite them. Adding a model is one ``_add(ModelInfo(...))`` call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from earlyq_sim.errors import UserError
from earlyq_sim.models.config_io import read_config

CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"

#: diffusers classes the project can build, and whether they take text conditioning.
SUPPORTED_CLASSES = {"UNet2DModel": False, "UNet2DConditionModel": True}


@dataclass(frozen=True)
class ModelInfo:
    """What the tracer and samplers need to know about one UNet.

    ``sample_shape`` is (channels, height, width) of one sample (pixels or latent);
    ``encoder_shape`` is (tokens, width) of ``encoder_hidden_states`` per sample, or None.
    Published figures are per UNet forward at batch 1; MACs in units of 1e9 (G).
    """

    name: str
    class_name: str
    config: str  # file name under CONFIG_DIR, or an absolute path for user models
    sample_shape: tuple[int, int, int]
    conditional: bool = False
    encoder_shape: tuple[int, int] | None = None
    params_published: int | None = None
    params_source: str = ""
    macs_conv_linear_g: float | None = None
    macs_with_attention_g: float | None = None
    macs_source: str = ""
    default_sampler: str = "ddim"
    default_steps: int = 50
    weights: str | None = None  # file name under WEIGHTS_DIR, or an absolute path
    builtin: bool = True
    description: str = ""

    @property
    def config_path(self) -> Path:
        p = Path(self.config)
        return p if p.is_absolute() else CONFIG_DIR / p

    @property
    def weights_path(self) -> Path | None:
        if self.weights is None:
            return None
        p = Path(self.weights)
        return p if p.is_absolute() else WEIGHTS_DIR / p


MODELS: dict[str, ModelInfo] = {}


def _add(info: ModelInfo) -> None:
    MODELS[info.name] = info


_add(ModelInfo(
    name="ddpm-cifar10", class_name="UNet2DModel", config="ddpm-cifar10.json",
    description="DDPM CIFAR-10 32x32 UNet (google/ddpm-cifar10-32 architecture), 35.7M params",
    sample_shape=(3, 32, 32),
    params_published=35_700_000, params_source="DDPM paper (Ho et al. 2020) App. B: 35.7M",
    macs_conv_linear_g=6.1, macs_source="Diff-Pruning Tab. 1; DeepCache Tab. 2: 6.1 GMACs (conv+linear)",
    default_sampler="ddim", default_steps=100,
))
_add(ModelInfo(
    name="ldm4-bedroom", class_name="UNet2DModel", config="ldm4-bedroom.json",
    description="LDM-4 LSUN-Bedrooms UNet on a 64x64x3 latent, 274M params",
    sample_shape=(3, 64, 64),
    params_published=274_000_000, params_source="LDM paper (Rombach et al. 2022) Tab. 12: 274M",
    macs_conv_linear_g=96.0,
    macs_source="BiDM Tab. 4: about 96 G (convention not stated; matches conv+linear, 96.02 G traced)",
    default_sampler="ddim", default_steps=200,
))
_add(ModelInfo(
    name="sd-v1.5", class_name="UNet2DConditionModel", config="sd-v1.5.json",
    description="Stable Diffusion v1.5 UNet, 64x64x4 latent, 77x768 text, 859.5M params",
    sample_shape=(4, 64, 64), conditional=True, encoder_shape=(77, 768),
    params_published=859_520_964, params_source="runwayml/stable-diffusion-v1-5 UNet: 859,520,964",
    macs_conv_linear_g=338.6, macs_with_attention_g=401.6,
    macs_source="Clockwork (arXiv 2312.08128); DeepCache Tab. 3",
    default_sampler="ddim", default_steps=50,  # PLMS 50 in the papers
))
_add(ModelInfo(
    name="fmnist16", class_name="UNet2DModel", config="fmnist16.json", weights="fmnist16.safetensors",
    description="small DDPM UNet trained here on Fashion-MNIST 16x16 (weights shipped)",
    sample_shape=(1, 16, 16), params_source="trained in this project on Fashion-MNIST 16x16",
    default_sampler="ddim", default_steps=50,
))
_add(ModelInfo(
    name="fmnist28-ldm", class_name="UNet2DConditionModel", config="fmnist28-ldm.json",
    weights="fmnist28_ldm.safetensors",
    description="class-conditional latent DM trained here on Fashion-MNIST 28x28: 4x7x7 latent, "
                "cross-attention to 4 class tokens of width 64 (weights shipped, training ongoing)",
    sample_shape=(4, 7, 7), conditional=True, encoder_shape=(4, 64),
    params_source="trained in this project (MODEL_CARD_fmnist28_ldm.md); 3,708,356 UNet parameters",
    default_sampler="ddim", default_steps=50,
))


def model_names() -> list[str]:
    return sorted(MODELS)


def resolve_model(name_or_path: str | os.PathLike) -> ModelInfo:
    """A built-in name, or a local diffusers UNet folder (or its config.json), -> ModelInfo.

    Raises UserError for unknown names (listing valid ones) and for missing/broken folders.
    """
    key = str(name_or_path)
    if key in MODELS:
        return MODELS[key]
    looks_like_path = os.sep in key or key.startswith(".") or key.endswith(".json") or Path(key).exists()
    if not looks_like_path:
        raise UserError(f"unknown model {key!r}; valid names: {', '.join(model_names())}, "
                        "or a local diffusers UNet folder containing config.json")
    config_file, config = read_config(key)
    return info_from_config(config, config_file)


MAX_SAMPLE = 1024  # latent or pixel side: SDXL's latent is 128; attention MACs grow with its 4th power
MAX_CHANNELS = 1024


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def info_from_config(config: dict, config_file: Path) -> ModelInfo:
    """Derive a ModelInfo from a diffusers UNet config (user models: no published figures)."""
    cls = config.get("_class_name")
    if cls not in SUPPORTED_CLASSES:
        raise UserError(f"{config_file}: field _class_name is {cls!r}; allowed: "
                        f"{', '.join(SUPPORTED_CLASSES)}")
    for field in ("in_channels", "sample_size"):
        if field not in config:
            raise UserError(f"{config_file}: missing field {field!r} (a {cls} config needs it)")
    size = config["sample_size"]
    sizes = [size, size] if _is_int(size) else list(size) if isinstance(size, (list, tuple)) else None
    if not sizes or len(sizes) != 2 or not all(_is_int(s) and 1 <= s <= MAX_SAMPLE for s in sizes):
        raise UserError(f"{config_file}: field 'sample_size' is {size!r}; allowed an integer or a pair of "
                        f"integers in 1..{MAX_SAMPLE}")
    h, w = sizes
    chans = config["in_channels"]
    if not (_is_int(chans) and 1 <= chans <= MAX_CHANNELS):
        raise UserError(f"{config_file}: field 'in_channels' is {chans!r}; allowed an integer in 1..{MAX_CHANNELS}")
    conditional = SUPPORTED_CLASSES[cls]
    enc = None
    if conditional:
        cad = config.get("cross_attention_dim", 1280)
        cad = cad[0] if isinstance(cad, (list, tuple)) and cad else cad
        if not (_is_int(cad) and 1 <= cad <= 65536):
            raise UserError(f"{config_file}: field 'cross_attention_dim' is {cad!r}; allowed an integer in 1..65536")
        enc = (77, int(cad))
    folder = config_file.parent
    weights = folder / "diffusion_pytorch_model.safetensors"
    return ModelInfo(
        name=str(folder), class_name=cls, config=str(config_file.resolve()),
        sample_shape=(int(config["in_channels"]), int(h), int(w)), conditional=conditional,
        encoder_shape=enc, weights=str(weights.resolve()) if weights.exists() else None,
        builtin=False, description=f"user {cls} from {folder}",
    )
