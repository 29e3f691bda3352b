"""Build UNets from diffusers configs (meta/fake tensors for tracing) and load real weights.

Nothing here downloads: configs are read with ``local_files_only=True`` and weights only from
local safetensors files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from earlyq_sim.errors import UserError
from earlyq_sim.models.config_io import read_config
from earlyq_sim.models.denoisers import DENOISERS
from earlyq_sim.models.registry import SUPPORTED_CLASSES, ModelInfo, resolve_model

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"


def config_for(info: ModelInfo) -> dict:
    """The config dict of a resolved model."""
    return read_config(info.config_path)[1]


def build_unet(config: dict, source: str = "<config>") -> torch.nn.Module:
    """Instantiate the diffusers UNet a config describes, on the current default device/mode.

    Call it under ``torch.device("meta")`` or a FakeTensorMode to allocate nothing.
    """
    import diffusers

    cls_name = config.get("_class_name")
    if cls_name not in SUPPORTED_CLASSES:
        raise UserError(f"{source}: field _class_name is {cls_name!r}; allowed: {', '.join(SUPPORTED_CLASSES)}")
    if config.get("addition_embed_type") not in (None, "text_time"):
        raise UserError(f"{source}: field addition_embed_type={config['addition_embed_type']!r} "
                        "needs conditioning inputs the tracer cannot make; allowed: null, 'text_time' (SDXL)")
    try:
        model = getattr(diffusers, cls_name).from_config(config).eval()
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{source}: diffusers cannot build {cls_name} from it ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    fix = DENOISERS[cls_name].after_build
    if fix is not None:
        fix(model)
    return model


def _shards(index: Path, folder: Path) -> list[Path]:
    """The shard files a ``*.safetensors.index.json`` names: each a plain file inside ``folder``
    (an index that points elsewhere, ``../x`` or an absolute path, is refused, not followed)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{index}: not a safetensors index ({type(exc).__name__}); allowed a JSON object whose "
                        "'weight_map' maps tensor names to shard files in this folder") from None
    root = folder.resolve()
    out = []
    for name in names:
        shard = (folder / str(name)).resolve()
        if not isinstance(name, str) or shard.parent != root or not name.endswith(".safetensors"):
            raise UserError(f"{index}: shard {name!r} is not a .safetensors file in {folder}; allowed shard "
                            "names inside the model folder")
        out.append(shard)
    return out


def _weight_files(info: ModelInfo) -> list[Path]:
    if info.weights_path is not None and info.weights_path.is_file():
        return [info.weights_path]
    folder = info.config_path.parent
    index = folder / WEIGHTS_INDEX
    if not info.builtin and index.is_file():
        return _shards(index, folder)
    if not info.builtin:
        found = sorted(folder.glob("*.safetensors"))
        if len(found) == 1:
            return found
    where = info.weights_path or folder / WEIGHTS_NAME
    raise UserError(f"{where}: no weights for model {info.name!r} (need {WEIGHTS_NAME} "
                    "or one *.safetensors file beside config.json)")


def _state_dict_from(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f), device="cpu"))
        except Exception as e:
            raise UserError(f"{f}: cannot read safetensors file ({type(e).__name__})") from None
    return sd


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], where: str) -> None:
    """Raise UserError, one line, if ``sd`` does not match ``model``'s parameters and buffers."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items()}
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    shapes = [f"{k} file {have[k]} vs model {want[k]}" for k in sorted(set(want) & set(have)) if want[k] != have[k]]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]})")
        raise UserError(f"{where}: weights do not match the config: {'; '.join(parts)}")


def load_unet(name_or_path: str | os.PathLike, dtype: torch.dtype = torch.float32,
              weights: str | os.PathLike | None = None) -> torch.nn.Module:
    """A UNet with real weights (CPU, eval mode) from a built-in name with shipped weights or a
    local diffusers folder (config.json + safetensors); ``weights``: another safetensors file
    for the same config (e.g. a training export). Mismatched weights raise UserError."""
    info = resolve_model(name_or_path)
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"{weights}: weights file not found")
    files = [Path(weights)] if weights is not None else _weight_files(info)
    sd = _state_dict_from(files)
    with torch.device("meta"):  # no random init: every tensor comes from the file
        model = build_unet(config_for(info), str(info.config_path))
    check_state_dict(model, sd, str(files[0]))
    # Cast in the dict: model.to(dtype) after loading makes diffusers warn about fp32 modules.
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise UserError(f"{files[0]}: weights leave {len(left)} tensors unset (e.g. {left[0]})")
    return model.eval()


def example_inputs(info: ModelInfo, batch: int, config: dict | None = None) -> dict:
    """Keyword inputs of one denoiser forward at ``batch`` samples, made on the current device/mode
    (per class: ``models/denoisers.py``; SDXL and PixArt nest some in ``added_cond_kwargs``).

    Values are placeholders (zeros; timestep 500): tracing depends on shapes only.
    """
    config = config_for(info) if config is None else config
    return DENOISERS.lookup(info.class_name).make_inputs(config, info, batch)
