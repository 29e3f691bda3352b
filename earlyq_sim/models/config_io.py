"""Reading a diffusers UNet config from a local folder or JSON file (never a download)."""

from __future__ import annotations

import os
from pathlib import Path

from earlyq_sim.errors import UserError


def read_config(path: str | os.PathLike) -> tuple[Path, dict]:
    """Read a diffusers UNet config from a folder (``config.json``) or a JSON file.

    Returns (config file path, config dict). Raises UserError naming the path and the problem.
    """
    from diffusers import UNet2DModel  # any ModelMixin: load_config needs a config_name

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{p}: no such file or folder (expected a diffusers UNet folder with config.json)")
    config_file = p / "config.json" if p.is_dir() else p
    if not config_file.is_file():
        raise UserError(f"{p}: folder has no config.json (write one with save_pretrained)")
    try:
        config = UNet2DModel.load_config(str(config_file), local_files_only=True)
    except Exception as e:  # diffusers raises EnvironmentError/ValueError with multi-line text
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{config_file}: not a valid diffusers config ({first})") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_file}: config is not a JSON object")
    return config_file, dict(config)
