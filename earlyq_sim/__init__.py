"""earlyq-sim: cost and quality simulator for diffusion models with per-step precision schedules."""

__version__ = "0.1.0"
