"""CLI commands around the two lanes: trace, export, archs, models, bad input for sample."""

import pytest

from earlyq_sim.simulator.cost.arch import list_archs





def test_trace_prints_macs(run_cli, tmp_path):
    code, out, err = run_cli(["trace", "--model", "ddpm-cifar10", "--out", str(tmp_path)])
    assert code == 0, err
    assert "35,746,307 params" in out and "GMACs per UNet forward" in out
    assert (tmp_path / "ops.parquet").exists() and (tmp_path / "graph.json").exists()


@pytest.mark.parametrize("fmt", ["scalesim", "zigzag"])
def test_export_writes_files(fmt, run_cli, tmp_path):
    code, out, err = run_cli(["export", "--model", "ddpm-cifar10", "--format", fmt, "--out", str(tmp_path)])
    assert code == 0, err
    assert any(tmp_path.iterdir())


def test_archs_and_models_list(run_cli):
    code, out, _ = run_cli(["archs"])
    assert code == 0 and all(a in out for a in list_archs())
    code, out, _ = run_cli(["models"])
    assert code == 0 and all(m in out for m in ("ddpm-cifar10", "ldm4-bedroom", "sd-v1.5", "fmnist16"))


@pytest.mark.parametrize("args,word", [
    (["sample", "--out", "X", "--early-bits", "0"], "--early-bits"),
    (["sample", "--out", "X", "--model", "/no/such/unet"], "/no/such/unet"),
    (["sample", "--out", "X", "--calibration", "/no/such.safetensors"], "/no/such.safetensors"),
    (["export", "--model", "nomodel", "--format", "zigzag", "--out", "X"], "nomodel"),
])
def test_bad_input_one_line(args, word, run_cli, tmp_path):
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    code, _, err = run_cli(args)
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_sample_writes_images_and_run_record_deterministically(run_cli, tmp_path):
    """`earlyq-sim sample` on the shipped model: PNG grid, .npy and sample.json (schedule, which
    exact kernels ran, saturation, time); the same seed and schedule give byte-identical images,
    also with another exact engine."""
    import json

    import numpy as np
    args = ["sample", "--n", "4", "--steps", "4", "--calib-n", "4", "--batch-size", "4", "--seed", "3"]
    runs = []
    for name, extra in (("a", []), ("b", []), ("c", ["--engine", "f32"])):
        out = tmp_path / name
        code, text, err = run_cli(args + extra + ["--out", str(out)])
        assert code == 0, err
        assert "images/s" in text and "GEMM engines:" in text
        rec = json.loads((out / "sample.json").read_text())
        assert rec["arithmetic"] == "int" and rec["schedule"]["label"] == "w8,a4@0-0.4,a8@0.4-1"
        assert rec["accumulator_saturated"] == 0 and sum(rec["gemm_engine_calls"].values()) > 0
        assert rec["sampling_seconds"] > 0 and (out / "samples.png").stat().st_size > 0
        runs.append((out / "samples.npy").read_bytes())
        assert np.load(out / "samples.npy").shape[0] == 4
    assert runs[0] == runs[1] == runs[2]          # same seed: same bytes, with any exact engine
    assert "f32" in rec["gemm_engine_calls"] and "i16" not in rec["gemm_engine_calls"]
