"""Samplers and calibration files: determinism, batch-size independence, per-interval ranges,
save/load checks, bad input."""

import os

import numpy as np
import pytest
import torch

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.sampling.calibration import calib_step_indices, load_calibration
from earlyq_sim.models.loader import load_unet
from earlyq_sim.workloads.sampling.prepare import quantize_and_calibrate, sample
from conftest import tiny_unet
from earlyq_sim.schedule import PrecisionSchedule

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)
SCHED = PrecisionSchedule.parse("a4@0-0.5,a8@0.5-1,w8,p16", 4)




@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture(scope="module")
def calib(unet, tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "c.safetensors"
    qm = quantize_and_calibrate(unet, SCHED, n_calib=4, calib_steps=4, batch_size=4, save=path, progress=False)
    return qm, path


def test_same_seed_same_bytes_and_batch_independence(calib):
    qm, _ = calib
    a = sample(qm, SCHED, 4, seed=7, batch_size=4, progress=False)
    b = sample(qm, SCHED, 4, seed=7, batch_size=4, progress=False)
    assert a.dtype == np.uint8 and a.shape == (4, 16, 16, 1)
    assert a.tobytes() == b.tobytes()
    c = sample(qm, SCHED, 4, seed=8, batch_size=4, progress=False)
    assert not np.array_equal(a, c)
    # integer GEMMs are exact and the float ops are per sample: batch size does not matter
    d = sample(qm, SCHED, 4, seed=7, batch_size=3, progress=False)
    assert a.tobytes() == d.tobytes()


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_stochastic_samplers_reproducible(calib, sampler, eta):
    qm, _ = calib
    kw = dict(sampler=sampler, eta=eta, batch_size=2, progress=False)
    a = sample(qm, SCHED, 2, seed=3, **kw)
    assert a.tobytes() == sample(qm, SCHED, 2, seed=3, **kw).tobytes()


def test_bits_follow_the_schedule(calib):
    qm, _ = calib
    seen = []
    orig = qm.set_step_bits
    qm.set_step_bits = lambda bits, idx: (seen.append((bits.act, idx)), orig(bits, idx))
    try:
        sample(qm, SCHED, 1, seed=0, progress=False)
    finally:
        del qm.set_step_bits
    assert seen == [(4, 0), (4, 0), (8, 1), (8, 1)]


def test_interval_and_shared_ranges_differ(calib):
    qm, _ = calib
    slot = next(iter(qm.gemms.values())).act
    assert (0, 4) in slot.ranges and (-1, 4) in slot.ranges and (-1, 8) in slot.ranges and (1, 8) in slot.ranges
    a = sample(qm, SCHED, 2, seed=1, progress=False)
    qm.set_range_mode("shared")
    try:
        b = sample(qm, SCHED, 2, seed=1, progress=False)
    finally:
        qm.set_range_mode("interval")
    assert not np.array_equal(a, b)


def test_calibration_file_roundtrip_and_mismatches(calib, unet, tmp_path):
    qm, path = calib
    a = sample(qm, SCHED, 2, seed=5, progress=False)
    qm2 = quantize_and_calibrate(unet, SCHED, load=path, progress=False)
    assert a.tobytes() == sample(qm2, SCHED, 2, seed=5, progress=False).tobytes()
    other = quantize_and_calibrate(tiny_unet(seed=1), SCHED, n_calib=1, calib_steps=1, batch_size=1,
                                   progress=False, observer="minmax")
    with pytest.raises(UserError, match="another model") as e:
        load_calibration(path, other, SCHED)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="schedule") as e:
        load_calibration(path, qm2, PrecisionSchedule.parse("a4@0-0.25,a8@0.25-1,w8,p16", 4))
    assert "\n" not in str(e.value)
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"not a file")
    with pytest.raises(UserError):
        load_calibration(bad, qm2, SCHED)
    with pytest.raises(UserError, match="not found"):
        load_calibration(tmp_path / "missing.safetensors", qm2, SCHED)


