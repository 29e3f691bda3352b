"""`earlyq-sim sweep`: the click command over :func:`run_sweep` (the lead adds it to the CLI group)."""

from __future__ import annotations

import click


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for parts/, results.csv, results.parquet and manifest.json; rerun into it to resume.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Run points in this process, or on Dask (a LocalCluster unless --scheduler is given).")
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786 (with --executor dask).")
@click.option("--no-resume", is_flag=True, help="Discard part files of an earlier run in --out and start over.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--max-points", type=click.IntRange(1, 10 ** 12), default=1_000_000, show_default=True,
              help="Refuse a grid with more points than this (counted before any work).")
def sweep_command(spec, out_dir, executor, scheduler, no_resume, no_progress, max_points):
    """Cost every point of a sweep SPEC (YAML: models x archs x arch overrides x schedules); with
    `metrics: [cost, quality]` also image quality once per schedule of each trained model."""
    from earlyq_sim.atomic_io import check_out_dir
    from earlyq_sim.workloads.sweeps.runner import run_sweep

    check_out_dir(out_dir)

    df = run_sweep(spec, out_dir, executor=executor, scheduler=scheduler, resume=not no_resume,
                   progress=not no_progress, max_points=max_points)
    s = df.attrs["sweep"]
    click.echo(f"{s['points']} points ({s['skipped']} already done, {s['computed']} computed, "
               f"{s['evaluations']} step evaluations) in {s['seconds']:.1f} s")
    if "quality_cells" in s:
        click.echo(f"{s['quality_cells']} quality cells ({s['quality_skipped']} already done, "
                   f"{s['quality_computed']} computed in {s['quality_seconds']:.1f} s of sampling and judging)")
    best = df.loc[df["speedup"].idxmax()] if len(df) else None
    if best is not None:
        click.echo(f"best speedup {best['speedup']:.3f}x: {best['model']} on {best['arch']} with {best['schedule']}")
    click.echo(f"wrote {out_dir}/results.csv and results.parquet")
