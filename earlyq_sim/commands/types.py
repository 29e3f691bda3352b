"""Option types that check a user's numbers at the edge: finite, bounded, the right type.

click's own ``float`` accepts ``nan`` and ``inf``, and an unbounded ``int`` lets ``--steps 0``
mean "the default" or ``--steps 1000000000`` exhaust memory; these types answer with click's
usual one-line usage error (exit 2) naming the option and the allowed range instead.
"""

from __future__ import annotations

import math

import click

BITS = click.IntRange(1, 16)
STEPS = click.IntRange(1, 10_000)  # denoising steps (DDPM schedulers train on 1000)
BATCH = click.IntRange(1, 4096)  # samples per UNet call / per sampling batch
IMAGES = click.IntRange(1, 100_000)
SEED = click.IntRange(0, 2 ** 32 - 1)
THREADS = click.IntRange(1, 256)


class FiniteFloat(click.ParamType):
    """A finite number in ``[lo, hi]`` (``lo_open``: ``lo`` itself excluded)."""

    name = "number"

    def __init__(self, lo: float, hi: float, lo_open: bool = False):
        self.lo, self.hi, self.lo_open = lo, hi, lo_open

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number", param, ctx)
        low_ok = v > self.lo if self.lo_open else v >= self.lo
        if not math.isfinite(v) or not low_ok or v > self.hi:
            self.fail(f"{value!r} is not allowed; allowed a finite number in {'(' if self.lo_open else '['}"
                      f"{self.lo:g}, {self.hi:g}]", param, ctx)
        return v


class NonEmpty(click.ParamType):
    """A string with something in it (an empty ``--schedule ''`` is a mistake, not the default)."""

    name = "text"

    def convert(self, value, param, ctx):
        if not str(value).strip():
            self.fail("empty; give a value or leave the option out", param, ctx)
        return str(value)


FRACTION = FiniteFloat(0.0, 1.0)
GRID = FiniteFloat(0.0, 1.0, lo_open=True)
FD_THRESHOLD = FiniteFloat(0.0, 1e6)
SCHEDULE = NonEmpty()


def normalisation_choices() -> tuple[str, ...]:
    """``--normalise`` choices, read from the registry (``simulator/cost/normalise.py``)."""
    from earlyq_sim.simulator.cost.normalise import normalisation_names

    return normalisation_names()
