"""fmnist28-ldm: 7x7 latent UNet shapes, AE/UNet training, exact pickle-free resume, CFG sampler."""

import csv
import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from earlyq_sim.workloads.training import ldm_models as lm  # noqa: E402
from earlyq_sim.workloads.training import safe_ckpt as sc  # noqa: E402
from earlyq_sim.workloads.training import train_ldm as tl  # noqa: E402
from earlyq_sim.workloads.training.ldm_sample import sample_ldm  # noqa: E402

TINY_AE = {
    "_class_name": "AutoencoderKL", "in_channels": 1, "out_channels": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [8, 8, 8], "layers_per_block": 1, "latent_channels": 4,
    "norm_num_groups": 4, "sample_size": 28, "_earlyq": {"name": "tiny-ae", "latent_shape": [4, 7, 7]},
}
TINY_UNET = {
    "_class_name": "UNet2DConditionModel", "sample_size": 7, "in_channels": 4, "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn", "block_out_channels": [16, 16, 16],
    "layers_per_block": 1, "norm_num_groups": 8, "cross_attention_dim": 16, "attention_head_dim": [1, 1, 1],
    "_earlyq": {"name": "tiny-ldm", "condition_encoder": {"num_classes": 10, "null_index": 10, "tokens": 4, "dim": 16},
                "scheduler": {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                              "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False}},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Synthetic 28x28 data (a bright bar whose row depends on the class) and tiny configs."""
    d = tmp_path_factory.mktemp("tiny")
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 10
    images = torch.rand(40, 1, 28, 28, generator=g) * 0.2 - 1.0
    for i, k in enumerate(labels.tolist()):
        images[i, 0, 2 + 2 * k:4 + 2 * k, 4:24] = 1.0
    for name, cfg in (("ae.json", TINY_AE), ("unet.json", TINY_UNET)):
        (d / name).write_text(json.dumps(cfg))
    return {"dir": d, "images": images, "labels": labels,
            "ae": str(d / "ae.json"), "unet": str(d / "unet.json")}


def _cfg(tiny, ckpt, stage, **kw):
    base = dict(stage=stage, ckpt_dir=str(ckpt), steps=6, batch_size=8, log_every=2, ckpt_every_steps=3,
                ckpt_every_s=1e9, keep_ckpts=2, threads=1, warmup_steps=0, lr=3e-3, eval_every=0,
                ae_config=tiny["ae"], unet_config=tiny["unet"], ae_weights=str(tiny["dir"] / "ae.safetensors"))
    base.update(kw)
    return tl.TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_ae(tiny):
    """A tiny AE trained a few steps and exported with its scaling factor (the UNet's input)."""
    cfg = _cfg(tiny, tiny["dir"] / "ck_ae", "ae", steps=20, export_path=str(tiny["dir"] / "ae.safetensors"),
               config_out=str(tiny["dir"] / "ae_out.json"))
    res = tl.train_ldm(cfg, tiny["images"], tiny["labels"])
    return res


def _mean(xs):
    return sum(xs) / len(xs)


def test_shipped_configs_build_and_unet_runs_on_7x7_latent():
    unet, ae, cond = lm.build_unet(), lm.build_autoencoder(), lm.build_condition_encoder()
    assert 2_000_000 <= lm.count_params(unet) <= 5_000_000
    with torch.no_grad():
        z = ae.encode(torch.zeros(2, 1, 28, 28)).latent_dist.mean
        assert z.shape == (2, 4, 7, 7)
        assert ae.decode(z).sample.shape == (2, 1, 28, 28)
        ctx = cond(torch.tensor([3, cond.null_index]))
        assert ctx.shape == (2, 4, 64)
        out = unet(torch.randn(2, 4, 7, 7), torch.tensor([10, 900]), encoder_hidden_states=ctx).sample
    assert out.shape == (2, 4, 7, 7)
    heads = {m.inner_dim // m.heads for n, m in unet.named_modules() if n.endswith("attn2")}
    assert heads == {32}  # 'attention_head_dim' [2, 3, 3] is the head count: 32 channels per head


def test_ae_training_lowers_loss_and_exports_scaling_factor(tiny, tiny_ae):
    assert tiny_ae.end_step == 20
    assert _mean(tiny_ae.losses[-4:]) < _mean(tiny_ae.losses[:4])
    tensors, meta = lm.load_tensors(tiny["dir"] / "ae.safetensors")
    assert float(meta["scaling_factor"]) > 0 and meta["step"] == "20"
    out = json.loads((tiny["dir"] / "ae_out.json").read_text())
    assert out["scaling_factor"] == pytest.approx(float(meta["scaling_factor"]))


def test_unet_training_lowers_loss(tiny, tiny_ae, tmp_path):
    res = tl.train_ldm(_cfg(tiny, tmp_path / "u", "unet", steps=30, batch_size=16, ckpt_every_steps=0),
                       tiny["images"], tiny["labels"])
    assert _mean(res.losses[-6:]) < _mean(res.losses[:6])


def test_unet_resume_repeats_uninterrupted_losses_without_pickle(tiny, tiny_ae, tmp_path, monkeypatch):
    full = tl.train_ldm(_cfg(tiny, tmp_path / "a", "unet"), tiny["images"], tiny["labels"])

    def no_pickle(*a, **k):
        raise AssertionError("checkpoints must not be read with torch.load / pickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    first = tl.train_ldm(_cfg(tiny, tmp_path / "b", "unet"), tiny["images"], tiny["labels"], stop_after=4)
    second = tl.train_ldm(_cfg(tiny, tmp_path / "b", "unet"), tiny["images"], tiny["labels"])
    assert (first.end_step, second.start_step, len(full.losses)) == (4, 4, 6)
    assert first.losses + second.losses == full.losses  # bit-exact
    ta, _ = lm.load_tensors(tmp_path / "a" / "ckpt_00000006.safetensors")
    tb, _ = lm.load_tensors(tmp_path / "b" / "ckpt_00000006.safetensors")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(k.startswith("ema_cond.") for k in ta) and any(k.startswith("opt.") for k in ta)
    with open(tmp_path / "b" / "train_curve.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [2, 4, 6]
    assert [p.name for p in sc.list_checkpoints(tmp_path / "b")] == ["ckpt_00000004.json", "ckpt_00000006.json"]


def test_checkpoint_files_are_safetensors_and_json_only(tiny, tiny_ae):
    ck = tiny["dir"] / "ck_ae"
    names = {p.suffix for p in ck.iterdir()}
    assert names <= {".safetensors", ".json", ".csv", ".log"}
    for p in ck.glob("ckpt_*"):
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK"  # neither a raw pickle nor torch's zip format
        if p.suffix == ".json":
            info = json.loads(p.read_text())
            assert isinstance(info["gen_state_hex"], str) and info["stage"] == "ae"
            bytes.fromhex(info["torch_rng_hex"])
        else:
            lm.load_tensors(p)


def test_conditional_sampler_shapes_classes_and_batch_independence(tiny, tiny_ae):
    torch.manual_seed(0)
    unet = lm.build_unet(tiny["unet"]).eval()
    cond = lm.build_condition_encoder(tiny["unet"]).eval()
    ae = lm.build_autoencoder(tiny["ae"]).eval()
    lm.load_weights(ae, tiny["dir"] / "ae.safetensors")
    labels = [0, 5, 9]
    imgs = sample_ldm(unet, ae, cond, labels, scaling_factor=1.0, seed=7, num_steps=3, guidance=3.0, batch_size=2)
    assert imgs.shape == (3, 1, 28, 28) and imgs.min() >= -1 and imgs.max() <= 1
    one = sample_ldm(unet, ae, cond, labels, scaling_factor=1.0, seed=7, num_steps=3, guidance=3.0, batch_size=3)
    assert torch.allclose(imgs, one, atol=1e-5)  # image j's noise depends on (seed, j) only
    other = sample_ldm(unet, ae, cond, [1, 5, 9], scaling_factor=1.0, seed=7, num_steps=3, guidance=3.0)
    assert not torch.allclose(other[0], imgs[0], atol=1e-4)  # a different class changes the image
    assert torch.allclose(other[1:], imgs[1:], atol=1e-5)
