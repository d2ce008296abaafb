"""Comparing schedulers: load sweeps on identical arrival sequences, tables, CSV and plots.

``SweepSpec``, ``SweepPoint`` and ``run_sweep`` (from :mod:`llmsched_gym.compare.sweep`) load on first use, so that
registering the ``compare`` command does not import the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmsched_gym.compare.sweep import SweepPoint, SweepSpec, run_sweep

__all__ = ["SweepPoint", "SweepSpec", "run_sweep"]


def __getattr__(name: str) -> Any:
    """Import the sweep module's public names on first use."""
    if name in __all__:
        from llmsched_gym.compare import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'llmsched_gym.compare' has no attribute {name!r}")
