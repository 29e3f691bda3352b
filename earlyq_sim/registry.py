"""Name -> entry maps for the project's extension points (PE types, samplers, metrics).

A registry is a plain dict with a name for error messages: ``lookup`` turns an unknown name into
a one-line :class:`UserError` that lists the allowed names, and ``names()`` is what CLI choices,
sweeps and tests read, so no list of names is written twice.
"""

from __future__ import annotations

from earlyq_sim.errors import UserError


class Registry(dict):
    def __init__(self, what: str, sep: str = ", "):
        super().__init__()
        self.what, self.sep = what, sep  # e.g. "sampler"; separator of the allowed names in errors

    def register(self, name: str, entry):
        """Add (or replace) ``entry`` under ``name``; returns the entry."""
        self[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self)

    def lookup(self, name: str):
        try:
            return self[name]
        except (KeyError, TypeError):
            raise UserError(f"{self.what}: {name!r} is unknown; allowed {self.sep.join(self)}") from None
