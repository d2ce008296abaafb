"""Optional dense shaping that leaves the episode objective unchanged (potential-based).

``shaping="ttft"`` (for the goodput reward): the potential ``Phi`` is ``scale x`` the number of requests in the
system that can still meet their SLO as far as TTFT goes (no first token yet and the TTFT deadline not passed, or
a first token within the deadline). The shaped reward of a step is ``r + Phi(after) - Phi(before)``, with
``Phi = 0`` before the first step and after the last one (terminated or truncated), so the undiscounted return
still equals the objective exactly. Its effect: a request whose TTFT deadline passes costs ``-scale`` at the step
in which it passes, instead of the +1 it will not earn much later at its finish; a request that arrives adds
``+scale`` and one that finishes (met or not) takes it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core.table import RUNNING, WAITING
from llmsched_gym.errors import UnknownNameError

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

SHAPINGS: tuple[str, ...] = ("ttft",)
"""Registered shaping names."""


class TTFTPotential:
    """The ``"ttft"`` potential (see the module docstring).

    Args:
        scale: Value of one viable request (the goodput reward's scale).
    """

    name = "ttft"

    def __init__(self, scale: float = 1.0) -> None:
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"TTFTPotential: scale={scale!r} must be a positive finite number (e.g. 1.0)")
        self.scale = scale

    def __call__(self, engine: Engine) -> float:
        """``Phi`` of the engine's current state."""
        t = engine.table
        n = t.n
        state = t.state[:n]
        live = (state == WAITING) | (state == RUNNING)
        deadline = t.arrival[:n] + t.slo_ttft[:n]
        first = t.first_token[:n]
        viable = np.where(np.isnan(first), engine.now <= deadline, first <= deadline)
        return self.scale * float(np.count_nonzero(live & viable))


def make_shaping(name: str | None, scale: float = 1.0) -> TTFTPotential | None:
    """The shaping potential ``name`` (``None``: no shaping).

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    if name is None:
        return None
    if name not in SHAPINGS:
        raise UnknownNameError(f"unknown shaping {name!r}; choose one of {list(SHAPINGS)} or None")
    return TTFTPotential(scale)
