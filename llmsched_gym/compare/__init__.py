"""Comparing schedulers: load sweeps on identical arrival sequences, tables, CSV and plots."""

from llmsched_gym.compare.sweep import SweepPoint, SweepSpec, run_sweep

__all__ = ["SweepPoint", "SweepSpec", "run_sweep"]
