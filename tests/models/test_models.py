"""Model registry, config reading, meta builds, user folders and weight loading."""

import dataclasses
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet2DModel

from earlyq_sim.errors import UserError
from earlyq_sim.models import registry
from earlyq_sim.models.config_io import read_config
from earlyq_sim.models.loader import build_unet, config_for, example_inputs, load_unet
from earlyq_sim.models.registry import MODELS, ModelInfo, resolve_model
from earlyq_sim.simulator.cost.tracer import trace_model, trace_module


pytestmark = pytest.mark.usefixtures("isolated_cache", "one_thread")


def tiny(**over):
    torch.manual_seed(0)
    kw = dict(sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
              down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
              norm_num_groups=4, attention_head_dim=4)
    kw.update(over)
    return UNet2DModel(**kw).eval()


@pytest.mark.parametrize("name", ["ddpm-cifar10", "ldm4-bedroom", "sd-v1.5"])
def test_builtins_build_on_meta_with_published_params(name):
    info = resolve_model(name)
    with torch.device("meta"):
        model = build_unet(config_for(info), name)
    params = sum(p.numel() for p in model.parameters())
    assert all(p.is_meta for p in model.parameters())
    assert type(model).__name__ == info.class_name
    assert params == pytest.approx(info.params_published, rel=0.01)
    if name == "sd-v1.5":
        assert params == 859_520_964
    assert (model.config.in_channels, model.config.sample_size) == info.sample_shape[:2]
    assert info.params_source and info.macs_source


def test_registry_defaults_and_frozen():
    assert [MODELS[n].default_steps for n in ("ddpm-cifar10", "ldm4-bedroom", "sd-v1.5")] == [100, 200, 50]
    assert MODELS["sd-v1.5"].conditional and MODELS["sd-v1.5"].encoder_shape == (77, 768)
    assert not MODELS["ddpm-cifar10"].conditional and MODELS["ddpm-cifar10"].encoder_shape is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS["sd-v1.5"].default_steps = 3


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError) as e:
        resolve_model("ddpm-cifar100")
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in MODELS)


def test_adding_a_model_is_one_entry(tmp_path, monkeypatch):
    cfg = tmp_path / "fm.json"
    tiny().save_config(tmp_path / "save")
    cfg.write_text((tmp_path / "save" / "config.json").read_text())
    info = ModelInfo(name="fm-test", class_name="UNet2DModel", config=str(cfg), sample_shape=(2, 8, 8))
    monkeypatch.setitem(MODELS, "fm-test", info)
    assert resolve_model("fm-test") is info
    tr = trace_model("fm-test", batch=2)
    assert tr.input_shapes["sample"] == (2, 2, 8, 8) and tr.model_name == "fm-test"


def test_local_folder_traces_like_the_module(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "unet")
    info = resolve_model(str(tmp_path / "unet"))
    assert info.sample_shape == (2, 8, 8) and not info.conditional and info.weights_path.is_file()
    tr = trace_model(str(tmp_path / "unet"), batch=3)
    x = example_inputs(info, 3)
    ref = trace_module(model, **x)
    assert tr.macs() == ref.macs() and tr.params == ref.params
    assert tr.ops[["op", "G", "M", "N", "K", "elems"]].equals(ref.ops[["op", "G", "M", "N", "K", "elems"]])


def test_local_conditional_folder_and_cfg(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                         block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
                         down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).save_pretrained(tmp_path)
    info = resolve_model(str(tmp_path))
    assert info.conditional and info.encoder_shape == (77, 16)
    one, two = trace_model(str(tmp_path), mode="meta"), trace_model(str(tmp_path), cfg=True, mode="meta")
    assert two.macs() == 2 * one.macs() and two.input_shapes["encoder_hidden_states"] == (2, 77, 16)


def test_load_unet_restores_weights(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    loaded = load_unet(str(tmp_path))
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, t = torch.randn(1, 2, 8, 8), torch.tensor([5])
    with torch.no_grad():
        assert torch.equal(model(x, t).sample, loaded(x, t).sample)


def test_load_unet_mismatched_weights(tmp_path):
    tiny().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["block_out_channels"] = [8, 24]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="do not match.*shape mismatches") as e:
        load_unet(str(tmp_path))
    assert "\n" not in str(e.value)
    cfg["layers_per_block"] = 2  # extra resnets the file lacks
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="missing"):
        load_unet(str(tmp_path))


def test_broken_or_missing_local_folders(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=str(bad)):
        trace_model(str(bad))
    (bad / "config.json").write_text(json.dumps({"_class_name": "VQModel", "in_channels": 3, "sample_size": 8}))
    with pytest.raises(UserError, match="_class_name.*UNet2DModel"):
        resolve_model(str(bad))
    (bad / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 8}))
    with pytest.raises(UserError, match="in_channels"):
        resolve_model(str(bad))
    tiny().save_config(tmp_path / "noweights")
    with pytest.raises(UserError, match="no weights"):
        load_unet(str(tmp_path / "noweights"))
    with pytest.raises(UserError, match="no weights"):
        load_unet("sd-v1.5")


def test_read_config_accepts_file_and_folder():
    f, cfg = read_config(registry.CONFIG_DIR / "sd-v1.5.json")
    assert f.name == "sd-v1.5.json" and cfg["cross_attention_dim"] == 768


def test_read_config_folder(tmp_path):
    tiny().save_config(tmp_path)
    f, cfg = read_config(tmp_path)
    assert f == tmp_path / "config.json" and cfg["block_out_channels"] == [8, 16]


def test_fmnist16_entry_traces():
    info = resolve_model("fmnist16")
    assert info.weights_path.name == "fmnist16.safetensors" and info.sample_shape == (1, 16, 16)
    tr = trace_model("fmnist16", batch=2, mode="meta")
    with torch.device("meta"):
        model = build_unet(config_for(info))
    assert tr.params == sum(p.numel() for p in model.parameters()) and tr.macs("attn_qk") > 0


def test_fmnist28_ldm_traces_with_cross_attention_to_class_tokens():
    """The conditional latent model: 4x7x7 latent, cross-attention from every spatial position to
    the 4 class tokens (keys of width 64 projected to 32 per head), self-attention too."""
    info = resolve_model("fmnist28-ldm")
    assert info.conditional and info.encoder_shape == (4, 64) and info.sample_shape == (4, 7, 7)
    tr = trace_model("fmnist28-ldm", batch=2, cfg=True, mode="meta")  # cfg doubles the UNet batch
    assert tr.params == 3_708_356 and tr.input_shapes["encoder_hidden_states"] == (4, 4, 64)
    qk = tr.ops[tr.ops["op"] == "attn_qk"]
    cross = qk[qk["module"].str.contains("attn2")]
    self_attn = qk[qk["module"].str.contains("attn1")]
    assert len(cross) == len(self_attn) == 7  # one transformer per cross-attention block
    assert (cross["N"] == 4).all() and (cross["K"] == 32).all()  # 4 keys, 32 channels per head
    assert set(cross["M"]) == {49, 16, 4}  # queries: 7x7, 4x4 and 2x2 positions
    assert (self_attn["N"] == self_attn["M"]).all()
    kv = tr.ops[tr.ops["module"].str.contains(r"attn2\.to_k") & (tr.ops["op"] == "linear")]
    assert len(kv) == 7 and (kv["K"] == 64).all()  # keys projected from the 64-wide class tokens


def test_load_unet_casts_dtype(tmp_path):
    tiny().save_pretrained(tmp_path)
    m = load_unet(str(tmp_path), dtype=torch.float64)
    assert {p.dtype for p in m.parameters()} == {torch.float64}
