"""Design-space sweeps: every (model, arch variant, schedule) point of a sweep spec, resumable.

``run_sweep(spec, out_dir)`` streams the spec's points (:mod:`points`: a generator, so a large
grid starts costing at once), traces each model when its first chunk needs it (disk-cached),
costs the points chunk by chunk and writes each chunk's rows as one Parquet part file
(atomically) under ``out_dir/parts``. With ``metrics: [cost, quality]`` each quality cell
(:mod:`quality_cells`: model x schedule, not arch) is computed once, cached under
``out_dir/quality`` and joined to its rows (one Dask task per cell on the Dask executor). A rerun into the same folder skips points whose
key (a hash of everything that decides the result) is already in a part, then merges all parts
into ``results.csv`` / ``results.parquet``. A crash (even ``kill -9``) loses at most the chunks in
flight and never leaves a half-written file: parts and results are written to a temporary sibling
and renamed.

Cost depends on bits only through one forward's cost at each distinct ``StepBits``, so a point is
a sum over its stages of ``steps x step cost``; step costs are cached per (model, arch, bits) and
shared by all schedules of a chunk (local executor: by the whole run). Units: ms, mJ.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from earlyq_sim.errors import UserError
from earlyq_sim.atomic_io import write_json, write_table
from earlyq_sim.simulator.cost.area import arch_area
from earlyq_sim.simulator.cost.schedule_cost import compare_totals, step_cost
from earlyq_sim.schedule import PrecisionSchedule
from earlyq_sim.workloads.sweeps.parts import (SweepLock, clean_temps, done_keys, part_name, remove_parts,
                                              verified_parts, write_part)
from earlyq_sim.workloads.sweeps.points import (SWEEP_VERSION, SweepPoint, expand_points, iter_points, point_key,
                                               todo_chunks)
from earlyq_sim.workloads.sweeps.quality_cells import compute_cell, write_cell
from earlyq_sim.workloads.sweeps.quality_stage import QualityStage
from earlyq_sim.workloads.sweeps.spec import MAX_POINTS, SweepSpec, load_sweep
from earlyq_sim.simulator.cost.arch import ArchSpec

__all__ = ["SWEEP_VERSION", "SweepPoint", "expand_points", "iter_points", "point_key", "run_sweep"]

EXECUTORS = ("local", "dask")
_NULLABLE_INT = ("early_bits", "late_bits", "prob_bits")


@dataclass(frozen=True)
class _Context:
    """What every point of a sweep shares (sent once per chunk to a worker)."""

    baseline: str
    ref_arch: object  # ArchSpec
    batch: int
    cfg: bool
    override_fields: tuple[str, ...]


def _context(spec: SweepSpec) -> _Context:
    return _Context(spec.baseline, spec.ref_arch, spec.batch, spec.cfg, spec.override_fields)


# ---------------------------------------------------------------------------------------------
# costing
# ---------------------------------------------------------------------------------------------
class StepCache:
    """One-forward costs keyed by (model, ArchSpec, StepBits); ``evaluations`` counts misses."""

    def __init__(self):
        self._cache: dict = {}
        self.evaluations = 0

    def get(self, model: str, ops: pd.DataFrame, arch: ArchSpec, bits, schedule: PrecisionSchedule | None = None):
        held = (schedule.keep, schedule.keep_bits) if schedule is not None and schedule.keep else None
        k = (model, arch, bits, held)
        hit = self._cache.get(k)
        if hit is None:
            c = step_cost(arch, ops, bits, schedule)
            self.evaluations += 1
            hit = self._cache[k] = (c.latency_ms, c.cycles, c.compute_cycles, c.energy_mj["total"],
                                    c.dram_bytes, c.compulsory_dram_bytes)
        return hit


def point_row(point: SweepPoint, ops: pd.DataFrame, ctx: _Context, cache: StepCache) -> dict:
    """One result row: parameters, per-stage speedups, totals (ms, mJ) and ratios.

    Ratios from :func:`schedule_cost.compare_totals` (``compare``'s own definitions): speedup and
    energy_saving vs the uniform baseline on the same arch, speedup_vs_ref vs the baseline on
    ``ctx.ref_arch``; totals are sums of stage costs (step cost x steps, from the StepCache).
    """
    e, arch, steps = point.schedule, point.arch.spec, point.num_steps
    sched = e.build(steps)
    base = PrecisionSchedule.parse(ctx.baseline, steps, prob_bits=e.prob_bits)
    bbits = base.distinct_bits()[0]
    b_lat, _, b_comp, b_en, _, _ = cache.get(point.model, ops, arch, bbits, base)
    r_lat = cache.get(point.model, ops, ctx.ref_arch, bbits, base)[0]
    row = {"point_key": point.key, "model": point.model, "arch": point.arch.base}
    # list values (pe.fusion_widths) as JSON text: one plain column type in CSV and Parquet
    row.update({f: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v for f, v in point.arch.overrides})
    row.update({"normalise": point.arch.normalise, "pe_rows": arch.array.rows, "pe_cols": arch.array.cols,
                "area_mm2": arch_area(arch).total_mm2 if arch.area is not None else math.nan})
    row.update({"schedule": sched.label, "weight_bits": sched.weight_bits, "early_bits": e.early_bits,
                "boundary": math.nan if e.boundary is None else e.boundary, "late_bits": e.late_bits,
                "prob_bits": sched.prob_bits, "num_steps": steps, "batch": ctx.batch, "cfg": ctx.cfg,
                "baseline": ctx.baseline, "n_stages": len(sched.intervals)})
    lat = cyc = comp = en = dram = floor = 0.0
    for st in sched.stages():
        n = st.steps
        s_lat, s_cyc, s_comp, s_en, s_dram, s_floor = cache.get(point.model, ops, arch, st.bits, sched) if n \
            else (0.0,) * 6
        lat, cyc, comp, en = lat + n * s_lat, cyc + n * s_cyc, comp + n * s_comp, en + n * s_en
        dram, floor = dram + n * s_dram, floor + n * s_floor
        row[f"stage{st.index}_act_bits"] = st.bits.act
        row[f"stage{st.index}_steps"] = n
        row[f"stage{st.index}_latency_ms"] = n * s_lat
        row[f"stage{st.index}_speedup"] = compare_totals({"latency_ms": n * s_lat}, {"latency_ms": n * b_lat})["speedup"]
    row.update({"cycles": cyc, "latency_ms": lat, "energy_mj": en, "dram_gb": dram / 1e9,
                "compulsory_dram_gb": floor / 1e9, "baseline_latency_ms": steps * b_lat,
                "baseline_energy_mj": steps * b_en, "ref_latency_ms": steps * r_lat})
    ratios = compare_totals({"latency_ms": lat, "compute_cycles": comp, "energy_mj": en},
                            {"latency_ms": steps * b_lat, "compute_cycles": steps * b_comp, "energy_mj": steps * b_en},
                            {"latency_ms": steps * r_lat})
    row.update({k: ratios[k] for k in ("speedup", "compute_speedup", "speedup_vs_ref", "energy_saving")})
    return row


def evaluate_chunk(points: list[SweepPoint], ops: pd.DataFrame, ctx: _Context,
                   cache: StepCache | None = None) -> tuple[pd.DataFrame, int]:
    """Rows for ``points`` (all of one model) and the number of step evaluations it took."""
    cache = cache if cache is not None else StepCache()
    before = cache.evaluations
    df = pd.DataFrame([point_row(p, ops, ctx, cache) for p in points])
    return df, cache.evaluations - before


# ---------------------------------------------------------------------------------------------
# parts on disk
# ---------------------------------------------------------------------------------------------
def _order(df: pd.DataFrame, ctx: _Context) -> pd.DataFrame:
    """A fixed column order and dtypes, whatever the part files held."""
    lead = ["point_key", "model", "arch", *ctx.override_fields, "normalise", "pe_rows", "pe_cols", "area_mm2",
            "schedule", "weight_bits", "early_bits",
            "boundary", "late_bits", "prob_bits", "num_steps", "batch", "cfg", "baseline", "n_stages"]
    n = int(df["n_stages"].max()) if len(df) else 0
    stage = [f"stage{i}_{c}" for i in range(n) for c in ("act_bits", "steps", "latency_ms", "speedup")]
    tail = ["cycles", "latency_ms", "energy_mj", "dram_gb", "compulsory_dram_gb", "baseline_latency_ms", "baseline_energy_mj", "ref_latency_ms",
            "speedup", "compute_speedup", "speedup_vs_ref", "energy_saving"]
    df = df.reindex(columns=lead + stage + tail)
    for c in (*_NULLABLE_INT, *(s for s in stage if s.endswith(("_act_bits", "_steps")))):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    for c in (s for s in stage if s.endswith(("_latency_ms", "_speedup"))):
        df[c] = df[c].astype(float)
    return df


def merge_parts(parts_dir: Path, keys: list[str], ctx: _Context) -> pd.DataFrame:
    """The rows of the points ``keys`` from the part files, in that order."""
    files = verified_parts(parts_dir)  # checked again: merge only what passes its checksum
    frames = [pd.read_parquet(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"point_key": []})
    df = df.drop_duplicates("point_key").set_index("point_key")
    missing = [k for k in keys if k not in df.index]
    if missing:
        raise RuntimeError(f"sweep merge: {len(missing)} points have no row in {parts_dir}")
    return _order(df.loc[keys].reset_index(), ctx)


# ---------------------------------------------------------------------------------------------
# executors
# ---------------------------------------------------------------------------------------------
def _trace_ops(model: str, batch: int, cfg: bool) -> pd.DataFrame:
    from earlyq_sim.simulator.cost.tracer import trace_model

    from earlyq_sim.simulator.cost.fusion import costing_ops

    return costing_ops(trace_model(model, batch=batch, cfg=cfg))


class _OpTables(dict):
    """Op tables traced (disk-cached) when a model's first chunk needs them."""

    def __init__(self, batch: int, cfg: bool):
        super().__init__()
        self.batch, self.cfg = batch, cfg

    def __missing__(self, model: str) -> pd.DataFrame:
        self[model] = _trace_ops(model, self.batch, self.cfg)
        return self[model]


def _run_local(chunks, ops, ctx, parts_dir, bar, cells=(), qdir=None, qbar=None) -> int:
    cache = StepCache()  # shared by the whole run: every (arch, bits) is costed once
    for chunk in chunks:
        df, _ = evaluate_chunk(chunk, ops[chunk[0].model], ctx, cache)
        write_part(parts_dir / part_name([p.key for p in chunk]), df)
        bar.update(len(chunk))
    for cell in cells:  # after the cost rows: minutes each
        write_cell(qdir, compute_cell(cell))
        qbar.update(1)
    return cache.evaluations


def _dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--executor dask needs dask.distributed; install it with pip install "
                        "'dask[distributed]' (allowed: --executor local)") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError, ValueError) as e:
            raise UserError(f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler ({e}); "
                            "allowed: a reachable address such as tcp://host:8786, or no --scheduler "
                            "for a local cluster") from None
    # threads in this process: the cost model is NumPy-bound and the op tables need no copying
    # loopback only (TCP on 127.0.0.1: nothing listens on other interfaces) and no dashboard
    # (only the scheduler's /health endpoint answers on its HTTP port)
    cluster = LocalCluster(processes=False, n_workers=1, threads_per_worker=2, protocol="tcp://", host="127.0.0.1",
                           dashboard_address=None)
    return Client(cluster), cluster


