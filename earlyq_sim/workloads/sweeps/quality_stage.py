"""The quality half of a sweep run: which cells are still to compute, notes, and the join.

``QualityStage(spec, out, resume)`` plans the cells (``quality_cells.plan_quality``: a schedule
that cannot be built at the quality step count is refused before any work), prints each note
(a model without quality) once to stderr, and lists the cells without a valid file under
``<out>/quality``. After the executor has computed them, ``join`` adds the cells' columns to the
cost rows and ``stats`` gives the counts for ``manifest.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from earlyq_sim.workloads.sweeps.parts import clean_temps
from earlyq_sim.workloads.sweeps.quality_cells import cell_path, join_quality, plan_quality, read_cell
from earlyq_sim.workloads.sweeps.spec import SweepSpec

QUALITY_DIR = "quality"


class QualityStage:
    def __init__(self, spec: SweepSpec, out: Path, resume: bool):
        self.spec = spec
        self.plan = plan_quality(spec)
        self.folder = Path(out) / QUALITY_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_temps(self.folder)
        if not resume:
            for f in self.folder.glob("cell-*.json"):
                f.unlink()
        for note in self.plan.notes:
            print(f"earlyq-sim sweep: {note}", file=sys.stderr)
        self.todo = [c for c in self.plan.cells.values() if read_cell(self.folder, c) is None]
        self.skipped = len(self.plan.cells) - len(self.todo)

    def _records(self) -> dict[str, dict]:
        recs = {}
        for cell in self.plan.cells.values():
            rec = read_cell(self.folder, cell)
            if rec is None:
                raise RuntimeError(f"sweep merge: quality cell {cell_path(self.folder, cell.key)} is missing")
            recs[cell.key] = rec
        return recs

    def join(self, df: pd.DataFrame) -> pd.DataFrame:
        """Cost rows (point order) with each row's quality columns."""
        self._recs = self._records()
        return join_quality(df, self.spec, self.plan, {k: r["row"] for k, r in self._recs.items()})

    def stats(self) -> dict:
        """Counts for the manifest; quality_seconds sums the wall time of cells computed in this run."""
        computed = {c.key for c in self.todo}
        return {"quality_cells": len(self.plan.cells), "quality_skipped": self.skipped,
                "quality_computed": len(self.todo),
                "quality_seconds": round(sum(r["seconds"] for k, r in self._recs.items() if k in computed), 3),
                "notes": list(self.plan.notes)}

