"""The samplers registry: one entry per sampler, read by the CLI, sampling and training.

Kept free of torch imports so the CLI can list the choices without loading PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

from earlyq_sim.errors import UserError


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: the diffusers scheduler class that steps it and whether it takes ``eta``."""

    name: str
    scheduler: str  # diffusers scheduler class name, built with ``from_config`` (no download)
    takes_eta: bool  # DDIM's eta (0 = deterministic); other samplers refuse a non-zero eta
    description: str = ""


SAMPLERS: dict[str, SamplerSpec] = {}


def register_sampler(spec: SamplerSpec) -> SamplerSpec:
    """Add a sampler; the CLI choices, training and ``run_sampler`` read this map."""
    SAMPLERS[spec.name] = spec
    return spec


register_sampler(SamplerSpec("ddim", "DDIMScheduler", True, "DDIM (Song et al. 2021); eta 0 = deterministic"))
register_sampler(SamplerSpec("ddpm", "DDPMScheduler", False, "ancestral DDPM (Ho et al. 2020)"))


def sampler_names() -> tuple[str, ...]:
    return tuple(SAMPLERS)


def sampler_spec(sampler: str) -> SamplerSpec:
    try:
        return SAMPLERS[sampler]
    except KeyError:
        raise UserError(f"sampler: {sampler!r} is unknown; allowed {', '.join(SAMPLERS)}") from None


def make_scheduler(sampler: str, scheduler_config: dict | None = None):
    """A diffusers scheduler from a config dict (unknown keys are ignored by diffusers)."""
    import diffusers

    return getattr(diffusers, sampler_spec(sampler).scheduler).from_config(dict(scheduler_config or {}))
