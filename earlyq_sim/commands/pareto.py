"""`earlyq-sim pareto`: mark the Pareto front of a sweep's results (a `pareto` column)."""

from __future__ import annotations

from pathlib import Path

import click

from earlyq_sim.errors import UserError


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def read_results(path: Path):
    """A sweep folder's results table (Parquet, else CSV), or a CSV/Parquet file itself."""
    import pandas as pd

    if path.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise UserError(f"{path}: no results.parquet or results.csv; allowed a sweep --out folder or a table file")
    if path.suffix not in (".parquet", ".csv") or not path.is_file():
        raise UserError(f"{path}: not a results table; allowed a sweep --out folder, a .csv or a .parquet file")
    try:
        return path, (pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path))
    except Exception as e:  # noqa: BLE001 - a damaged table is the user's file
        raise UserError(f"{path}: cannot be read as a table ({type(e).__name__})") from None


@click.command("pareto")
@click.argument("results", type=click.Path(exists=True))
@click.option("--maximise", default="speedup", show_default=True,
              help="Comma-separated columns to maximise, e.g. speedup,energy_saving.")
@click.option("--minimise", default="energy_mj", show_default=True,
              help="Comma-separated columns to minimise, e.g. fd,energy_mj.")
@click.option("--by", default="model", show_default=True,
              help="Comma-separated columns whose groups get their own front (empty: one front).")
def pareto_command(results, maximise, minimise, by):
    """Mark the non-dominated points of a sweep's results per model: adds a `pareto` column to
    results.csv/results.parquet (written atomically) and prints the front."""
    from earlyq_sim.atomic_io import write_csv, write_parquet
    from earlyq_sim.workloads.sweeps.pareto import pareto_front

    path, df = read_results(Path(results))
    mx, mn = _names(maximise), _names(minimise)
    df = df.drop(columns=["pareto"], errors="ignore")
    df["pareto"] = pareto_front(df, mx, mn, _names(by))
    folder = path.parent
    stem = path.stem
    for suffix, writer in ((".csv", write_csv), (".parquet", write_parquet)):
        if suffix == path.suffix or (folder / f"{stem}{suffix}").is_file():
            writer(folder / f"{stem}{suffix}", df)
    nan_rows = int(df[list(mx + mn)].isna().any(axis=1).sum())
    click.echo(f"{int(df['pareto'].sum())} of {len(df)} points on the front (maximise {', '.join(mx) or '-'}; "
               f"minimise {', '.join(mn) or '-'}; per {', '.join(_names(by)) or 'table'})"
               + (f"; {nan_rows} points with a missing value are never on it" if nan_rows else ""))
    show = [c for c in ("model", "arch", "normalise", "schedule", *mx, *mn) if c in df.columns]
    click.echo(df.loc[df["pareto"], list(dict.fromkeys(show))].to_string(index=False))
    click.echo(f"wrote the pareto column to {folder / stem}.*")
