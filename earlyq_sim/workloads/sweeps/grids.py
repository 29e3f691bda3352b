"""Lazy axes of a sweep: arch variants and schedule entries built when iterated, not when loaded.

A sweep's grid can hold up to ``MAX_POINTS`` points (more with ``--max-points``); building every
arch variant (``parse_arch`` re-validation, ~0.3 ms each) or every two-stage schedule entry
before costing starts took minutes and held them all in memory. These sequences know their
length and build an item from its index (mixed-radix digits, last axis fastest: the same order
``itertools.product`` gives), so ``len``, indexing and iteration work without a list.

Small axes (at most ``MATERIALISE`` items) are built once when the spec is loaded, so every
variant is validated before anything is costed. A larger arch grid is checked on a "star" around
its first combination (each value of each field, with the other fields at their first value,
for each base and normalisation); a combination that fails only together with other values is
refused when the sweep reaches it, with the same one-line message.
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence

from earlyq_sim.errors import UserError
from earlyq_sim.schedule import PrecisionSchedule
from earlyq_sim.simulator.cost.arch import ArchSpec

MATERIALISE = 4096  # axes up to this size are built (and validated) when the spec is loaded


@dataclass(frozen=True)
class ScheduleEntry:
    """One schedule of the sweep: interval-form text, or one two-stage grid point."""

    text: str = ""  # interval form / shorthand; empty for two-stage entries
    early_bits: int | None = None
    boundary: float | None = None
    late_bits: int | None = None
    weight_bits: int | None = None
    prob_bits: int | None = None

    @property
    def is_two_stage(self) -> bool:
        return not self.text

    def build(self, num_steps: int) -> PrecisionSchedule:
        if self.text:
            return PrecisionSchedule.parse(self.text, num_steps)
        return PrecisionSchedule.two_stage(self.early_bits, self.late_bits, self.boundary, num_steps,
                                           weight_bits=self.weight_bits, prob_bits=self.prob_bits)


@dataclass(frozen=True)
class ArchVariant:
    """A base arch with one combination of overrides applied (validated)."""

    base: str  # the name or path written in the sweep file
    overrides: tuple[tuple[str, object], ...]  # (dotted path, value), in spec order
    spec: ArchSpec  # overrides applied, then resized by ``normalise``
    normalise: str = "as-specified"  # a normalisation name (``simulator/cost/normalise.py``)


def _digits(i: int, radices: Sequence[int]) -> list[int]:
    """Mixed-radix digits of ``i`` (last radix fastest), as ``itertools.product`` orders them."""
    out = []
    for r in reversed(radices):
        i, d = divmod(i, r)
        out.append(d)
    return out[::-1]


def _index(i: int, n: int) -> int:
    if not isinstance(i, int):
        raise TypeError("sweep axes are indexed by integers")
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise IndexError(f"index {i} out of range for {n} items")
    return j


class _LazyAxis(Sequence):
    """A sequence whose items are built from their index; held as a tuple when small."""

    _built: tuple | None = None

    def _materialise(self) -> bool:
        if len(self) <= MATERIALISE:
            self._built = tuple(self._generate())
        return self._built is not None

    @abstractmethod
    def _generate(self) -> Iterator:
        """Every item, in order."""

    @abstractmethod
    def _item(self, i: int):
        """Item ``i`` (0 <= i < len), built from its index."""

    def __iter__(self) -> Iterator:
        return iter(self._built) if self._built is not None else self._generate()

    def __getitem__(self, i: int):
        i = _index(i, len(self))
        return self._built[i] if self._built is not None else self._item(i)


class ArchGrid(_LazyAxis):
    """Every base arch x override combination x normalisation, in that order (built lazily)."""

    def __init__(self, bases: tuple[tuple[str, ArchSpec], ...], fields: tuple[str, ...], grids: tuple[tuple, ...],
                 modes: tuple[str, ...], ref: ArchSpec, src: str):
        self.bases, self.fields, self.grids, self.modes, self.ref, self.src = bases, fields, grids, modes, ref, src
        self._radices = [len(g) for g in grids]
        self._combos = math.prod(self._radices)
        if not self._materialise():
            self._check_star()

    def __len__(self) -> int:
        return len(self.bases) * self._combos * len(self.modes)

    def _written(self, base: int, combo: Sequence[int]):
        from earlyq_sim.workloads.sweeps.spec import apply_overrides

        name, spec = self.bases[base]
        pairs = tuple((f, g[d]) for f, g, d in zip(self.fields, self.grids, combo))
        return name, pairs, (apply_overrides(spec, pairs, self.src) if pairs else spec)

    def _variant(self, name, pairs, written, mode) -> ArchVariant:
        from earlyq_sim.simulator.cost.normalise import normalise

        try:
            return ArchVariant(name, pairs, normalise(written, self.ref, mode)[0], mode)
        except UserError as e:
            raise UserError(f"{self.src}: normalise: {mode} of {name} {dict(pairs)}: {e}") from None

    def _generate(self) -> Iterator[ArchVariant]:
        for b in range(len(self.bases)):
            for combo in itertools.product(*(range(r) for r in self._radices)):
                name, pairs, written = self._written(b, combo)
                for m in self.modes:
                    yield self._variant(name, pairs, written, m)

    def _check_star(self) -> None:
        """Each value of each field (others at their first value), per base and normalisation."""
        for b in range(len(self.bases)):
            combos = {(0,) * len(self.grids)}
            for f, r in enumerate(self._radices):
                combos.update(tuple(v if g == f else 0 for g in range(len(self._radices))) for v in range(r))
            for combo in sorted(combos):
                name, pairs, written = self._written(b, combo)
                for m in self.modes:
                    self._variant(name, pairs, written, m)

    def _item(self, i: int) -> ArchVariant:
        rest, m = divmod(i, len(self.modes))
        b, c = divmod(rest, self._combos)
        return self._variant(*self._written(b, _digits(c, self._radices)), self.modes[m])


@dataclass(frozen=True)
class TwoStageGroup:
    """One ``two_stage:`` item: value lists per field, expanded early x boundary x late x weight."""

    early_bits: tuple[int, ...]
    boundary: tuple[float, ...]
    late_bits: tuple[int, ...]
    weight_bits: tuple[int, ...]
    prob_bits: int | None

    @property
    def axes(self) -> tuple[tuple, ...]:
        return self.early_bits, self.boundary, self.late_bits, self.weight_bits

    def __len__(self) -> int:
        return math.prod(len(a) for a in self.axes)

    def entry(self, values) -> ScheduleEntry:
        e, b, l, w = values
        return ScheduleEntry(early_bits=e, boundary=b, late_bits=l, weight_bits=w, prob_bits=self.prob_bits)

    def __getitem__(self, i: int) -> ScheduleEntry:
        return self.entry([a[d] for a, d in zip(self.axes, _digits(i, [len(a) for a in self.axes]))])

    def __iter__(self) -> Iterator[ScheduleEntry]:
        return (self.entry(v) for v in itertools.product(*self.axes))

    def first_shared(self, other: "TwoStageGroup") -> ScheduleEntry | None:
        """An entry both groups hold (the first in this group's order), or None."""
        if self.prob_bits != other.prob_bits:
            return None
        common = [[v for v in a if v in set(b)] for a, b in zip(self.axes, other.axes)]
        return self.entry([c[0] for c in common]) if all(common) else None

    def first_repeat(self) -> ScheduleEntry | None:
        """An entry this group lists twice (a value repeated within a field), or None."""
        for f, a in enumerate(self.axes):
            dup = next((v for k, v in enumerate(a) if v in a[:k]), None)
            if dup is not None:
                return self.entry([dup if g == f else ax[0] for g, ax in enumerate(self.axes)])
        return None


class ScheduleGrid(_LazyAxis):
    """The sweep's schedule entries in spec order; two-stage groups are expanded lazily."""

    def __init__(self, items: Sequence[ScheduleEntry | TwoStageGroup]):
        self.items = tuple(items)
        self._sizes = [1 if isinstance(it, ScheduleEntry) else len(it) for it in self.items]
        self._materialise()

    def __len__(self) -> int:
        return sum(self._sizes)

    def _generate(self) -> Iterator[ScheduleEntry]:
        for it in self.items:
            if isinstance(it, ScheduleEntry):
                yield it
            else:
                yield from it

    def _item(self, i: int) -> ScheduleEntry:
        for it, size in zip(self.items, self._sizes):
            if i < size:
                return it if isinstance(it, ScheduleEntry) else it[i]
            i -= size
        raise IndexError(i)

    def first_repeat(self) -> ScheduleEntry | None:
        """An entry listed twice (text entries by canonical label; two-stage groups by overlap)."""
        texts = [it for it in self.items if isinstance(it, ScheduleEntry)]
        seen: set = set()
        for t in texts:
            if t in seen:
                return t
            seen.add(t)
        groups = [it for it in self.items if isinstance(it, TwoStageGroup)]
        for k, g in enumerate(groups):
            hit = g.first_repeat() or next((g.first_shared(h) for h in groups[k + 1:] if g.first_shared(h)), None)
            if hit is not None:
                return hit
        return None
