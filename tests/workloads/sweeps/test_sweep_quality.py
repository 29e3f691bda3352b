"""Quality in sweeps: one cell per schedule however many archs, resume, corrupt cells, cost-only
models, Dask, and bad ``metrics``/``quality`` fields."""

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.quality import evaluate as ev
from earlyq_sim.workloads.sweeps import runner as sw
from earlyq_sim.workloads.sweeps.quality_cells import quality_columns
from earlyq_sim.workloads.sweeps.spec import load_sweep

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCHEDULES = ["W8A8", "a4@0-0.5,a8@0.5-1"]
SPEC = {
    "name": "q", "models": ["fmnist16"], "archs": ["stripes", "bitfusion", "loom"],
    "overrides": {"array.rows": [16, 32]}, "schedules": SCHEDULES, "steps": 2, "chunk_size": 4,
    "metrics": ["cost", "quality"],
    "quality": {"n": 4, "seeds": [0], "calib_n": 4, "calib_steps": 2, "n_boot": 10},
}
N_ARCHS = 3 * 2


def _count(monkeypatch, fake=False, fail_at=None):
    """Wrap evaluate_quality: record each call's (schedule label, seed) and result; ``fake`` swaps
    the sampling for seeded noise images (fast; the cache logic is the point); ``fail_at``: the
    call number that raises, as a kill would."""
    calls = []
    real = ev.evaluate_quality

    def counting(model, schedule, baseline, **kw):
        if fail_at is not None and len(calls) + 1 == fail_at:
            raise KeyboardInterrupt
        q = _fake(model, schedule, baseline, **kw) if fake else real(model, schedule, baseline, **kw)
        calls.append((schedule.label, kw["seed"], q))
        return q

    monkeypatch.setattr(ev, "evaluate_quality", counting)
    return calls


