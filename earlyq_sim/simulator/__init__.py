"""Simulator: tracer, op graph, arch specs, cycle and energy models, quantizers and integer kernels."""