def test_checkpoint_mismatch_is_user_error(unet, tmp_path):
    import json
    from safetensors.torch import save_file
    good, bad = tmp_path / "good", tmp_path / "bad"
    for d in (good, bad):
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **dict(unet.config)}))
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(good / "diffusion_pytorch_model.safetensors"))
    loaded = load_unet(str(good))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in unet.state_dict().items())
    sd = {k: v.contiguous() for k, v in tiny_unet().state_dict().items()}
    sd.pop("conv_in.weight")
    save_file(sd, str(bad / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(UserError, match="missing") as e:
        load_unet(str(bad))
    assert "\n" not in str(e.value)


def test_bad_sampling_input(calib, unet):
    qm, _ = calib
    with pytest.raises(UserError, match="quantized model"):
        sample(unet, SCHED, 1, 0, progress=False)
    with pytest.raises(UserError, match="num_steps"):
        sample(qm, SCHED, 1, 0, num_steps=10, progress=False)
    with pytest.raises(UserError, match="sampler"):
        sample(qm, SCHED, 1, 0, sampler="euler", progress=False)
    with pytest.raises(UserError):
        calib_step_indices(10, 0)


def test_calibration_steps_cover_trajectory():
    assert calib_step_indices(100, 20)[0] == 0 and calib_step_indices(100, 20)[-1] == 99
    assert len(calib_step_indices(100, 20)) == 20
    assert calib_step_indices(4, 20) == [0, 1, 2, 3]


def test_float_sampling_reproducible(unet):
    a = sample(unet, None, 2, seed=0, num_steps=3, progress=False)
    assert a.tobytes() == sample(unet, None, 2, seed=0, num_steps=3, progress=False).tobytes()


def test_a_new_sampler_is_one_registry_entry(calib):
    """Registering a toy sampler (diffusers' Euler) makes it run in the integer-emulated sampler,
    and the CLI's choices are the registry's names."""
    from earlyq_sim.commands.quality import register  # noqa: F401  (imports the CLI options)
    from earlyq_sim.workloads.sampling import sampler_registry as reg
    from earlyq_sim.cli import cli

    choices = {p.name: p.type.choices for p in cli.commands["sample"].params if p.name == "sampler"}
    assert tuple(choices["sampler"]) == reg.sampler_names()
    reg.register_sampler(reg.SamplerSpec("toy-euler", "EulerDiscreteScheduler", False, "toy"))
    try:
        qm, _ = calib
        a = sample(qm, SCHED, 2, seed=3, sampler="toy-euler", batch_size=2, progress=False)
        b = sample(qm, SCHED, 2, seed=3, sampler="toy-euler", batch_size=2, progress=False)
        d = sample(qm, SCHED, 2, seed=3, sampler="ddim", batch_size=2, progress=False)
        assert a.shape == (2, 16, 16, 1) and np.array_equal(a, b) and not np.array_equal(a, d)
        with pytest.raises(UserError, match="eta applies to ddim only; use eta=0 with sampler 'toy-euler'"):
            sample(qm, SCHED, 1, seed=0, sampler="toy-euler", eta=0.5, progress=False)
    finally:
        reg.SAMPLERS.pop("toy-euler")
    with pytest.raises(UserError, match="sampler: 'toy-euler' is unknown; allowed ddim, ddpm"):
        sample(qm, SCHED, 1, seed=0, sampler="toy-euler", progress=False)


def test_non_finite_model_output_stops_sampling_naming_the_step():
    """A model with NaN weights wrote black images with exit 0; now the first bad step is named."""
    from earlyq_sim.workloads.sampling.samplers import run_sampler
    bad = tiny_unet()
    with torch.no_grad():
        bad.conv_out.weight.fill_(float("nan"))
    with pytest.raises(UserError, match=r"sampling: step 0 of 3 \(timestep \d+\): non-finite values"):
        run_sampler(bad, 2, 0, "ddim", 3, 2, progress=False)


def _rewrite(src, dst, meta_change=None, ranges=None):
    """A copy of calibration file ``src`` with its metadata or ranges tensor changed."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        arr = f.get_tensor("ranges")
    if meta_change is not None:
        meta = meta_change(meta)
    save_file({"ranges": arr if ranges is None else ranges(arr)}, str(dst), metadata={"meta": json.dumps(meta)})
    return dst


def _drop(field):
    return lambda m: {k: v for k, v in m.items() if k != field}


def _set(field, value):
    return lambda m: {**m, field: value}


BAD_CALIBRATION = [
    *[(f"missing {f}", _drop(f), None, f"field {f} is missing")
      for f in ("format", "fingerprint", "schedule", "steps", "settings", "keys")],
    *[(f"{f} wrong type", _set(f, v), None, f"field {f} is {type(v).__name__}; expected")
      for f, v in (("fingerprint", 12), ("schedule", "a4"), ("steps", {}), ("settings", []), ("keys", "x"))],
    ("meta a list", lambda m: [m], None, "metadata is list"),
    ("format", _set("format", "v0"), None, "field format is 'v0'"),
    ("no out_bits", lambda m: {**m, "settings": {}}, None, "settings.out_bits is missing"),
    ("malformed key", lambda m: {**m, "keys": ["conv_in"] + m["keys"][1:]}, None, "keys must be distinct"),
    ("repeated key", lambda m: {**m, "keys": [m["keys"][0]] * len(m["keys"])}, None, "got a repeat"),
    ("short ranges", None, lambda a: a[:-1], "tensor ranges has shape"),
    ("nan range", None, lambda a: torch.where(torch.arange(a.numel()).reshape(a.shape) == 0, float("nan"), a),
     "non-finite or inverted"),
    ("inverted range", None, lambda a: a.flip(1) + torch.tensor([1.0, 0.0], dtype=a.dtype), "non-finite or inverted"),
    ("malformed schedule", lambda m: {**m, "schedule": {"x": 1}}, None, "field schedule is malformed"),
]


@pytest.mark.parametrize("name,meta,ranges,msg", BAD_CALIBRATION, ids=[c[0] for c in BAD_CALIBRATION])
def test_a_tampered_calibration_file_is_one_line_naming_the_field(calib, unet, tmp_path, name, meta, ranges, msg):
    qm, path = calib
    bad = _rewrite(path, tmp_path / "bad.safetensors", meta, ranges)
    with pytest.raises(UserError, match=msg) as e:
        load_calibration(bad, qm, SCHED)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_more_steps_than_the_scheduler_was_trained_with_is_one_line(unet, sampler):
    from earlyq_sim.workloads.sampling.samplers import run_sampler

    with pytest.raises(UserError, match=rf"--steps 1001 is more than the 1000 steps the model's {sampler} scheduler "
                                        r"was trained with; allowed 1\.\.1000"):
        run_sampler(unet, 1, 0, sampler, num_steps=1001, progress=False)
    with pytest.raises(UserError, match="more than the 50 steps"):
        run_sampler(unet, 1, 0, sampler, num_steps=51, scheduler_config={"num_train_timesteps": 50}, progress=False)
