"""A sweep's points, generated lazily in spec order, with stable keys, and cut into chunks.

Order: models, then arch variants (base x override combination x normalisation), then schedule
entries. Points come from a generator, so a grid of a million points starts costing at once and
holds only the chunk being costed (plus the list of keys, ~100 bytes a point, for the merge).

``point_key`` hashes everything that decides a point's result. The JSON it hashes is assembled
from pieces serialised once per arch variant and once per (schedule entry, steps) instead of
serialising the whole arch dict per point (~300 us a point before, a few us now); the text, and so
the key, is byte-for-byte what ``json.dumps(ident, sort_keys=True, default=str)`` gives.
Keys are unique by construction (models, base archs, override values, normalisations and
schedules are each listed once; equivalent spellings of a schedule are one entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Iterator

from earlyq_sim.simulator.cost.arch_dict import arch_to_dict
from earlyq_sim.workloads.sweeps.spec import ArchVariant, ScheduleEntry, SweepSpec

#: Bump when the row layout or the cost aggregation changes, so old parts are not reused.
SWEEP_VERSION = "2"  # 2: the mapper (arch mapping/memory sections), DRAM columns


@dataclass(frozen=True)
class SweepPoint:
    """One design point; ``key`` is a stable hash of everything that decides its result."""

    index: int
    model: str
    arch: ArchVariant
    schedule: ScheduleEntry
    num_steps: int
    key: str


def steps_for(spec: SweepSpec, model: str) -> int:
    """The sweep's step count for ``model`` (its default when the spec says null)."""
    from earlyq_sim.api import default_num_steps

    return spec.steps or default_num_steps(model)


def _frag(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@lru_cache(maxsize=65536)
def _entry_frags(entry: ScheduleEntry, steps: int) -> tuple[str, str]:
    """(schedule, entry) JSON pieces of a schedule entry at ``steps``."""
    return _frag(entry.build(steps).to_dict()), _frag(dataclasses.asdict(entry))


class _Keys:
    """Point keys of one spec; the arch pieces are serialised once per variant."""

    def __init__(self, spec: SweepSpec):
        from earlyq_sim.simulator.cost.tracer import TRACER_VERSION

        self.const = {"sweep": _frag(SWEEP_VERSION), "tracer": _frag(TRACER_VERSION),
                      "ref": _frag(arch_to_dict(spec.ref_arch)), "baseline": _frag(spec.baseline),
                      "batch": _frag(spec.batch), "cfg": _frag(spec.cfg)}
        self._variant: ArchVariant | None = None
        self._vfrags: dict[str, str] = {}

    def _variant_frags(self, variant: ArchVariant) -> dict[str, str]:
        if variant is not self._variant:
            self._variant = variant
            self._vfrags = {"arch_base": _frag(variant.base), "arch": _frag(arch_to_dict(variant.spec)),
                            "overrides": _frag([[p, v] for p, v in variant.overrides])}
            if variant.normalise != "as-specified":
                self._vfrags["normalise"] = _frag(variant.normalise)
        return self._vfrags

    def __call__(self, model: str, variant: ArchVariant, entry: ScheduleEntry, steps: int) -> str:
        sched, ent = _entry_frags(entry, steps)
        parts = {**self.const, **self._variant_frags(variant), "model": _frag(model), "schedule": sched,
                 "entry": ent}
        text = "{" + ", ".join(f"{json.dumps(k)}: {parts[k]}" for k in sorted(parts)) + "}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def point_key(spec: SweepSpec, model: str, variant: ArchVariant, entry: ScheduleEntry, steps: int) -> str:
    """Hash of the point's parameters: the resolved arch and ref specs (not their file names), the
    schedule at its step count, baseline, batch, cfg, tracer and sweep versions."""
    return _Keys(spec)(model, variant, entry, steps)


def iter_points(spec: SweepSpec) -> Iterator[SweepPoint]:
    """The cartesian product models x arch variants x schedules, in that (stable) order, lazily."""
    keys = _Keys(spec)
    i = 0
    for model in spec.models:
        steps = steps_for(spec, model)
        for variant in spec.archs:
            for entry in spec.schedules:
                yield SweepPoint(i, model, variant, entry, steps, keys(model, variant, entry, steps))
                i += 1


def expand_points(spec: SweepSpec) -> list[SweepPoint]:
    """Every point as a list (small sweeps and tests; the runner streams :func:`iter_points`)."""
    return list(iter_points(spec))


def todo_chunks(points: Iterable[SweepPoint], size: int, done: set[str], keys: list[str],
                on_skip: Callable[[int], None]) -> Iterator[list[SweepPoint]]:
    """Chunks of at most ``size`` points not in ``done``, never mixing models (one op table per
    chunk). Appends every point's key to ``keys`` (in order) and reports skipped points."""
    chunk: list[SweepPoint] = []
    for p in points:
        keys.append(p.key)
        if p.key in done:
            on_skip(1)
            continue
        if chunk and (len(chunk) == size or chunk[0].model != p.model):
            yield chunk
            chunk = []
        chunk.append(p)
    if chunk:
        yield chunk
