"""Schedule search logic (Algorithm 1) and the resumable quality bench's bookkeeping."""

import pytest

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import PrecisionSchedule
from earlyq_sim.workloads.quality.schedule_search import bits_to_spec, merge, search_schedule


def synthetic_fd(sensitivity):
    """FD model: each interval adds sensitivity[i] * (8 - bits)^2; baseline (all 8) = 10."""
    calls = []

    def fd(spec):
        calls.append(spec)
        sch = PrecisionSchedule.parse(spec, len(sensitivity))
        return 10.0 + sum(s * (8 - b.act) ** 2 for s, b in zip(sensitivity, sch.per_step()))
    return fd, calls


def test_merge_and_spec():
    assert merge([4, 4, 6, 8, 8], 0.2) == [(0.0, 0.4, 4), (0.4, 0.6, 6), (0.6, 1.0, 8)]
    s = bits_to_spec([4, 4, 6, 8, 8], 0.2, 8, "k8:io")
    assert s == "a4@0-0.4,a6@0.4-0.6,a8@0.6-1,w8,k8:io"
    PrecisionSchedule.parse(s, 20)       # valid schedule text


def test_search_lowers_early_intervals_and_stops_at_first_failure():
    # early intervals insensitive, later ones sensitive: 0.01, 0.01, 0.05, 0.2, 1, 1, ...
    sens = [0.01, 0.01, 0.05, 0.2] + [1.0] * 6
    fd, calls = synthetic_fd(sens)
    res = search_schedule(fd, 10.0, threshold=1.0, grid=0.1)
    # interval 0: 4 bits costs 0.16; interval 1: +0.16; interval 2 at 4 bits would add 0.8 -> total 1.12 > 1,
    # at 5 bits 0.45 -> 0.77 ok; interval 3: 4 bits +3.2, 5 +1.8, 6 +0.8 -> 1.57 > 1, 7 +0.2 -> 0.97 ok;
    # interval 4: 7 bits adds 1 -> fails -> stop
    assert res.bits == (4, 4, 5, 7, 8, 8, 8, 8, 8, 8)
    assert res.final_fd == pytest.approx(10.97)
    assert res.stages() == [(0.0, 0.2, 4), (0.2, 0.3, 5), (0.3, 0.4, 7), (0.4, 1.0, 8)]
    assert [t.interval for t in res.trials][-4:] == [4, 4, 4, 4] and not res.trials[-1].accepted
    assert len(calls) == len(res.trials) == 1 + 1 + 2 + 4 + 4
    # without stopping it goes on through the remaining intervals (none can be lowered)
    res2 = search_schedule(synthetic_fd(sens)[0], 10.0, threshold=1.0, grid=0.1, stop_at_fail=False)
    assert res2.bits == res.bits and len(res2.trials) == 1 + 1 + 2 + 4 + 4 * 6
    # monotone: each interval starts at the previous one's bits -> same answer here, fewer trials
    res3 = search_schedule(synthetic_fd(sens)[0], 10.0, threshold=1.0, grid=0.1, monotone=True)
    assert res3.bits == res.bits and len(res3.trials) == 1 + 1 + 2 + 3 + 1


@pytest.mark.parametrize("kw", [dict(grid=0.3), dict(min_bits=8), dict(threshold=-1), dict(max_bits=17)])
def test_search_rejects_bad_settings(kw):
    with pytest.raises(UserError):
        search_schedule(lambda s: 0.0, 0.0, **{"threshold": 1.0, **kw})


def test_bench_rows_resume_and_noise_probe(tmp_path, one_thread):
    from earlyq_sim.workloads.quality.experiments import QualityBench, RunSpec, summarize
    csv = tmp_path / "t.csv"
    kw = dict(n=4, steps=2, batch_size=4, calib_n=4, calib_steps=2, progress=False)
    b = QualityBench(csv, **kw)
    fp = b.run(RunSpec("full precision"), 0)
    q = b.run(RunSpec("a4 early", "a4@0-0.5,a8@0.5-1,k8:io"), 0)
    noisy = b.run(RunSpec("noise", noise_rel=0.5, noise_interval=(0.0, 0.5)), 0)
    clean = b.run(RunSpec("noise 0", noise_rel=1e-12, noise_interval=(0.5, 1.0)), 0)
    assert q["psnr_db_mean"] < 99 and noisy["psnr_db_mean"] < 60 and clean["psnr_db_mean"] > 60   # tiny noise ~ no change
    assert noisy["spec"] == "fp32+noise0.5@0-0.5"
    # a new bench on the same CSV reads the cells instead of sampling again
    b2 = QualityBench(csv, **kw)
    b2.images = lambda *a: (_ for _ in ()).throw(AssertionError("resampled a finished cell"))
    assert b2.run(RunSpec("a4 early", "a4@0-0.5,a8@0.5-1,k8:io"), 0)["fd"] == pytest.approx(q["fd"])
    assert b2.run(RunSpec("full precision"), 0)["fd"] == pytest.approx(fp["fd"])
    s = summarize(b2.rows)
    assert list(s["label"]) == ["full precision", "a4 early", "noise", "noise 0"] and (s["seeds"] == 1).all()
    with pytest.raises(UserError, match="holds no step"):
        b.run(RunSpec("bad", noise_rel=0.1, noise_interval=(0.9, 0.95)), 0)


def test_search_cli_end_to_end(tmp_path, run_cli, one_thread):
    import json
    out = tmp_path / "s"
    args = ["search", "--threshold", "1000", "--grid", "0.5", "--min-bits", "7", "--steps", "2", "--n", "4",
            "--seeds", "0", "--calib-n", "4", "--arch", "stripes", "--arch", "int8-systolic", "--out", str(out)]
    code, text, err = run_cli(args)
    assert code == 0, err
    res = json.loads((out / "result.json").read_text())
    # a huge threshold accepts the lowest bits tried on every interval
    assert res["bits"] == [7, 7] and res["spec"] == "a7@0-1,w8"
    assert "schedule found: a7@0-1,w8" in text and "stripes" in text
    sp = {r["arch"]: r["speedup"] for r in res["speedup"]}
    assert sp["stripes"] > 1.0 and sp["int8-systolic"] == pytest.approx(1.0, abs=0.05)
    code4, _, err4 = run_cli(["search", "--threshold", "1", "--prob-bits", "17", "--out", str(out)])
    assert code4 == 2 and "--prob-bits" in err4 and "1<=x<=16" in err4
    code3, _, err3 = run_cli(["search", "--threshold", "1", "--grid", "0.3", "--out", str(out)])
    assert code3 == 2 and "grid" in err3 and "Traceback" not in err3
