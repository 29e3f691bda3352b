"""The PE-type registry: field declarations and the two bit-behaviour hooks every type provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from earlyq_sim.registry import Registry

REQUIRED = object()  # a field without a default


@dataclass(frozen=True)
class PEField:
    """One YAML field under ``pe:``; ``kind`` is int, float or list; bounds are inclusive."""

    name: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    default: object = REQUIRED
    doc: str = ""


# fields several PE families share
PARALLEL_BITS = PEField("parallel_bits", int, 1, 32, doc="width of a bit-parallel operand input")
BITS_PER_CYCLE = PEField("bits_per_cycle", int, 1, 16, doc="serial bits per cycle of the streamed operand")
LANES = PEField("lanes", int, 1, 4096, default=1, doc="streamed vectors a PE serves per slot")


class PEType:
    """Base class of a PE family; subclasses set ``name``/``fields`` and implement the hooks."""

    name: ClassVar[str]
    fields: ClassVar[tuple[PEField, ...]]

    def check(self, params: dict, err) -> None:
        """Cross-field checks after each field was read; ``err(field, msg)`` builds the error."""

    def area_units(self, pe) -> int:
        """Units of datapath one PE replicates, each ``area.pe_unit_um2`` (``area.py``): its
        lanes by default; a type whose PE is built of other blocks (BitBricks) says so."""
        return int(getattr(pe, "lanes", 1))

    def factors(self, pe, x: np.ndarray, y: np.ndarray, swappable: np.ndarray):
        """Analytical bit scaling, int64 arrays in (broadcast), five int64 arrays out:
        ``(slot, lanes, chunks_x, chunks_y, steps)``: cycles per streamed slot, streamed vectors
        per slot per PE, chunk passes of each operand, multiplier steps per MAC (energy)."""
        raise NotImplementedError

    def reference_behaviour(self, pe, x: int, y: int, swappable: bool) -> tuple[int, int, int, int]:
        """The same behaviour found by stepping one PE (reference simulator; plain Python, no
        formula shared with :meth:`factors`): (cycles per slot, MACs per slot, x chunks, y chunks)."""
        raise NotImplementedError


PE_TYPES = Registry("pe.type", " | ")


def register_pe_type(cls: type[PEType]) -> type[PEType]:
    """Class decorator: add a PE type to the registry under ``cls.name``."""
    if not getattr(cls, "name", None) or not isinstance(getattr(cls, "fields", None), tuple):
        raise TypeError(f"{cls.__name__}: a PE type needs a name and a tuple of PEField")
    PE_TYPES.register(cls.name, cls())
    return cls


def pe_type_names() -> tuple[str, ...]:
    """Registered PE type names, in registration order."""
    return PE_TYPES.names()


def pe_type(name: str) -> PEType:
    """The registered PE type ``name`` (a one-line error naming the allowed ones otherwise)."""
    return PE_TYPES.lookup(name)


# --- helpers the reference hooks share: counting one step at a time, no closed forms ----------
def step_chunks(bits: int, width: int) -> list[int]:
    """Split ``bits`` into chunks of at most ``width`` bits, one chunk at a time."""
    out, left = [], bits
    while left > 0:
        out.append(min(width, left))
        left -= width
    return out


def step_serial_cycles(*bit_streams: tuple[int, int]) -> int:
    """Cycles to feed nested bit-serial operands: (bits, bits_per_cycle) each, innermost last."""
    cycles = 1
    for bits, per in bit_streams:
        n, left = 0, bits
        while left > 0:
            left -= per
            n += 1
        cycles *= n
    return cycles

