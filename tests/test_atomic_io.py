import json
import os

import numpy as np
import pandas as pd
import pytest

from earlyq_sim.atomic_io import atomic_write_bytes, to_json, write_json, write_table


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    write_json(p, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_json_handles_numpy_and_nan():
    text = to_json({"x": np.int64(3), "y": np.float32(0.5), "z": float("nan"), "w": np.arange(2)})
    assert json.loads(text) == {"x": 3, "y": 0.5, "z": None, "w": [0, 1]}


def test_write_table_round_trips(tmp_path):
    df = pd.DataFrame({"step": [0, 1], "latency_ms": [1.5, 2.5], "name": ["a", "b"]})
    paths = write_table(tmp_path, "per_step", df)
    assert sorted(p.name for p in paths) == ["per_step.csv", "per_step.parquet"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "per_step.csv"), df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "per_step.parquet"), df)
    atomic_write_bytes(tmp_path / "sub" / "x.bin", b"123")
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"123"


def test_atomic_write_gives_normal_permissions(tmp_path):
    from earlyq_sim import atomic_io as tables

    p = atomic_write_bytes(tmp_path / "r.csv", b"x")
    assert p.stat().st_mode & 0o777 == 0o666 & ~tables._UMASK


def test_write_npy_round_trips(tmp_path):
    from earlyq_sim.atomic_io import write_npy

    a = np.arange(12, dtype=np.uint8).reshape(3, 2, 2, 1)
    np.testing.assert_array_equal(np.load(write_npy(tmp_path / "s.npy", a)), a)
