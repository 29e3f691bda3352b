"""The precision schedule: bits per denoising step and operand kind.

This is the single source of truth for "which bits when"; the cost lane and the quality lane
both read it and neither re-derives it.

Positions are fractions of the reverse trajectory: 0 is the first (noisiest) reverse step and
1 the end. Step ``i`` of ``T`` sits at position ``i / T`` and belongs to the interval
``[start, end)`` with ``round(start * T) <= i < round(end * T)``.

Operand kinds (see ``simulator/cost/optable.py``):

* ``wa``: weight x activation (conv, linear); bits ``(act, weight)``.
* ``aa``: activation x activation (attention Q K^T); bits ``(act, act)``.
* ``pa``: attention probability x activation (attention P V); bits ``(prob, act)``.

``prob_bits=None`` means attention probabilities use the step's activation bits.

Per-layer hold (``keep``): layers whose name matches one of the glob patterns run at
``keep_bits`` weights and activations in every step, whatever the step's bits, as PTQ papers
do for the input and output convs (Q-Diffusion keeps them at 8 bits). Names are module paths
(``conv_in``, ``time_embedding.linear_1``, ``down_blocks.0.resnets.0.conv1``); the cost lane
matches an op's ``module`` column, the quality lane the quantized module's name. Alias ``io``
means ``conv_in`` and ``conv_out``; ``!pattern`` excludes (``*|!*conv_shortcut``: every layer
but the shortcut convs is held, i.e. only those run at the schedule's bits).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from earlyq_sim.errors import UserError

MIN_BITS = 1
MAX_BITS = 16
_EPS = 1e-9
KEEP_ALIASES = {"io": ("conv_in", "conv_out")}


def check_bits(value: int, what: str, lo: int = MIN_BITS, hi: int = MAX_BITS) -> int:
    """Return ``value`` as an int if it lies in lo..hi (default 1..16), else a one-line UserError."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}: {value!r} is not an integer; allowed {lo}..{hi}") from None
    if isinstance(value, bool) or ivalue != value or not lo <= ivalue <= hi:
        raise UserError(f"{what}: {value!r} is out of range; allowed {lo}..{hi}")
    return ivalue


@dataclass(frozen=True)
class StepBits:
    """Bits used in one denoising step, per operand type."""

    weight: int
    act: int
    prob: int

    def operand_bits(self, kind: str) -> tuple[int, int]:
        """(first operand bits, second operand bits) for an operand kind ``wa``/``aa``/``pa``.

        The first operand is the streamed activation-like one; for ``wa`` the second is the weight.
        """
        if kind == "wa":
            return self.act, self.weight
        if kind == "aa":
            return self.act, self.act
        if kind == "pa":
            return self.prob, self.act
        raise ValueError(f"unknown operand kind {kind!r}; allowed wa, aa, pa")

    @property
    def label(self) -> str:
        base = f"W{self.weight}A{self.act}"
        return base if self.prob == self.act else f"{base}P{self.prob}"


@dataclass(frozen=True)
class Interval:
    """Activation bits over a fraction ``[start, end)`` of the reverse trajectory."""

    start: float
    end: float
    act_bits: int


@dataclass(frozen=True)
class Stage:
    """An interval resolved to concrete step indices ``[step_start, step_end)``."""

    index: int
    start: float
    end: float
    step_start: int
    step_end: int
    bits: StepBits

    @property
    def steps(self) -> int:
        return self.step_end - self.step_start


