"""Command-line interface: thin click commands over the Python API."""

from __future__ import annotations

import sys

import click

from earlyq_sim.errors import UserError


@click.group()
@click.version_option(package_name="earlyq-sim")
def cli() -> None:
    """earlyq-sim: speed, energy and image quality of per-step precision schedules."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2, no traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if e.exit_code == 2 else e.exit_code)


if __name__ == "__main__":
    main()
