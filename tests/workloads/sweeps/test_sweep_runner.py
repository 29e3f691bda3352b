"""Sweeps: spec parsing and errors, grid size, rows equal cost_run, resume after a crash, Dask."""

import math
import os

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch import ARCH_DIR, list_archs
from earlyq_sim.workloads.sweeps import runner as sw
from earlyq_sim.workloads.sweeps.spec import load_sweep, parse_sweep

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SPEC = {
    "name": "t",
    "models": ["ddpm-cifar10"],
    "archs": ["stripes", "bitfusion"],
    "overrides": {"array.rows": [16, 32]},
    "schedules": ["W8A8", "a4@0-0.3,a6@0.3-0.7,a8@0.7-1",
                  {"two_stage": {"early_bits": [2, 4], "boundary": [0.25, 0.5], "late_bits": 8}}],
    "steps": 20,
    "chunk_size": 4,
}
N_POINTS = 1 * 2 * 2 * 6  # models x archs x rows x schedules


def _spec(**kw):
    d = dict(SPEC)
    d.update(kw)
    return d


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return sw.run_sweep(SPEC, out, progress=False), out


# -- spec ---------------------------------------------------------------------------------------
def test_grid_size_and_stable_unique_keys():
    s = parse_sweep(SPEC)
    pts = sw.expand_points(s)
    assert s.num_points == len(pts) == N_POINTS
    assert len({p.key for p in pts}) == N_POINTS
    assert [p.key for p in sw.expand_points(parse_sweep(SPEC))] == [p.key for p in pts]
    # a different override value, step count or baseline is a different point
    other = sw.expand_points(parse_sweep(_spec(overrides={"array.rows": [64, 32]}, steps=20)))
    assert other[0].key != pts[0].key and other[6].key == pts[6].key
    assert sw.expand_points(parse_sweep(_spec(steps=21)))[0].key != pts[0].key
    # the same schedule written two ways is two points (two rows), not one key twice
    twin = parse_sweep(_spec(schedules=["W8A4", {"two_stage": {"early_bits": 4, "boundary": 1.0}}]))
    a, b = sw.expand_points(twin)[:2]
    assert a.schedule.build(20) == b.schedule.build(20) and a.key != b.key


def test_overrides_applied_and_validated_like_yaml():
    s = parse_sweep(_spec(overrides={"array.rows": [16], "dram.bytes_per_cycle": [8], "pe.bits_per_cycle": [2]},
                          archs=["stripes"]))
    (v,) = s.archs
    assert v.spec.array.rows == 16 and v.spec.array.cols == 32
    assert v.spec.dram_bytes_per_cycle == 8.0 and v.spec.pe.bits_per_cycle == 2
    assert s.override_fields == ("array.rows", "dram_bytes_per_cycle", "pe.bits_per_cycle")
    # two-stage grid expands early x boundary x late x weight
    s2 = parse_sweep(_spec(schedules=[{"two_stage": {"early_bits": [2, 4, 6], "boundary": [0.2, 0.4],
                                                     "late_bits": [6, 8], "weight_bits": [4, 8]}}]))
    assert len(s2.schedules) == 3 * 2 * 2 * 2


@settings(max_examples=12, deadline=None)
@given(archs=st.lists(st.sampled_from(list_archs()), min_size=1, max_size=3, unique=True),
       rows=st.lists(st.sampled_from([8, 16, 32, 64]), min_size=1, max_size=3, unique=True),
       dram=st.lists(st.sampled_from([8, 16.5, 32, 64]), min_size=1, max_size=2, unique=True),
       early=st.lists(st.integers(1, 7), min_size=1, max_size=3, unique=True),
       bounds=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=1, max_size=3, unique=True),
       steps=st.integers(1, 40))
