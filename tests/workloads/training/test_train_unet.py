"""Diffusion training: exact resume, training curve, EMA warm-up, export/load of weights."""

import csv
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from earlyq_sim.errors import UserError  # noqa: E402
from earlyq_sim.workloads.training import train_unet as tr  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(32, 1, 16, 16, generator=g) * 2 - 1


def _cfg(d, **kw):
    base = dict(ckpt_dir=str(d), steps=6, batch_size=4, log_every=2, ckpt_every_steps=3,
                ckpt_every_s=1e9, keep_ckpts=3, threads=1, warmup_steps=3)
    base.update(kw)
    return tr.TrainConfig(**base)


def _ckpt_tensors(js_path):
    from earlyq_sim.workloads.training.ldm_models import load_tensors
    from pathlib import Path
    return load_tensors(Path(js_path).with_suffix(".safetensors"))[0]


def test_resume_repeats_uninterrupted_loss_sequence(tmp_path, tiny_data):
    full = tr.train_diffusion(_cfg(tmp_path / "a"), data=tiny_data)
    first = tr.train_diffusion(_cfg(tmp_path / "b"), data=tiny_data, stop_after=4)
    second = tr.train_diffusion(_cfg(tmp_path / "b"), data=tiny_data)
    assert len(full.losses) == 6 and (first.end_step, second.start_step) == (4, 4)
    assert first.losses + second.losses == full.losses  # bit-exact
    a, b = (_ckpt_tensors(r.last_ckpt) for r in (full, second))
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key])
    with open(tmp_path / "b" / "train_curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # no duplicate rows after resume
    assert list(rows[0]) == ["step", "loss", "lr", "seconds"]
    assert float(rows[0]["loss"]) == pytest.approx(sum(full.losses[:2]) / 2, rel=1e-5)


def test_checkpoints_pruned_and_lr_warmup(tmp_path, tiny_data):
    tr.train_diffusion(_cfg(tmp_path, steps=9, keep_ckpts=2, milestone_every=4), data=tiny_data)
    assert [p.name for p in tr.list_checkpoints(tmp_path)] == ["ckpt_00000006.json", "ckpt_00000009.json"]
    assert sorted(p.name for p in (tmp_path / "milestones").iterdir()) == ["ema_00000004.safetensors", "ema_00000008.safetensors"]
    cfg = _cfg(tmp_path, lr=1e-3, warmup_steps=4)
    assert [tr.lr_at(s, cfg) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_ema_decay_warms_up():
    assert tr.ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert tr.ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert tr.ema_decay_at(100_000, 0.999) == 0.999
    # weight of the random init left after 1500 steps: far below the 22% of a fixed 0.999 EMA
    left = 1.0
    for s in range(1500):
        left *= tr.ema_decay_at(s, 0.999)
    assert left < 0.01 < 0.999 ** 1500 / 10


def test_export_and_load_round_trip(tmp_path, tiny_data):
    out = tmp_path / "w.safetensors"
    res = tr.train_diffusion(_cfg(tmp_path / "c", steps=2, export_path=str(out)), data=tiny_data)
    model = tr.load_trained_unet(weights=out)
    state = _ckpt_tensors(res.last_ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["ema." + k])
    assert tr.trained_step(weights=out) == 2
    x = tr.sample_ddim(model, 3, steps=2, seed=5, batch_size=2)
    assert x.shape == (3, 1, 16, 16) and float(x.abs().max()) <= 1.0
    # same seed -> same image regardless of batching
    torch.testing.assert_close(tr.sample_ddim(model, 1, steps=2, seed=5), x[:1])
    # one DDIM loop and one seeding rule: training's samples are the sampler's own
    from earlyq_sim.workloads.sampling.samplers import run_sampler
    ref = run_sampler(model, 3, 5, "ddim", 2, 2, 0.0, tr.load_model_config()["scheduler"], progress=False)
    assert torch.equal(x, ref.clamp(-1, 1))


def test_missing_weights_and_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="trained weights not found"):
        tr.load_trained_unet(weights=tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    with pytest.raises(UserError, match="re-export"):
        tr.load_trained_unet(weights=bad)
    with pytest.raises(UserError, match="allowed names"):
        tr.load_model_config("nope")
    with pytest.raises(UserError, match="allowed ddim, ddpm"):
        tr.build_scheduler(tr.load_model_config(), kind="euler")


def test_scheduler_from_config_is_linear_epsilon_ddpm():
    s = tr.build_scheduler(tr.load_model_config(), kind="ddpm")
    assert s.config.num_train_timesteps == 1000 and s.config.prediction_type == "epsilon"
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)


def test_a_pickled_checkpoint_is_never_loaded(tmp_path, tiny_data):
    """Security: a crafted torch.save checkpoint in --ckpt-dir would run code when unpickled
    (the earlier format was loaded with weights_only=False). It is refused, not loaded."""
    import pickle

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    d = tmp_path / "ck"
    d.mkdir()
    with open(d / "ckpt_00000005.pt", "wb") as fh:
        pickle.dump({"x": Boom()}, fh)
    with pytest.raises(UserError, match="pickled .* not loaded because unpickling runs code"):
        tr.train_diffusion(_cfg(d), data=tiny_data)
    assert not (tmp_path / "pwned").exists()
    assert tr.main(["--ckpt-dir", str(d), "--steps", "1"]) == 2
    assert not (tmp_path / "pwned").exists()
