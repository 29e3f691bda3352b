"""`earlyq-sim report DIR`: a readable PDF (and one PNG per page) of a `run --out` or `sweep --out` folder."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("folder", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--out", "out_pdf", type=click.Path(dir_okay=False), default=None,
              help="PDF to write (default: FOLDER/report.pdf); the page PNGs go to <stem>_pages/ beside it "
                   "(report_pages/ by default).")
@click.option("--no-png", is_flag=True, help="Write the PDF only.")
def report_command(folder, out_pdf, no_png):
    """Write a multi-page PDF report of a run or a sweep: title page with model, arch(s), schedule(s),
    baseline, normalisation and units; tables; per-stage bars and per-step timelines (runs);
    Pareto fronts (sweeps); sample grids (runs with quality)."""
    from earlyq_sim.atomic_io import check_out_file
    from earlyq_sim.reports.inputs import load_report_input
    from earlyq_sim.reports.pdf import write_report

    data = load_report_input(folder)
    pdf = Path(out_pdf) if out_pdf else Path(folder) / "report.pdf"
    check_out_file(pdf)
    png_dir = None if no_png else pdf.parent / f"{pdf.stem}_pages"
    pngs = write_report(pdf, data, png_dir)
    click.echo(f"wrote {pdf} ({data.kind} report, {len(pngs) or 'no'} page PNGs"
               + (f" in {png_dir}" if pngs else "") + ")")
