"""Lazy sweep expansion (issue 13): axes built from their index, keys as before, a large grid starts
costing at once, and a bad value deep in a large grid is still refused when the spec is loaded."""

import dataclasses
import hashlib
import itertools
import json
import os
import time

import pytest

from earlyq_sim.errors import UserError
from earlyq_sim.simulator.cost.arch_dict import arch_to_dict
from earlyq_sim.workloads.sweeps import runner as sw
from earlyq_sim.workloads.sweeps.grids import MATERIALISE
from earlyq_sim.workloads.sweeps.spec import parse_sweep

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BIG_ARCHS = {"models": ["ddpm-cifar10"], "archs": ["stripes", "loom"],
             "overrides": {"array.rows": list(range(1, 71)), "array.cols": list(range(1, 41))},
             "normalise": ["as-specified", "iso-throughput"], "schedules": ["W8A8"], "steps": 10}
BIG_SCHEDULES = {"models": ["ddpm-cifar10"], "archs": ["stripes"], "steps": 10, "schedules": [
    "W8A8", {"two_stage": {"early_bits": list(range(1, 9)), "boundary": [i / 400 for i in range(401)],
                           "late_bits": [6, 8], "weight_bits": [4, 8]}},
    {"two_stage": {"early_bits": [3], "boundary": [0.33], "prob_bits": 16}}]}


def _old_key(spec, p):
    """The point key as the eager runner computed it (one json.dumps of the whole ident)."""
    from earlyq_sim.simulator.cost.tracer import TRACER_VERSION

    v, e = p.arch, p.schedule
    ident = {"sweep": sw.SWEEP_VERSION, "tracer": TRACER_VERSION, "model": p.model, "arch_base": v.base,
             "overrides": [[f, x] for f, x in v.overrides], "arch": arch_to_dict(v.spec),
             **({} if v.normalise == "as-specified" else {"normalise": v.normalise}),
             "ref": arch_to_dict(spec.ref_arch), "schedule": e.build(p.num_steps).to_dict(),
             "entry": dataclasses.asdict(e), "baseline": spec.baseline, "batch": spec.batch, "cfg": spec.cfg}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:24]


@pytest.mark.parametrize("data", [BIG_ARCHS, BIG_SCHEDULES], ids=["arch axis", "schedule axis"])
def test_lazy_axes_index_like_their_iteration_in_product_order(data):
    s = parse_sweep(data)
    axis = s.archs if data is BIG_ARCHS else s.schedules
    assert len(axis) > MATERIALISE and axis._built is None  # not built when loaded
    n = len(axis)
    assert n == (2 * 70 * 40 * 2 if data is BIG_ARCHS else 1 + 8 * 401 * 2 * 2 + 1)
    probe = sorted({0, 1, 39, 40, 2799, 2800, n // 2, n - 2, n - 1})
    by_iter = {i: x for i, x in enumerate(axis) if i in probe}
    for i in probe:
        assert axis[i] == by_iter[i] and axis[i - n] == by_iter[i]
    if data is BIG_ARCHS:  # base, then rows, then cols, then normalisation (fastest)
        v = axis[(1 * 70 * 40 + 5 * 40 + 7) * 2 + 1]
        assert (v.base, dict(v.overrides), v.normalise) == ("loom", {"array.rows": 6, "array.cols": 8},
                                                            "iso-throughput")
    else:
        e = axis[1 + ((2 * 401 + 40) * 2 + 1) * 2 + 0]  # early 3, boundary 0.1, late 8, weight 4
        assert (e.early_bits, e.boundary, e.late_bits, e.weight_bits) == (3, 0.1, 8, 4)
        assert axis[-1].prob_bits == 16
    with pytest.raises(IndexError):
        axis[n]


def test_point_keys_equal_the_eager_formula():
    for data in (BIG_ARCHS, BIG_SCHEDULES):
        s = parse_sweep(data)
        pts = list(itertools.islice(sw.iter_points(s), 0, 3000, 97))
        assert all(p.key == _old_key(s, p) for p in pts)


def test_a_large_grid_starts_costing_at_once(tmp_path, monkeypatch):
    """1,000,000 points (the default limit): the eager runner built every arch variant and key
    before the first chunk (minutes); now the first parts are written within seconds."""
    data = {"models": ["ddpm-cifar10"], "archs": ["stripes"], "steps": 10, "chunk_size": 8, "schedules": ["W8A8"],
            "overrides": {"array.rows": list(range(1, 101)), "array.cols": list(range(1, 101)),
                          "clock_mhz": list(range(100, 200))}}
    t0 = time.perf_counter()
    s = parse_sweep(data)
    assert s.num_points == 1_000_000
    real, written = sw.write_part, []

    def stop_after_two(path, df):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real(path, df)

    monkeypatch.setattr(sw, "write_part", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(s, tmp_path, progress=False)
    assert len(written) == 2 and time.perf_counter() - t0 < 30


def test_a_bad_value_deep_in_a_large_grid_is_refused_when_loaded():
    data = dict(BIG_ARCHS, overrides={"array.rows": list(range(1, 71)), "array.cols": list(range(1, 40)) + [0]})
    with pytest.raises(UserError, match=r"<dict>: overrides\.array\.cols: 0 is out of range"):
        parse_sweep(data)


def test_overlapping_two_stage_groups_are_one_schedule_listed_twice():
    data = dict(BIG_SCHEDULES, schedules=[{"two_stage": {"early_bits": [2, 4], "boundary": [0.2, 0.4]}},
                                          {"two_stage": {"early_bits": [4, 6], "boundary": 0.4}}])
    with pytest.raises(UserError, match=r"schedules: ScheduleEntry\(text='', early_bits=4, boundary=0\.4, .*listed twice"):
        parse_sweep(data)
    data = dict(BIG_SCHEDULES, schedules=[{"two_stage": {"early_bits": [2, 4, 2], "boundary": 0.2}}])
    with pytest.raises(UserError, match=r"early_bits=2, boundary=0\.2, .*listed twice"):
        parse_sweep(data)
    ok = dict(BIG_SCHEDULES, schedules=[{"two_stage": {"early_bits": [2, 4], "boundary": 0.4}},
                                        {"two_stage": {"early_bits": [2, 4], "boundary": 0.4, "prob_bits": 16}}])
    assert len(parse_sweep(ok).schedules) == 4
