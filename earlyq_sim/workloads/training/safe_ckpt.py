"""Pickle-free training checkpoints: tensors in safetensors, everything else in a JSON sidecar.

A checkpoint is two files in the checkpoint folder, ``ckpt_<step:08d>.safetensors`` (model, EMA
and optimizer tensors, keys ``<part>.<name>`` and ``opt.<param index>.<state name>``) and
``ckpt_<step:08d>.json`` (step, elapsed seconds, RNG states as hex/lists, optimizer
hyper-parameters, run config, and the SHA-256 of the tensor file). Both are written atomically
(temp file in the same folder + ``os.replace``); the JSON is written last, so a checkpoint only
exists once both parts are complete. Nothing is ever read with ``torch.load``/pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from earlyq_sim.atomic_io import atomic_write_bytes, file_sha256, to_json
from earlyq_sim.errors import UserError
from earlyq_sim.workloads.training.ldm_models import load_tensors, save_tensors

PREFIX = "ckpt_"
FORMAT = "earlyq-safe-ckpt/1"


# ---- RNG and optimizer state <-> JSON + tensors ---------------------------------------------
def torch_state_hex(state: torch.Tensor) -> str:
    """A torch RNG state (uint8 tensor) as a hex string."""
    return bytes(state.to(torch.uint8).tolist()).hex()


def torch_state_from_hex(text: str) -> torch.Tensor:
    return torch.tensor(list(bytes.fromhex(text)), dtype=torch.uint8)


def numpy_state_json() -> dict:
    """NumPy's legacy global RNG state as JSON lists (kept so any NumPy draw resumes too)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": [int(k) for k in keys], "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_numpy_state(s: dict) -> None:
    np.random.set_state((s["kind"], np.array(s["keys"], dtype=np.uint32), s["pos"], s["has_gauss"],
                         s["cached_gaussian"]))


def split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors ``opt.<i>.<name>``, JSON part: param groups and non-tensor per-param state)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for i, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{i}.{name}"] = v
            else:
                scalars[f"{i}.{name}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def join_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], js: dict) -> None:
    """Inverse of :func:`split_optimizer`: load the state into ``opt``."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    for key, v in js["scalars"].items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in js["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


# ---- checkpoint files -------------------------------------------------------------------------
def list_checkpoints(ckpt_dir) -> list[Path]:
    """Complete checkpoints (JSON sidecar present) in ``ckpt_dir``, oldest first; JSON paths."""
    d = Path(ckpt_dir)
    return sorted(p for p in d.glob(f"{PREFIX}*.json") if p.with_suffix(".safetensors").is_file()) \
        if d.is_dir() else []


def save_checkpoint(ckpt_dir, step: int, modules: dict[str, torch.nn.Module],
                    opt: torch.optim.Optimizer, info: dict, keep: int = 2) -> Path:
    """Write checkpoint ``step`` (``modules``: part name -> module; ``info``: JSON-able extras
    such as seconds, RNG states and the run config); keep the newest ``keep``; return JSON path."""
    d = Path(ckpt_dir)
    d.mkdir(parents=True, exist_ok=True)
    stem = d / f"{PREFIX}{step:08d}"
    tensors = {f"{part}.{k}": v for part, m in modules.items() for k, v in m.state_dict().items()}
    opt_tensors, opt_json = split_optimizer(opt)
    tensors.update(opt_tensors)
    st_path = save_tensors(stem.with_suffix(".safetensors"), tensors, {"format": FORMAT, "step": step})
    sidecar = {"format": FORMAT, "step": int(step), "tensors": st_path.name,
               "tensors_sha256": file_sha256(st_path), "optimizer": opt_json, **info}
    js_path = atomic_write_bytes(stem.with_suffix(".json"), (to_json(sidecar) + "\n").encode())
    for old in list_checkpoints(d)[:-max(1, keep)]:
        old.with_suffix(".safetensors").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return js_path


def load_checkpoint(js_path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer) -> dict:
    """Load a checkpoint into ``modules`` and ``opt`` (strict); returns the JSON sidecar."""
    js_path = Path(js_path)
    try:
        info = json.loads(js_path.read_text())
        st_path = js_path.with_name(info["tensors"])
        if info.get("format") != FORMAT or file_sha256(st_path) != info["tensors_sha256"]:
            raise ValueError("format or SHA-256 mismatch")
        tensors, _ = load_tensors(st_path)
        for part, m in modules.items():
            n = len(part) + 1
            m.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(part + ".")}, strict=True)
        join_optimizer(opt, tensors, info["optimizer"])
    except (OSError, ValueError, KeyError, RuntimeError, UserError) as exc:
        raise UserError(f"{js_path}: cannot resume ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        "delete it or pick another --ckpt-dir") from None
    return info
