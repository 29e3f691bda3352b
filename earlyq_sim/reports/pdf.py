"""Write report pages: one multi-page PDF and, optionally, one PNG per page, each atomically.

`run --out` and `earlyq-sim report DIR` both end here; the pages come from
:mod:`earlyq_sim.reports.run_pages` or :mod:`earlyq_sim.reports.sweep_pages`.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from earlyq_sim.atomic_io import atomic_dir, atomic_write_bytes  # noqa: E402
from earlyq_sim.reports.page import Page, add_footers, close_pages  # noqa: E402
from earlyq_sim.reports.plots import save_png  # noqa: E402

PNG_DPI = 110  # 11 x 8.5 in pages -> 1210 x 935 pixels
# Unhinted glyphs: text widths then scale linearly with size and dpi, so what page.text_width
# measured while laying out holds in the PDF and in the PNGs at any dpi.
RC = {"text.hinting": "no_hinting", "text.hinting_factor": 1}


def build_pages(data) -> list[Page]:
    """The report pages of a :class:`RunData` or :class:`SweepData` (registry by kind), with footers."""
    from earlyq_sim.reports.run_pages import build_run_pages
    from earlyq_sim.reports.sweep_pages import build_sweep_pages

    builders = {"run": build_run_pages, "sweep": build_sweep_pages}
    pages = builders[data.kind](data)
    add_footers(pages, data.source or "(in memory)")
    return pages


def pdf_title(data) -> str:
    if data.kind == "run":
        return f"earlyq-sim: {data.summary['model']['name']} on {data.summary['arch']['name']}"
    return f"earlyq-sim sweep: {', '.join(sorted(map(str, data.results['model'].unique())))}"


def write_pages(pdf_path, pages: list[Page], title: str, png_dir=None) -> list[Path]:
    """Write ``pages`` to ``pdf_path``; with ``png_dir``, also ``NN_<name>.png`` per page into that
    folder (swapped in whole, so no page of an older report is left beside the new ones).
    Returns the PNG paths (their final place)."""
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for p in pages:
            pdf.savefig(p.fig)
        info = pdf.infodict()
        info["Title"] = title
    atomic_write_bytes(pdf_path, buf.getvalue())
    if png_dir is None:
        return []
    names = [f"{i:02d}_{p.name}.png" for i, p in enumerate(pages, 1)]
    with atomic_dir(png_dir) as tmp:
        for p, name in zip(pages, names):
            save_png(p.fig, Path(tmp) / name, dpi=PNG_DPI)
    return [Path(png_dir) / n for n in names]


def write_report(pdf_path, data, png_dir=None) -> list[Path]:
    """Build and write the report of ``data`` (run or sweep); returns the PNG paths."""
    with matplotlib.rc_context(RC):
        pages = build_pages(data)
        try:
            return write_pages(pdf_path, pages, pdf_title(data), png_dir)
        finally:
            close_pages(pages)