def test_grid_size_is_the_product(archs, rows, dram, early, bounds, steps):
    s = parse_sweep(_spec(archs=archs, overrides={"array.rows": rows, "dram.bytes_per_cycle": dram}, steps=steps,
                          schedules=["W8A8", {"two_stage": {"early_bits": early, "boundary": bounds}}]))
    pts = sw.expand_points(s)
    assert len(pts) == len(archs) * len(rows) * len(dram) * (1 + len(early) * len(bounds))
    assert len({p.key for p in pts}) == len(pts)
    p = pts[-1]
    assert (p.arch.base, p.arch.spec.array.rows, p.arch.spec.dram_bytes_per_cycle) == (archs[-1], rows[-1], dram[-1])
    assert (p.schedule.early_bits, p.schedule.boundary, p.num_steps) == (early[-1], bounds[-1], steps)


def test_list_override_is_one_json_column(tmp_path):
    spec = _spec(archs=["bitfusion"], overrides={"pe.fusion_widths": [[2, 4, 8], [4, 8]]},
                 schedules=["a2@0-0.5,a8@0.5-1"])
    df = sw.run_sweep(spec, tmp_path, progress=False)
    assert list(df["pe.fusion_widths"]) == ["[2, 4, 8]", "[4, 8]"]
    # 2-bit activations fit a 2-bit fusion width only in the first variant
    assert df["speedup"].iloc[0] > df["speedup"].iloc[1] > 1.0


BAD = [
    ({"overrides": {"array.rowz": [16]}}, "overrides.array.rowz"),
    ({"overrides": {"array.rows": [16, 0]}}, "array.rows: 0 is out of range"),
    ({"overrides": {"array.dataflow": ["xs"]}}, "allowed ws | os | is"),
    ({"overrides": {"pe.bits_per_cycle": [2]}, "archs": ["int8-systolic"]}, "overrides.pe.bits_per_cycle"),
    ({"overrides": {"dram_bytes_per_cycle": [-1]}}, "dram.bytes_per_cycle"),
    ({"overrides": [1, 2]}, "overrides"),
    ({"models": ["nope"]}, "models"),
    ({"archs": ["stripe"]}, "archs"),
    ({"schedules": ["a4@0-0.3"]}, "schedules[0]"),
    ({"schedules": [{"two_stage": {"early_bits": 4, "boundary": 1.5}}]}, "schedules[0].two_stage.boundary"),
    ({"schedules": [{"two_stage": {"early_bits": 40, "boundary": 0.5}}]}, "early_bits"),
    ({"schedules": [{"two_stage": {"boundary": 0.5}}]}, "early_bits: missing"),
    ({"schedules": [{"two_stage": {"early_bits": 4, "boundary": 0.5, "lat_bits": 8}}]}, "lat_bits"),
    ({"baseline": "a4@0-0.5,a8@0.5-1"}, "baseline"),
    ({"steps": 0}, "steps"),
    ({"cfg": "yes"}, "cfg"),
    ({"chunk_size": 0}, "chunk_size"),
    ({"ref_arch": "nope"}, "ref_arch"),
    ({"colour": 1}, "colour: unknown field"),
    ({"overrides": {"array.rows": [16, 16]}}, "overrides.array.rows: duplicate"),
    ({"schedules": ["W8A8", "W8A8"]}, "schedules: W8A8 is listed twice"),
]


