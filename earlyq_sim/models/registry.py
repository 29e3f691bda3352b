"""Built-in denoisers (UNets and diffusion transformers): name -> :class:`ModelInfo`, and resolution
of user model paths.

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
from earlyq_sim.models.denoisers import DENOISERS

CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"

#: diffusers classes the project can build, and whether they are conditional (models/denoisers.py).
SUPPORTED_CLASSES = {name: entry.conditional for name, entry in DENOISERS.items()}


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
    #: parameters and GEMM MACs (conv, linear, attention; G) of one forward at batch 1 as this
    #: tracer counts them, so `earlyq-sim models` needs no trace; tests hold them to the trace
    traced_params: int | None = None
    traced_macs_g: float | None = None
    default_sampler: str = "ddim"
    default_steps: int = 50
    uses_cfg: bool = True  # False for guidance-distilled models (FLUX.1 schnell): --cfg is refused
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
    traced_params=35_746_307, traced_macs_g=6.2219,
    default_sampler="ddim", default_steps=100,
))
_add(ModelInfo(
    name="ldm4-bedroom", class_name="UNet2DModel", config="ldm4-bedroom.json",
    description="LDM-4 LSUN-Bedrooms UNet on a 64x64x3 latent, 274M params",
    sample_shape=(3, 64, 64),
    params_published=274_000_000, params_source="LDM paper (Rombach et al. 2022) Tab. 12: 274M",
    macs_conv_linear_g=96.0,
    macs_source="BiDM Tab. 4: about 96 G (convention not stated; matches conv+linear, 96.02 G traced)",
    traced_params=274_056_163, traced_macs_g=101.2,
    default_sampler="ddim", default_steps=200,
))
_add(ModelInfo(
    name="sd-v1.5", class_name="UNet2DConditionModel", config="sd-v1.5.json",
    description="Stable Diffusion v1.5 UNet, 64x64x4 latent, 77x768 text, 859.5M params",
    sample_shape=(4, 64, 64), conditional=True, encoder_shape=(77, 768),
    params_published=859_520_964, params_source="runwayml/stable-diffusion-v1-5 UNet: 859,520,964",
    macs_conv_linear_g=338.6, macs_with_attention_g=401.6,
    macs_source="Clockwork (arXiv 2312.08128); DeepCache Tab. 3",
    traced_params=859_520_964, traced_macs_g=401.64,
    default_sampler="ddim", default_steps=50,  # PLMS 50 in the papers
))
_add(ModelInfo(
    name="fmnist16", class_name="UNet2DModel", config="fmnist16.json", weights="fmnist16.safetensors",
    description="small DDPM UNet trained here on Fashion-MNIST 16x16 (weights shipped)",
    sample_shape=(1, 16, 16), params_source="trained in this project on Fashion-MNIST 16x16",
    traced_params=2_586_337, traced_macs_g=0.095904,
    default_sampler="ddim", default_steps=50,
))
_add(ModelInfo(
    name="fmnist28-ldm", class_name="UNet2DConditionModel", config="fmnist28-ldm.json",
    weights="fmnist28_ldm.safetensors",
    description="class-conditional latent DM trained here on Fashion-MNIST 28x28: 4x7x7 latent, "
                "cross-attention to 4 class tokens of width 64 (weights shipped, training ongoing)",
    sample_shape=(4, 7, 7), conditional=True, encoder_shape=(4, 64),
    params_source="trained in this project (MODEL_CARD_fmnist28_ldm.md); 3,708,356 UNet parameters",
    traced_params=3_708_356, traced_macs_g=0.060733,
    default_sampler="ddim", default_steps=50,
))

# -- modern backbones (issue 16): architecture only, traced on fake tensors; no weights ----------
_CKPT = "count of the released checkpoint as diffusers loads it"
_add(ModelInfo(
    name="sdxl", class_name="UNet2DConditionModel", config="sdxl.json",
    description="SDXL base 1.0 UNet, 128x128x4 latent (1024^2), 77x2048 text + pooled 1280 and 6 size ids, 2.57B params",
    sample_shape=(4, 128, 128), conditional=True, encoder_shape=(77, 2048),
    params_published=2_567_463_684,
    params_source=f"SDXL paper (Podell et al. 2023) Tab. 1: 2.6B; {_CKPT}: 2,567,463,684",
    traced_params=2_567_463_684, traced_macs_g=3380.62,
    default_sampler="ddim", default_steps=50,  # StableDiffusionXLPipeline default; guidance 5.0
))
for _res in (256, 512):
    _add(ModelInfo(
        name=f"dit-xl-2-{_res}", class_name="DiTTransformer2DModel", config=f"dit-xl-2-{_res}.json",
        description=f"DiT-XL/2 at {_res}^2 ({_res // 8}x{_res // 8}x4 latent, {(_res // 16) ** 2} tokens), "
                    "ImageNet class-conditional, 675M params",
        sample_shape=(4, _res // 8, _res // 8), conditional=True,
        params_published=675_129_632,
        params_source="DiT (Peebles and Xie 2023) README: 675M; the reference code counts 675,129,632 "
                      "(its frozen sin-cos pos_embed, 294,912 values at 256^2, is a Parameter there, a buffer here)",
        macs_with_attention_g={256: 118.6, 512: 524.6}[_res],
        macs_source="DiT paper (Peebles and Xie 2023), ImageNet 256^2 and 512^2 tables: 118.6 and 524.6 "
                    "'Gflops' (README: 119, 525), counted as multiply-accumulates (linear + attention)",
        traced_params=674_834_720, traced_macs_g={256: 118.667, 512: 524.584}[_res],
        default_sampler="ddpm", default_steps=50,  # DiTPipeline default; the paper's FIDs use 250 DDPM steps
    ))
for _res in (512, 1024):
    _add(ModelInfo(
        name=f"pixart-alpha-{_res}", class_name="PixArtTransformer2DModel", config=f"pixart-alpha-{_res}.json",
        description=f"PixArt-alpha XL/2 at {_res}^2 ({(_res // 16) ** 2} tokens), cross-attention to 120x4096 "
                    "T5 tokens, 0.61B params",
        sample_shape=(4, _res // 8, _res // 8), conditional=True, encoder_shape=(120, 4096),
        params_published=610_856_096,
        params_source="PixArt-alpha paper (Chen et al. 2023): 0.6B; PixArt-XL-2-512x512 "
                      f"{_CKPT}: 610,856,096 (1024-MS adds resolution and aspect-ratio embedders)",
        traced_params={512: 610_856_096, 1024: 611_349_152}[_res],
        traced_macs_g={512: 617.993, 1024: 3254.76}[_res],
        default_sampler="ddim", default_steps=20,  # paper and PixArtAlphaPipeline: 20 DPM-Solver steps
    ))
_add(ModelInfo(
    name="sd3-medium", class_name="SD3Transformer2DModel", config="sd3-medium.json",
    description="Stable Diffusion 3 Medium MMDiT, 128x128x16 latent (1024^2, 4096 tokens), joint attention "
                "with 333x4096 text tokens, pooled 2048, 2.03B params",
    sample_shape=(16, 128, 128), conditional=True, encoder_shape=(333, 4096),
    params_published=2_028_328_000,
    params_source=f"SD3 Medium model card: 2B; {_CKPT}: 2,028,328,000",
    traced_params=2_028_328_000, traced_macs_g=4452.17,
    default_sampler="ddim", default_steps=28,  # flow-matching Euler, StableDiffusion3Pipeline default; guidance 7.0
))
_add(ModelInfo(
    name="flux1-schnell", class_name="FluxTransformer2DModel", config="flux1-schnell.json",
    description="FLUX.1 [schnell] transformer, 1024^2 (4096 packed tokens of 64), 256x4096 T5 tokens, "
                "pooled 768, RoPE; guidance-distilled (no --cfg), 11.9B params",
    sample_shape=(16, 128, 128), conditional=True, encoder_shape=(256, 4096), uses_cfg=False,
    params_published=11_891_178_560,
    params_source=f"FLUX.1 model card: 12B; {_CKPT}: 11,891,178,560",
    traced_params=11_891_178_560, traced_macs_g=34733.3,
    default_sampler="ddim", default_steps=4,  # model card: 4 steps, guidance_scale 0, max_sequence_length 256
))


def model_line(info: ModelInfo) -> str:
    """One line of `earlyq-sim models`: name, class, params (M), GMACs per forward at batch 1 (all GEMMs),
    default steps, description."""
    params = f"{info.traced_params / 1e6:,.1f}M" if info.traced_params else "-"
    macs = f"{info.traced_macs_g:,.2f}" if info.traced_macs_g is not None else "-"
    return (f"{info.name:18s} {info.class_name:25s} {params:>10s} params {macs:>10s} GMACs/fwd "
            f"{info.default_steps:4d} steps  {info.description}")


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
    entry = DENOISERS[cls]
    if entry.encoder_field is not None:
        cad = config.get(entry.encoder_field, entry.encoder_default)
        cad = cad[0] if isinstance(cad, (list, tuple)) and cad else cad
        if not (_is_int(cad) and 1 <= cad <= 65536):
            raise UserError(f"{config_file}: field {entry.encoder_field!r} is {cad!r}; allowed an integer in 1..65536")
        enc = (entry.default_tokens, int(cad))
    folder = config_file.parent
    weights = folder / "diffusion_pytorch_model.safetensors"
    return ModelInfo(
        name=str(folder), class_name=cls, config=str(config_file.resolve()),
        sample_shape=(int(config["in_channels"]), int(h), int(w)), conditional=conditional,
        encoder_shape=enc, weights=str(weights.resolve()) if weights.exists() else None,
        builtin=False, description=f"user {cls} from {folder}",
    )