def _fake(model, schedule, baseline, n, seed, **kw):
    """Images like fmnist16's (N, 16, 16, 1) uint8: full precision from the seed, the quantized runs
    with noise that grows as the fewest activation bits fall."""
    rng = np.random.default_rng(seed)
    fp = rng.integers(0, 256, (n, 16, 16, 1)).astype(np.int16)

    def noisy(s, salt):
        amp = 2.0 ** (8 - min(b.act for b in s.distinct_bits()))
        noise = np.random.default_rng([seed, salt]).normal(0, amp, fp.shape)
        return np.clip(fp + noise, 0, 255).astype(np.uint8)

    images = {"full precision": fp.astype(np.uint8), "baseline": noisy(baseline, 1), "schedule": noisy(schedule, 2)}
    return ev.QualityResult(model, n, seed, "ddim", schedule.num_steps, [], images)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A real quality sweep (integer emulation, 4 images, 2 steps), evaluations counted."""
    mp = pytest.MonkeyPatch()
    calls = _count(mp)
    try:
        out = tmp_path_factory.mktemp("clean")
        return sw.run_sweep(SPEC, out, progress=False), out, calls
    finally:
        mp.undo()


def test_quality_once_per_schedule_joined_to_every_arch(clean):
    df, out, calls = clean
    assert len(df) == N_ARCHS * len(SCHEDULES)
    assert sorted(c[0] for c in calls) == sorted(["W8A8", "w8,a4@0-0.5,a8@0.5-1"])  # 2 cells for 6 archs
    assert len(list((out / "quality").glob("cell-*.json"))) == 2
    assert df.attrs["sweep"]["quality_cells"] == df.attrs["sweep"]["quality_computed"] == 2
    assert list(df.columns[-len(quality_columns()):]) == quality_columns()
    for label, q in ((c[0], c[2]) for c in calls):
        rows = df[df["quality_key"] == df.loc[df["schedule"] == label, "quality_key"].iloc[0]]
        assert len(rows) == N_ARCHS and rows["arch"].nunique() == 3
        # every arch row carries the cell's values, and they are the run lane's own numbers
        first = rows[quality_columns()].iloc[0]
        assert (rows[quality_columns()].astype(str) == first.astype(str)).all().all()
        lane = q.table().set_index("run")
        for col, run, metric in (("fd", "schedule", "fd"), ("baseline_fd", "baseline", "fd"),
                                 ("psnr_db_mean", "schedule", "psnr_db_mean"), ("fp_fd", "full precision", "fd")):
            assert first[col] == pytest.approx(lane.loc[run, metric], rel=1e-9)
        assert first["quality_n_images"] == 4 and first["quality_steps"] == 2 and first["quality_seeds"] == "0"
    w8 = df[df["schedule"] == "W8A8"].iloc[0]
    assert w8["fd_delta"] == 0.0 and bool(w8["quality_ok"]) and w8["quality_reasons"] == ""
    a4 = df[df["schedule"] != "W8A8"].iloc[0]
    assert a4["fd_delta_ci95_lo"] <= a4["fd_delta"] <= a4["fd_delta_ci95_hi"] and a4["fd"] > a4["baseline_fd"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), df)
    assert json.loads((out / "manifest.json").read_text())["metrics"] == ["cost", "quality"]


@pytest.fixture(scope="module")
def fake_clean(tmp_path_factory):
    """The quality sweep with fake images (fast), evaluations counted."""
    mp = pytest.MonkeyPatch()
    calls = _count(mp, fake=True)
    try:
        out = tmp_path_factory.mktemp("fake")
        return sw.run_sweep(SPEC, out, progress=False), out, calls
    finally:
        mp.undo()


def test_killed_quality_sweep_resumes_without_recomputing(fake_clean, tmp_path, monkeypatch):
    df_clean, _, _ = fake_clean
    first = _count(monkeypatch, fake=True, fail_at=2)  # the second cell dies mid-sweep
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(SPEC, tmp_path, progress=False)
    assert len(list((tmp_path / "quality").glob("cell-*.json"))) == 1
    assert not list((tmp_path / "quality").glob(".*.tmp")) and not (tmp_path / "results.csv").exists()
    assert not (tmp_path / ".lock").exists()
    calls = _count(monkeypatch, fake=True)
    df = sw.run_sweep(SPEC, tmp_path, progress=False)
    s = df.attrs["sweep"]
    assert len(calls) == 1 and (s["quality_skipped"], s["quality_computed"]) == (1, 1)
    assert s["skipped"] == s["points"] == N_ARCHS * 2  # the cost rows were written before the kill
    assert [c[0] for c in first] == ["W8A8"] and calls[0][0] == "w8,a4@0-0.5,a8@0.5-1"  # only the lost cell
    pd.testing.assert_frame_equal(df, df_clean)
    calls.clear()
    again = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert calls == [] and again.attrs["sweep"]["quality_computed"] == 0
    pd.testing.assert_frame_equal(again, df_clean)


def test_a_corrupt_or_mismatched_cell_is_recomputed(fake_clean, tmp_path, monkeypatch):
    df_clean, out, _ = fake_clean
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)
    a, b = sorted((tmp_path / "quality").glob("cell-*.json"))
    rec = json.loads(a.read_text())
    rec["row"]["fd"] += 1.0  # a changed value
    a.write_text(json.dumps(rec))
    b.write_text(b.read_text()[:50])  # a truncated file
    calls = _count(monkeypatch, fake=True)
    with pytest.warns(UserWarning, match=r"quality cell cell-\w+\.json is corrupt or from other settings") as w:
        df = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert {a.name, b.name} <= {re.search(r"cell-\w+\.json", str(x.message)).group() for x in w}
    assert len(calls) == 2 and df.attrs["sweep"]["quality_computed"] == 2
    pd.testing.assert_frame_equal(df, df_clean)
    rec = json.loads(a.read_text())
    rec["fingerprint"]["settings"]["n"] = 5  # a cell of other settings under this name
    a.write_text(json.dumps(rec))
    calls.clear()
    with pytest.warns(UserWarning, match=rf"quality cell {a.name} is corrupt or from other settings"):
        df = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(df, df_clean)


def test_cost_only_model_gets_nan_quality_and_one_note(tmp_path, monkeypatch, capsys):
    calls = _count(monkeypatch, fake=True)
    spec = dict(SPEC, models=["ddpm-cifar10"], archs=["stripes", "loom"], overrides={})
    df = sw.run_sweep(spec, tmp_path, progress=False)
    err = capsys.readouterr().err
    note = [ln for ln in err.splitlines() if "ddpm-cifar10" in ln]
    assert len(note) == 1 and "has no trained weights" in note[0] and "NaN" in note[0]
    assert len(df) == 4 and df["quality_key"].isna().all() and calls == []
    assert list(df.columns[-len(quality_columns()):]) == quality_columns()
    assert df[[c for c in quality_columns() if c not in ("quality_seeds", "quality_reasons")]].isna().all().all()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["notes"] == [note[0].removeprefix("earlyq-sim sweep: ")] and manifest["quality_cells"] == 0
    assert df["speedup"].notna().all()


def test_quality_cells_are_dask_tasks(fake_clean, tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    df_clean, _, _ = fake_clean
    calls = _count(monkeypatch, fake=True)
    df = sw.run_sweep(SPEC, tmp_path, executor="dask", progress=False)
    assert len(calls) == 2 and df.attrs["sweep"]["quality_computed"] == 2
    pd.testing.assert_frame_equal(df, df_clean)


BAD = [
    ({"metrics": ["cost", "qualty"]}, "metrics[1]: 'qualty' is unknown; allowed cost | quality"),
    ({"metrics": ["quality"]}, "metrics: ['quality'] leaves out cost"),
    ({"metrics": ["cost", "cost"]}, "metrics: duplicate entries"),
    ({"metrics": ["cost"]}, "quality: settings given but metrics is ['cost']"),
    ({"quality": {"n": 2}}, "quality.n: 2 is not allowed; allowed an integer 3..100000"),
    ({"quality": {"seeds": []}}, "quality.seeds: empty list"),
    ({"quality": {"seeds": [0, 0]}}, "quality.seeds: duplicate seeds"),
    ({"quality": {"seeds": ["a"]}}, "quality.seeds[0]: 'a' is not allowed"),
    ({"quality": {"sampler": "euler"}}, "quality.sampler: 'euler' is unknown; allowed ddim | ddpm"),
    ({"quality": {"steps": 0}}, "quality.steps: 0 is not allowed"),
    ({"quality": {"images": 4}}, "quality.images: unknown field; allowed: n, seeds"),
    ({"quality": [4]}, "quality: expected a mapping"),
    ({"quality": {"n_boot": True}}, "quality.n_boot: True is not allowed"),
]


@pytest.mark.parametrize("change,msg", BAD)
def test_bad_quality_fields_are_one_line_errors_naming_file_and_field(tmp_path, change, msg):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump({**SPEC, **change}))
    with pytest.raises(UserError) as e:
        load_sweep(p)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{p}: ") and msg in text, text


def test_schedule_without_a_step_at_the_quality_step_count_is_refused_before_work(tmp_path, run_cli):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({**SPEC, "schedules": ["a4@0-0.1,a8@0.1-1"], "steps": 50,
                                 "quality": {"steps": 4}}))
    code, _, err = run_cli(["sweep", str(p), "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and err.count("\n") == 1 and f"{p}: schedules[0] at quality.steps 4: " in err, err
    assert not (tmp_path / "o" / "parts").exists() or not list((tmp_path / "o" / "parts").iterdir())