@dataclass(frozen=True)
class PrecisionSchedule:
    """Bits per denoising step: piecewise-constant activation bits, fixed weight bits."""

    num_steps: int
    intervals: tuple[Interval, ...]
    weight_bits: int = 8
    prob_bits: int | None = None
    name: str = field(default="", compare=False)
    keep: tuple[str, ...] = ()      # glob patterns of layers held at keep_bits (W and A)
    keep_bits: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise UserError(f"schedule: number of steps {self.num_steps!r} must be a positive integer")
        check_bits(self.weight_bits, "schedule: weight bits")
        check_bits(self.keep_bits, "schedule: keep bits")
        object.__setattr__(self, "keep", expand_keep(self.keep))
        if self.prob_bits is not None:
            check_bits(self.prob_bits, "schedule: attention-probability bits")
        _check_cover(self.intervals)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def uniform(cls, weight_bits: int, act_bits: int, num_steps: int,
                prob_bits: int | None = None) -> "PrecisionSchedule":
        check_bits(act_bits, "schedule: activation bits")
        return cls(num_steps, (Interval(0.0, 1.0, int(act_bits)),), int(weight_bits), prob_bits)

    @classmethod
    def two_stage(cls, early_bits: int, late_bits: int, boundary: float, num_steps: int,
                  weight_bits: int = 8, prob_bits: int | None = None) -> "PrecisionSchedule":
        """Activations at ``early_bits`` for positions ``[0, boundary)``, ``late_bits`` after."""
        check_bits(early_bits, "--early-bits")
        check_bits(late_bits, "--late-bits")
        if not 0.0 <= float(boundary) <= 1.0:
            raise UserError(f"--boundary: {boundary!r} is out of range; allowed 0..1")
        b = float(boundary)
        parts = [Interval(0.0, b, int(early_bits)), Interval(b, 1.0, int(late_bits))]
        parts = tuple(p for p in parts if p.end - p.start > _EPS)
        return cls(num_steps, parts, int(weight_bits), prob_bits)

    @classmethod
    def parse(cls, spec: str, num_steps: int, weight_bits: int = 8,
              prob_bits: int | None = None) -> "PrecisionSchedule":
        """Parse the interval form, e.g. ``a4@0-0.2,a6@0.2-0.6,a8@0.6-1,w4,p16``.

        Also accepts the uniform shorthand ``W8A8`` / ``W4A8P16`` and ``a8`` (whole range).
        """
        text = spec.strip()
        head, _, rest = text.partition(",")
        m = re.fullmatch(r"[wW](\d+)[aA](\d+)(?:[pP](\d+))?", head.strip())
        if m:
            p = int(m.group(3)) if m.group(3) else prob_bits
            act = check_bits(int(m.group(2)), f"schedule {spec!r}: activation bits")
            more = f"w{m.group(1)},a{act}" + (f",p{p}" if p is not None else "") + (f",{rest}" if rest else "")
            return cls.parse(more, num_steps, weight_bits, prob_bits)
        intervals: list[Interval] = []
        keep: tuple[str, ...] = ()
        keep_bits = 8
        given: dict[str, str] = {}  # w / p / k token -> the token, to refuse a second one
        for raw in text.split(","):
            tok = raw.strip()
            if not tok:
                continue
            m = re.fullmatch(r"[aA](\d+)(?:@([0-9.]+)-([0-9.]+))?", tok)
            if m:
                bits = check_bits(int(m.group(1)), f"schedule {spec!r}: token {tok!r} activation bits")
                if m.group(2) is None:
                    start, end = 0.0, 1.0
                else:
                    try:
                        start, end = float(m.group(2)), float(m.group(3))
                    except ValueError:
                        raise UserError(f"schedule {spec!r}: token {tok!r} has a malformed interval; "
                                        "write aBITS@START-END with 0 <= START < END <= 1") from None
                if not (0.0 <= start < end <= 1.0 + _EPS):
                    raise UserError(f"schedule {spec!r}: interval {tok!r} must satisfy 0 <= start < end <= 1")
                intervals.append(Interval(start, min(end, 1.0), bits))
                continue
            m = re.fullmatch(r"[kK](\d+):(.+)", tok) or re.fullmatch(r"([wWpP])(\d+)", tok)
            if m:
                kind = tok[0].lower()
                if kind in given:  # the last one would win without a word
                    raise UserError(f"schedule {spec!r}: token {tok!r} repeats {given[kind]!r}; allowed one "
                                    f"{kind} token per schedule")
                given[kind] = tok
            m = re.fullmatch(r"[kK](\d+):(.+)", tok)
            if m:
                keep_bits = check_bits(int(m.group(1)), f"schedule {spec!r}: token {tok!r} keep bits")
                keep = keep + check_keep_patterns(m.group(2).split("|"), f"schedule {spec!r}: token {tok!r}")
                continue
            m = re.fullmatch(r"([wWpP])(\d+)", tok)
            if m:
                bits = check_bits(int(m.group(2)), f"schedule {spec!r}: token {tok!r} bits")
                if m.group(1) in "wW":
                    weight_bits = bits
                else:
                    prob_bits = bits
                continue
            raise UserError(f"schedule {spec!r}: cannot read token {tok!r}; allowed aBITS@START-END, "
                            "aBITS, wBITS, pBITS, kBITS:LAYER|LAYER or the shorthand W8A8")
        if not intervals:
            raise UserError(f"schedule {spec!r}: no activation interval (e.g. a4@0-0.4,a8@0.4-1)")
        intervals.sort(key=lambda iv: iv.start)
        return cls(num_steps, tuple(intervals), weight_bits, prob_bits, keep=keep, keep_bits=keep_bits)

    # -- queries --------------------------------------------------------------------------
    def with_steps(self, num_steps: int) -> "PrecisionSchedule":
        return PrecisionSchedule(num_steps, self.intervals, self.weight_bits, self.prob_bits, self.name,
                                 self.keep, self.keep_bits)

    def with_keep(self, keep, keep_bits: int = 8) -> "PrecisionSchedule":
        """The same schedule with layers matching ``keep`` held at ``keep_bits``."""
        return PrecisionSchedule(self.num_steps, self.intervals, self.weight_bits, self.prob_bits, self.name,
                                 tuple(keep), keep_bits)

    def keeps(self, layer: str) -> bool:
        """Is ``layer`` (a module path) held at ``keep_bits``? It must match a pattern and no
        ``!pattern`` (``*|!conv_in``: everything but conv_in)."""
        pos = any(fnmatch.fnmatchcase(layer, p) for p in self.keep if not p.startswith("!"))
        return pos and not any(fnmatch.fnmatchcase(layer, p[1:]) for p in self.keep if p.startswith("!"))

    def check_keep_matches(self, layers, model: str = "the model") -> None:
        """Refuse keep patterns that match none of ``layers`` (module paths): a typo would hold
        nothing and change nothing without a word."""
        names = list(layers)
        dead = [p for p in self.keep if not any(fnmatch.fnmatchcase(n, p.lstrip("!")) for n in names)]
        if dead:
            raise UserError(f"schedule {self.label!r}: keep pattern{'s' if len(dead) > 1 else ''} "
                            f"{', '.join(repr(d) for d in dead)} match{'' if len(dead) > 1 else 'es'} no layer of "
                            f"{model}; allowed glob patterns on its module paths, e.g. "
                            f"{', '.join(repr(n) for n in names[:3])}")

    @property
    def held_bits(self) -> StepBits:
        """Bits of a held layer, in every step (probabilities: ``prob_bits`` or ``keep_bits``)."""
        prob = self.prob_bits if self.prob_bits is not None else self.keep_bits
        return StepBits(self.keep_bits, self.keep_bits, prob)

    def layer_bits(self, bits: StepBits, layer: str) -> StepBits:
        """Bits of ``layer`` in a step whose schedule bits are ``bits``."""
        return self.held_bits if self.keeps(layer) else bits

    def bits_for_act(self, act_bits: int) -> StepBits:
        prob = self.prob_bits if self.prob_bits is not None else act_bits
        return StepBits(self.weight_bits, act_bits, prob)

    def stages(self) -> list[Stage]:
        """Intervals resolved to step ranges; a stage may hold zero steps when T is small."""
        out = []
        for i, iv in enumerate(self.intervals):
            lo = int(round(iv.start * self.num_steps))
            hi = int(round(iv.end * self.num_steps))
            out.append(Stage(i, iv.start, iv.end, lo, hi, self.bits_for_act(iv.act_bits)))
        return out

    def check_stages(self) -> "PrecisionSchedule":
        """Refuse an interval that rounds to no step at ``num_steps`` (e.g. a4@0-0.1 at 4 steps:
        round(0.4) = 0): its bits would never run and the run would silently be a different
        schedule. Construction allows it (a schedule can be re-stepped); a run calls this."""
        for st in self.stages():
            if st.steps == 0:
                iv = self.intervals[st.index]
                raise UserError(
                    f"schedule {self.label!r}: interval a{iv.act_bits}@{iv.start:g}-{iv.end:g} holds no step of "
                    f"{self.num_steps} (steps round({iv.start:g}*{self.num_steps})={st.step_start} to "
                    f"round({iv.end:g}*{self.num_steps})={st.step_end}); allowed intervals of at least one step: "
                    "widen it or use more --steps")
        return self

    def per_step(self) -> list[StepBits]:
        """StepBits for each step 0..T-1 (0 = first, noisiest reverse step)."""
        bits: list[StepBits] = []
        for st in self.stages():
            bits.extend([st.bits] * st.steps)
        assert len(bits) == self.num_steps
        return bits

    def step_bits(self, step: int) -> StepBits:
        if not 0 <= step < self.num_steps:
            raise IndexError(f"step {step} outside 0..{self.num_steps - 1}")
        for st in self.stages():
            if st.step_start <= step < st.step_end:
                return st.bits
        raise AssertionError("intervals cover all steps")  # guaranteed by _check_cover

    def distinct_bits(self) -> list[StepBits]:
        """The distinct StepBits used, in order of first use (cost is evaluated once each)."""
        seen: dict[StepBits, None] = {}
        for st in self.stages():
            if st.steps:
                seen.setdefault(st.bits, None)
        return list(seen)

    @property
    def is_uniform(self) -> bool:
        return len({iv.act_bits for iv in self.intervals}) == 1

    @property
    def label(self) -> str:
        """Compact label, e.g. ``W8A8`` or ``W8 a4@0-0.4,a8@0.4-1``."""
        if self.name:
            return self.name
        ktxt = f",k{self.keep_bits}:{'|'.join(self.keep)}" if self.keep else ""
        if self.is_uniform:
            return self.bits_for_act(self.intervals[0].act_bits).label + ktxt
        parts = ",".join(f"a{iv.act_bits}@{iv.start:g}-{iv.end:g}" for iv in self.intervals)
        ptxt = f",p{self.prob_bits}" if self.prob_bits is not None else ""
        return f"w{self.weight_bits},{parts}{ptxt}{ktxt}"

    def to_dict(self) -> dict:
        return {
            "num_steps": self.num_steps,
            "weight_bits": self.weight_bits,
            "prob_bits": self.prob_bits,
            "intervals": [{"start": iv.start, "end": iv.end, "act_bits": iv.act_bits}
                          for iv in self.intervals],
            "keep": list(self.keep),
            "keep_bits": self.keep_bits,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PrecisionSchedule":
        ivs = tuple(Interval(float(x["start"]), float(x["end"]), int(x["act_bits"])) for x in d["intervals"])
        return cls(int(d["num_steps"]), ivs, int(d["weight_bits"]), d.get("prob_bits"),
                   keep=tuple(d.get("keep", ())), keep_bits=int(d.get("keep_bits", 8)))


def check_keep_patterns(patterns, where: str) -> tuple[str, ...]:
    """Layer patterns that can hold something: no empty pattern (``a||b``), no bare ``!``, no
    unbalanced ``[`` of a glob class, not only exclusions (``!conv_in`` alone holds nothing)."""
    out = tuple(str(p).strip() for p in patterns)
    for p in out:
        body = p[1:] if p.startswith("!") else p
        if not body:
            raise UserError(f"{where}: empty layer pattern in {'|'.join(out)!r}; allowed glob patterns on module "
                            "paths joined by '|', e.g. conv_in|conv_out or io")
        if body.count("[") != body.count("]"):
            raise UserError(f"{where}: layer pattern {p!r} has an unbalanced '['; allowed glob patterns "
                            "(* ? [abc]) on module paths")
    if out and all(p.startswith("!") for p in out):
        raise UserError(f"{where}: {'|'.join(out)!r} only excludes layers, so it holds none; allowed e.g. "
                        "'*|!conv_in' (everything but conv_in)")
    return out


def expand_keep(keep) -> tuple[str, ...]:
    """Patterns with aliases (``io``) expanded, duplicates dropped, order kept."""
    if isinstance(keep, str):
        if keep.strip():  # a '|' or ',' alone would otherwise hold nothing without a word
            keep = check_keep_patterns(keep.replace("|", ",").split(","), f"--keep {keep!r}")
        else:
            keep = ()
    out: list[str] = []
    for p in keep:
        p = str(p).strip()
        if not p:
            raise UserError("schedule: empty layer pattern in keep; write e.g. k8:conv_in|conv_out or k8:io")
        for q in KEEP_ALIASES.get(p, (p,)):
            if q not in out:
                out.append(q)
    return tuple(out)


def _check_cover(intervals: tuple[Interval, ...]) -> None:
    """Intervals must tile [0, 1] exactly once: no gap, no overlap."""
    if not intervals:
        raise UserError("schedule: no intervals; they must cover 0..1 exactly once")
    ivs = sorted(intervals, key=lambda iv: iv.start)
    for iv in ivs:
        check_bits(iv.act_bits, f"schedule: interval {iv.start:g}-{iv.end:g} activation bits")
    if abs(ivs[0].start) > _EPS:
        raise UserError(f"schedule: gap at 0-{ivs[0].start:g}; intervals must cover 0..1 exactly once")
    for prev, nxt in zip(ivs, ivs[1:]):
        if nxt.start > prev.end + _EPS:
            raise UserError(f"schedule: gap at {prev.end:g}-{nxt.start:g}; "
                            "intervals must cover 0..1 exactly once")
        if nxt.start < prev.end - _EPS:
            raise UserError(f"schedule: overlap at {nxt.start:g}-{prev.end:g}; "
                            "intervals must cover 0..1 exactly once")
    if abs(ivs[-1].end - 1.0) > _EPS:
        raise UserError(f"schedule: gap at {ivs[-1].end:g}-1; intervals must cover 0..1 exactly once")