@pytest.mark.parametrize("change,field", BAD)
def test_bad_spec_is_one_line_user_error_naming_file_and_field(tmp_path, change, field):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(_spec(**change)))
    with pytest.raises(UserError) as e:
        load_sweep(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and field in msg, msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_sweep(tmp_path / "none.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("models: [a\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_sweep(p)
    with pytest.raises(UserError, match="allowed: local | dask"):
        sw.run_sweep(SPEC, tmp_path, executor="ray")
    with pytest.raises(UserError, match="--executor dask"):
        sw.run_sweep(SPEC, tmp_path, scheduler="tcp://x:1")


# -- results ------------------------------------------------------------------------------------
def test_rows_equal_cost_run_for_the_same_point(clean, tmp_path):
    from earlyq_sim.api import cost_run

    df, out = clean
    assert len(df) == N_POINTS and df["point_key"].is_unique
    assert (out / "results.csv").is_file() and (out / "results.parquet").is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), df)
    # the rows=16 Stripes variant, written as an arch YAML by hand (independent of apply_overrides)
    data = yaml.safe_load((ARCH_DIR / "stripes.yaml").read_text())
    data["array"]["rows"] = 16
    arch16 = tmp_path / "stripes16.yaml"
    arch16.write_text(yaml.safe_dump(data))
    cases = [("stripes", 32, "a4@0-0.3,a6@0.3-0.7,a8@0.7-1", {}, str(ARCH_DIR / "stripes.yaml")),
             ("stripes", 16, None, dict(early_bits=2, boundary=0.25, late_bits=8), str(arch16)),
             ("bitfusion", 32, None, dict(early_bits=4, boundary=0.5, late_bits=8), "bitfusion")]
    for arch, rows, text, kw, path in cases:
        sel = (df["arch"] == arch) & (df["array.rows"] == rows)
        if text:
            sel &= df["schedule"] == f"w8,{text}"
        else:
            sel &= (df["early_bits"] == kw["early_bits"]) & (df["boundary"] == kw["boundary"])
        (row,) = df[sel].to_dict("records")
        r = cost_run("ddpm-cifar10", path, text, num_steps=20, **kw)
        t = r.run.total
        for col in ("latency_ms", "energy_mj", "speedup", "compute_speedup", "speedup_vs_ref", "energy_saving",
                    "baseline_latency_ms", "ref_latency_ms"):
            assert row[col] == pytest.approx(t[col], rel=1e-9), (arch, rows, col)
        for st in r.run.per_stage.itertuples():
            assert row[f"stage{st.stage}_steps"] == st.steps
            assert row[f"stage{st.stage}_speedup"] == pytest.approx(st.speedup, rel=1e-9)


def test_each_arch_and_bits_evaluated_once(clean):
    df, _ = clean
    # per arch variant: act bits {8 (baseline), 4, 6, 2} -> 4 evaluations; 4 variants; + the ref arch once
    assert df.attrs["sweep"]["evaluations"] == 4 * 4 + 1
    w8 = df[df["schedule"] == "W8A8"]
    assert (w8["speedup"] == 1.0).all() and (w8["energy_saving"] == 1.0).all()
    assert not df[["latency_ms", "energy_mj", "speedup"]].isna().any().any()


# -- resume -------------------------------------------------------------------------------------
def _count_rows(monkeypatch):
    seen = []
    real = sw.point_row

    def counting(point, *a, **k):
        seen.append(point.key)
        return real(point, *a, **k)

    monkeypatch.setattr(sw, "point_row", counting)
    return seen


def test_crash_then_resume_equals_clean_run_without_recomputing(clean, tmp_path, monkeypatch):
    df_clean, _ = clean
    real_write = sw.write_part
    written = []

    def crash_after_two(path, df):  # the 3rd part dies mid-run, as a kill would
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(path, df)

    monkeypatch.setattr(sw, "write_part", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(SPEC, tmp_path, progress=False)
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    assert [p.name for p in parts] == sorted(p.name for p in written)  # no temp or half files
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == sorted(
        [p.name for p in parts] + [p.name + ".sha256" for p in parts])  # each part with its checksum
    assert not (tmp_path / "results.parquet").exists() and not (tmp_path / ".lock").exists()
    done = set(pd.concat(pd.read_parquet(p) for p in parts)["point_key"])
    assert len(done) == 2 * SPEC["chunk_size"]

    monkeypatch.setattr(sw, "write_part", real_write)
    seen = _count_rows(monkeypatch)
    (tmp_path / "parts" / ".part-x.parquet.abc.tmp").write_bytes(b"half")  # a killed writer's leftover
    df = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert not done & set(seen) and len(seen) == N_POINTS - len(done)
    assert df.attrs["sweep"]["skipped"] == len(done)
    assert not list((tmp_path / "parts").glob(".*.tmp"))
    pd.testing.assert_frame_equal(df, df_clean)


def test_lost_part_and_merged_file_recomputes_only_that_part(clean, tmp_path, monkeypatch):
    df_clean, _ = clean
    sw.run_sweep(SPEC, tmp_path, progress=False)
    victim = sorted((tmp_path / "parts").glob("part-*.parquet"))[1]
    lost = set(pd.read_parquet(victim)["point_key"])
    victim.unlink()
    (tmp_path / "results.parquet").unlink()
    seen = _count_rows(monkeypatch)
    df = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert set(seen) == lost
    pd.testing.assert_frame_equal(df, df_clean)
    seen.clear()
    df = sw.run_sweep(SPEC, tmp_path, progress=False, resume=False)  # start over: every point again
    assert len(seen) == N_POINTS
    pd.testing.assert_frame_equal(df, df_clean)


# -- executors and CLI --------------------------------------------------------------------------
def test_dask_local_cluster_gives_the_same_table(clean, tmp_path):
    pytest.importorskip("dask.distributed")
    df_clean, _ = clean
    df = sw.run_sweep(SPEC, tmp_path, executor="dask", progress=False)
    pd.testing.assert_frame_equal(df, df_clean)
    assert df.attrs["sweep"]["computed"] == N_POINTS


def test_cli_command(tmp_path):
    from click.testing import CliRunner

    from earlyq_sim.commands.sweep import sweep_command

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_spec(archs=["stripes"], overrides={})))
    res = CliRunner().invoke(sweep_command, [str(spec), "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "6 points (0 already done, 6 computed" in res.output
    res = CliRunner().invoke(sweep_command, [str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, UserError)
    df = pd.read_csv(tmp_path / "o" / "results.csv")
    assert len(df) == 6 and math.isclose(df["speedup"].max(), 2.0, rel_tol=0.5)


def test_dask_local_cluster_listens_on_loopback_only_without_dashboard():
    """Security: the local cluster of --executor dask opened ports on all interfaces and served
    its dashboard; now every listening socket is on 127.0.0.1 and /status is not served."""
    import http.client
    import urllib.error
    import urllib.request

    psutil = pytest.importorskip("psutil")
    pytest.importorskip("dask.distributed")
    proc = psutil.Process()
    conns = getattr(proc, "net_connections", proc.connections)

    def listening():
        return {(c.laddr.ip, c.laddr.port) for c in conns(kind="inet") if c.status == psutil.CONN_LISTEN}

    before = listening()
    client, cluster = sw._dask_client(None)
    try:
        assert client.submit(lambda x: x + 1, 1).result() == 2
        opened = listening() - before
        assert opened and all(ip == "127.0.0.1" for ip, _ in opened), opened
        for _, port in opened:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2)
                served = True
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
                served = False  # 404, or not an HTTP port at all (the comm ports)
            assert not served, f"dashboard served on port {port}"
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("where", ["header", "column data", "checksum missing"])
def test_a_corrupted_part_is_recomputed_not_merged(clean, tmp_path, monkeypatch, where):
    """A part whose bytes changed (its header, its column data) or that lost its checksum is
    dropped with a warning and its points computed again; nothing wrong reaches the table."""
    df_clean, _ = clean
    sw.run_sweep(SPEC, tmp_path, progress=False)
    victim = sorted((tmp_path / "parts").glob("part-*.parquet"))[1]
    lost = set(pd.read_parquet(victim)["point_key"])
    raw = bytearray(victim.read_bytes())
    if where == "header":
        raw[:4] = b"XXXX"
    elif where == "column data":
        i = len(raw) // 2
        raw[i:i + 8] = bytes(8)  # e.g. an energy 1866 -> 1e-179 without any read error
    else:
        victim.with_name(victim.name + ".sha256").unlink()
    victim.write_bytes(bytes(raw))
    seen = _count_rows(monkeypatch)
    with pytest.warns(UserWarning, match="checksum"):
        df = sw.run_sweep(SPEC, tmp_path, progress=False)
    assert set(seen) == lost
    pd.testing.assert_frame_equal(df, df_clean)


def test_a_second_writer_is_refused_and_a_killed_ones_lock_is_taken_over(clean, tmp_path):
    """The lock names a live process (a real one, still running): a second sweep on the folder is
    refused with one line. After a real kill -9 of a sweep mid-run, its stale lock is taken over
    and the sweep resumes to the same table."""
    import os
    import signal
    import subprocess
    import sys
    import time

    df_clean, _ = clean
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(f"{sleeper.pid} {__import__('socket').gethostname()}\n")
        with pytest.raises(UserError, match=rf"another sweep \(pid {sleeper.pid} on .*\) is writing here"):
            sw.run_sweep(SPEC, tmp_path, progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / ".lock").unlink()

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    code = ("import sys, time; from earlyq_sim.workloads.sweeps import runner as sw\n"
            "real = sw.evaluate_chunk\n"
            "def slow(*a, **k):\n    time.sleep(0.5); return real(*a, **k)\n"
            "sw.evaluate_chunk = slow\n"
            f"sw.run_sweep({str(spec)!r}, {str(tmp_path)!r}, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    try:
        for _ in range(600):  # wait for the child to hold the lock and write a part
            if (tmp_path / ".lock").exists() and list((tmp_path / "parts").glob("part-*.parquet.sha256")):
                break
            time.sleep(0.1)
        assert (tmp_path / ".lock").exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert (tmp_path / ".lock").read_text().split()[0] == str(proc.pid)  # left behind by the kill
    df = sw.run_sweep(SPEC, tmp_path, progress=False)
    pd.testing.assert_frame_equal(df, df_clean)
    assert not (tmp_path / ".lock").exists()


def test_equivalent_schedules_are_one_point():
    """W8A8, w8a8 and a8@0-1,w8 became three rows with three keys; now they are one schedule, and
    listing two spellings is refused as a repeat."""
    one = parse_sweep(_spec(schedules=["w8a8"]))
    two = parse_sweep(_spec(schedules=["a8@0-1,w8"]))
    assert [e.text for e in one.schedules] == [e.text for e in two.schedules] == ["W8A8"]
    assert [p.key for p in sw.expand_points(one)] == [p.key for p in sw.expand_points(two)]
    with pytest.raises(UserError, match=r"schedules: W8A8 is listed twice; allowed each schedule once"):
        parse_sweep(_spec(schedules=["W8A8", "a8@0-1,w8"]))


def test_normalise_is_a_sweep_axis_with_area_columns(tmp_path):
    from earlyq_sim.simulator.cost.area import arch_area

    spec = _spec(archs=["stripes"], overrides={}, normalise=["as-specified", "iso-area"], schedules=["W8A4"])
    s = parse_sweep(spec)
    assert [v.normalise for v in s.archs] == ["as-specified", "iso-area"]
    df = sw.run_sweep(spec, tmp_path / "o", progress=False)
    plain, iso = (df[df["normalise"] == m].iloc[0] for m in ("as-specified", "iso-area"))
    assert (plain["pe_rows"], plain["pe_cols"]) == (32, 32) and iso["pe_rows"] * iso["pe_cols"] < 1024
    assert iso["area_mm2"] == pytest.approx(arch_area(s.archs[1].spec).total_mm2)
    assert iso["speedup_vs_ref"] < plain["speedup_vs_ref"]
    with pytest.raises(UserError, match=r"<dict>: normalise: 'iso-power' is unknown; allowed as-specified \| "):
        parse_sweep(_spec(normalise=["iso-power"]))
