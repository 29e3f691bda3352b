"""Workloads: precision schedules, samplers, datasets, calibration, training and metrics."""
