"""Pareto marking against a brute-force reference; ties, NaNs, groups; the CLI command."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.sweeps import pareto as P


def _brute(v):
    """O(n^2) loops: i is on the front unless some j is <= everywhere and < somewhere (NaN: off)."""
    n = len(v)
    out = []
    for i in range(n):
        if np.isnan(v[i]).any():
            out.append(False)
            continue
        dom = False
        for j in range(n):
            if j != i and not np.isnan(v[j]).any() and all(v[j] <= v[i]) and any(v[j] < v[i]):
                dom = True
                break
        out.append(not dom)
    return np.array(out, bool)


values = st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan, 1.5])  # few distinct values: many ties


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, 4))).flatmap(
    lambda nk: st.lists(st.lists(values, min_size=nk[1], max_size=nk[1]), min_size=nk[0], max_size=nk[0])))
def test_mask_equals_brute_force(rows):
    v = np.array(rows, np.float64)
    assert (P.pareto_mask(v) == _brute(v)).all()


def test_chunks_give_the_same_front(monkeypatch):
    rng = np.random.default_rng(0)
    v = rng.integers(0, 20, size=(500, 3)).astype(float)
    whole = P.pareto_mask(v)
    monkeypatch.setattr(P, "CHUNK", 7)
    assert (P.pareto_mask(v) == whole).all() and (whole == _brute(v)).all()


def test_directions_groups_ties_and_nan():
    df = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 2, "speedup": [2.0, 2.0, 1.0, 3.0, 1.0, np.nan],
                       "fd": [5.0, 5.0, 4.0, np.nan, 9.0, 1.0]})
    m = P.pareto_front(df, maximise=["speedup"], minimise=["fd"])
    # a: the tie (2, 5) both stay, (1, 4) trades, (3, NaN) is out; b: the NaN row never wins
    assert m.tolist() == [True, True, True, False, True, False]
    one = P.pareto_front(df, maximise=["speedup"], minimise=["fd"], by=())
    assert one.tolist() == [True, True, True, False, False, False]  # (1, 9) dominated across models


def test_bad_columns_are_one_line_errors():
    df = pd.DataFrame({"model": ["a"], "speedup": [1.0], "schedule": ["W8A8"]})
    with pytest.raises(UserError, match="column 'fd' is not a numeric column of the results; allowed: speedup"):
        P.pareto_front(df, ["speedup"], ["fd"])
    with pytest.raises(UserError, match="column 'schedule' is not a numeric"):
        P.pareto_front(df, ["schedule"])
    with pytest.raises(UserError, match="no objectives"):
        P.pareto_front(df)


def test_cli_marks_the_front_in_the_results(tmp_path, run_cli):
    df = pd.DataFrame({"model": ["m"] * 3, "arch": ["x", "y", "z"], "schedule": ["s"] * 3,
                       "speedup": [1.0, 2.0, 1.5], "energy_mj": [1.0, 3.0, 4.0]})
    df.to_csv(tmp_path / "results.csv", index=False)
    df.to_parquet(tmp_path / "results.parquet")
    code, out, err = run_cli(["pareto", str(tmp_path), "--maximise", "speedup", "--minimise", "energy_mj"])
    assert code == 0, err
    assert "2 of 3 points on the front" in out
    for got in (pd.read_parquet(tmp_path / "results.parquet"), pd.read_csv(tmp_path / "results.csv")):
        assert got["pareto"].tolist() == [True, True, False]
    code, _, err = run_cli(["pareto", str(tmp_path), "--minimise", "fd"])
    assert code == 2 and "column 'fd'" in err and err.count("\n") == 1