def _run_dask(chunks, ops, ctx, parts_dir, bar, scheduler, cells=(), qdir=None, qbar=None) -> int:
    """Quality cells as one task each (submitted first: minutes each), cost chunks through a window
    of twice the cluster's threads (the chunk generator is consumed as results come back)."""
    from dask.distributed import as_completed

    client, cluster = _dask_client(scheduler)
    try:
        scattered = {}
        jobs: dict = {}
        done = as_completed()
        for cell in cells:
            fut = client.submit(compute_cell, cell, pure=False)
            jobs[fut] = ("quality", cell)
            done.add(fut)
        chunk_iter = iter(chunks)

        def feed() -> None:
            chunk = next(chunk_iter, None)
            if chunk is None:
                return
            m = chunk[0].model
            if m not in scattered:
                scattered[m] = client.scatter(ops[m], broadcast=True)
            fut = client.submit(evaluate_chunk, chunk, scattered[m], ctx, pure=False)
            jobs[fut] = ("cost", chunk)
            done.add(fut)

        for _ in range(max(4, 2 * sum(client.nthreads().values()))):
            feed()
        evals = 0
        try:
            for fut in done:
                kind, item = jobs.pop(fut)
                if kind == "quality":
                    write_cell(qdir, fut.result())  # written here: workers need no shared disk
                    qbar.update(1)
                    continue
                df, n = fut.result()
                write_part(parts_dir / part_name([p.key for p in item]), df)
                bar.update(len(item))
                evals += n
                feed()
        except BaseException:
            client.cancel(list(jobs))
            raise
        return evals
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sweep(spec_path_or_obj, out_dir, executor: str = "local", scheduler: str | None = None,
              resume: bool = True, progress: bool = True, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Run (or finish) a sweep into ``out_dir`` and return the merged table, one row per point.

    ``spec_path_or_obj``: a sweep YAML path, a mapping, or a :class:`SweepSpec`. ``executor``:
    'local' (this process) or 'dask' (``scheduler`` address, or a LocalCluster when None).
    ``resume=False`` discards earlier parts and quality cells; a grid above ``max_points`` is
    refused before any work. The returned frame's ``attrs['sweep']`` holds counts: points, skipped
    (already done), computed, evaluations (one-step cost evaluations), seconds, and with quality
    quality_cells, quality_skipped, quality_computed, quality_seconds (sum over computed cells), notes.
    """
    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r} is not allowed; allowed: {' | '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UserError("--scheduler is only used with --executor dask; allowed: add --executor dask "
                        "or drop --scheduler")
    t0 = time.perf_counter()
    spec = load_sweep(spec_path_or_obj, max_points)
    out = Path(out_dir)
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    with SweepLock(out):  # one writer per folder: a second sweep here is refused, not interleaved
        return _run_locked(spec, out, parts_dir, executor, scheduler, resume, progress, t0)


def _run_locked(spec, out: Path, parts_dir: Path, executor, scheduler, resume, progress, t0) -> pd.DataFrame:
    from tqdm.auto import tqdm

    clean_temps(parts_dir)
    clean_temps(out)
    if not resume:
        remove_parts(parts_dir)
    quality = QualityStage(spec, out, resume) if spec.quality is not None else None  # checked before any work
    done = done_keys(parts_dir)
    ctx = _context(spec)
    keys: list[str] = []
    skipped = [0]
    with tqdm(total=spec.num_points, disable=not progress, desc=f"sweep {spec.name}: costing points",
              unit="pt") as bar, \
            tqdm(total=len(quality.plan.cells) if quality else 0, initial=quality.skipped if quality else 0,
                 disable=not (progress and quality), unit="cell",
                 desc=f"sweep {spec.name}: quality cells (integer-emulation sampling)") as qbar:

        def skip(n: int) -> None:
            skipped[0] += n
            bar.update(n)

        chunks = todo_chunks(iter_points(spec), spec.chunk_size, done, keys, skip)
        cells = quality.todo if quality else ()
        qdir = quality.folder if quality else None
        if executor == "local":
            evals = _run_local(chunks, _OpTables(spec.batch, spec.cfg), ctx, parts_dir, bar, cells, qdir, qbar)
        else:
            first = next(chunks, None)
            if first is None and not cells:  # everything done: no cluster
                evals = 0
            else:
                chunks = itertools.chain([first] if first else [], chunks)
                evals = _run_dask(chunks, _OpTables(spec.batch, spec.cfg), ctx, parts_dir, bar, scheduler, cells,
                                  qdir, qbar)
    df = merge_parts(parts_dir, keys, ctx)
    stats = {"points": len(keys), "skipped": skipped[0], "computed": len(keys) - skipped[0], "evaluations": evals}
    if quality:
        df = quality.join(df)
        stats.update(quality.stats())
    write_table(out, "results", df)
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    metrics = {"metrics": list(spec.metrics)} if quality else {}
    write_json(out / "manifest.json", {"name": spec.name, "source": spec.source, "executor": executor, **metrics,
                                       **stats})
    df.attrs["sweep"] = stats
    return df
