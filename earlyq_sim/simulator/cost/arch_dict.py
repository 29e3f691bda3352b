"""An ArchSpec back as the YAML mapping ``parse_arch`` reads (the inverse of parsing).

Used to re-validate a spec after sweep overrides, to key sweep points by the resolved spec (not
its file name) and to record the full resolved spec in every run's provenance.
"""

from __future__ import annotations

import dataclasses

from earlyq_sim.simulator.cost.arch import ArchSpec

#: nested fields derived when a spec is read (never written back, never overridden)
COMPUTED_FIELDS = ("source", "area_factor", "energy_factor")


def arch_to_dict(spec: ArchSpec) -> dict:
    """The YAML mapping :func:`parse_arch` reads, rebuilt from a spec (inverse of parse_arch)."""
    return {
        "name": spec.name, "description": spec.description, "normalisation": spec.normalisation,
        "clock_mhz": spec.clock_mhz, "array": dataclasses.asdict(spec.array), "pe": spec.pe.as_dict(),
        "buffers": dataclasses.asdict(spec.buffers), "dram": {"bytes_per_cycle": spec.dram_bytes_per_cycle},
        "vector": {"elems_per_cycle": spec.vector_elems_per_cycle},
        "accumulator": dataclasses.asdict(spec.accumulator), "energy": dataclasses.asdict(spec.energy),
        "mapping": dataclasses.asdict(spec.mapping), "memory": dataclasses.asdict(spec.memory),
        "fusion": dataclasses.asdict(spec.fusion),
        "technology": {k: v for k, v in dataclasses.asdict(spec.technology).items() if k not in COMPUTED_FIELDS},
        **({} if spec.area is None else {"area": dataclasses.asdict(spec.area)}),
    }
