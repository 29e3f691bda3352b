"""The samplers registry: one entry per sampler, read by the CLI, sampling and training.

Kept free of torch imports so the CLI can list the choices without loading PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

from earlyq_sim.registry import Registry


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: the diffusers scheduler class that steps it and whether it takes ``eta``."""

    name: str
    scheduler: str  # diffusers scheduler class name, built with ``from_config`` (no download)
    takes_eta: bool  # DDIM's eta (0 = deterministic); other samplers refuse a non-zero eta
    description: str = ""


SAMPLERS = Registry("sampler")


def register_sampler(spec: SamplerSpec) -> SamplerSpec:
    """Add a sampler; the CLI choices, training and ``run_sampler`` read this map."""
    return SAMPLERS.register(spec.name, spec)


register_sampler(SamplerSpec("ddim", "DDIMScheduler", True, "DDIM (Song et al. 2021); eta 0 = deterministic"))
register_sampler(SamplerSpec("ddpm", "DDPMScheduler", False, "ancestral DDPM (Ho et al. 2020)"))


def sampler_names() -> tuple[str, ...]:
    return SAMPLERS.names()


def sampler_spec(sampler: str) -> SamplerSpec:
    return SAMPLERS.lookup(sampler)


def make_scheduler(sampler: str, scheduler_config: dict | None = None):
    """A diffusers scheduler from a config dict (unknown keys are ignored by diffusers)."""
    import diffusers

    return getattr(diffusers, sampler_spec(sampler).scheduler).from_config(dict(scheduler_config or {}))
