import pytest
from hypothesis import given, strategies as st

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import PrecisionSchedule, StepBits


def test_two_stage_splits_steps():
    s = PrecisionSchedule.two_stage(4, 8, 0.4, num_steps=50, weight_bits=8)
    stages = s.stages()
    assert [(st.step_start, st.step_end) for st in stages] == [(0, 20), (20, 50)]
    assert s.step_bits(0) == StepBits(8, 4, 4)
    assert s.step_bits(19).act == 4 and s.step_bits(20).act == 8
    assert len(s.per_step()) == 50


def test_interval_form_with_weight_and_prob_bits():
    s = PrecisionSchedule.parse("a4@0-0.2,a5@0.2-0.4,a6@0.4-0.6,a7@0.6-0.8,a8@0.8-1,w4,p16", 100)
    assert s.weight_bits == 4 and s.prob_bits == 16
    assert [st.bits.act for st in s.stages()] == [4, 5, 6, 7, 8]
    assert [st.steps for st in s.stages()] == [20] * 5
    assert s.step_bits(99) == StepBits(4, 8, 16)
    assert s.step_bits(0).operand_bits("pa") == (16, 4)


def test_shorthand_uniform():
    s = PrecisionSchedule.parse("W8A8", 10)
    assert s.is_uniform and s.label == "W8A8" and s.distinct_bits() == [StepBits(8, 8, 8)]


@pytest.mark.parametrize("spec,word", [
    ("a4@0-0.3,a8@0.4-1", "gap"),
    ("a4@0-0.5,a8@0.4-1", "overlap"),
    ("a4@0.1-1", "gap"),
    ("a4@0-0.9", "gap"),
    ("a17@0-1", "out of range"),
    ("a0@0-1", "out of range"),
    ("x4", "cannot read"),
    ("w4", "no activation interval"),
])
def test_bad_schedules_are_one_line_errors(spec, word):
    with pytest.raises(UserError) as e:
        PrecisionSchedule.parse(spec, 50)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_two_stage_bad_boundary_and_bits():
    with pytest.raises(UserError, match="--boundary"):
        PrecisionSchedule.two_stage(4, 8, 1.5, 50)
    with pytest.raises(UserError, match="--early-bits"):
        PrecisionSchedule.two_stage(0, 8, 0.5, 50)


def test_round_trip_dict():
    s = PrecisionSchedule.parse("a4@0-0.35,a8@0.35-1,w4", 200)
    assert PrecisionSchedule.from_dict(s.to_dict()) == s


@given(st.lists(st.integers(1, 19), min_size=0, max_size=6, unique=True), st.integers(1, 300),
       st.data())
def test_random_covers_assign_every_step_once(cuts, steps, data):
    edges = [0.0] + sorted(c / 20 for c in cuts) + [1.0]
    bits = [data.draw(st.integers(1, 16)) for _ in edges[:-1]]
    spec = ",".join(f"a{b}@{lo:g}-{hi:g}" for b, lo, hi in zip(bits, edges, edges[1:]))
    s = PrecisionSchedule.parse(spec, steps)
    per = s.per_step()
    assert len(per) == steps
    for i, sb in enumerate(per):
        pos = i / steps
        expect = [b for b, lo, hi in zip(bits, edges, edges[1:])
                  if round(lo * steps) <= i < round(hi * steps)]
        assert len(expect) == 1 and sb.act == expect[0], (pos, expect)


@pytest.mark.parametrize("spec,match", [
    ("a4@0-0.4,a8@0.4-1,p16,p8", r"token 'p8' repeats 'p16'; allowed one p token"),
    ("W8A8,w4", r"token 'w4' repeats 'w8'"),
    ("a8,k8:io,k8:conv_in", r"token 'k8:conv_in' repeats 'k8:io'"),
    ("a8,k8:[", r"layer pattern '\[' has an unbalanced '\['"),
    ("a8,k8:conv_in||conv_out", r"empty layer pattern"),
    ("a8,k8:!conv_in", r"only excludes layers, so it holds none"),
])
def test_schedule_tokens_that_used_to_be_dropped_silently(spec, match):
    with pytest.raises(UserError, match=match):
        PrecisionSchedule.parse(spec, 10)


@pytest.mark.parametrize("keep,match", [("|", "empty layer pattern"), ("[", "unbalanced"),
                                        ("!conv_in", "holds none")])
def test_keep_option_patterns_are_checked(keep, match):
    from earlyq_sim.api import make_schedule
    with pytest.raises(UserError, match=match):
        make_schedule("a8", 10, keep=keep)


def test_keep_patterns_matching_no_layer_are_refused():
    s = PrecisionSchedule.parse("a8,k8:conv_in|cnv_out", 10)
    s.check_keep_matches(["conv_in", "cnv_out"])  # both patterns match a layer here
    with pytest.raises(UserError, match=r"keep pattern 'cnv_out' matches no layer of the model"):
        s.check_keep_matches(["conv_in", "conv_out", "mid"])
