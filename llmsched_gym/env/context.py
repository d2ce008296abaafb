"""The per-decision context the observation encoder and the action decoders share.

Slot assignment (documented in ``docs/env.md``): up to ``K`` requests fill the slots, running requests first
(oldest admission first) and then waiting requests (arrival order, so preempted requests, which arrived earlier,
come before fresh ones). When both kinds exceed the slots, waiting requests keep at least ``K // 2`` slots (or
every waiting request, if fewer), so admissions stay possible under heavy load; the remaining slots go to the
oldest running requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.env._kernels import waiting_and_slots

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine
    from llmsched_gym.core.view import EngineView


def select_slots(running: IntArray, waiting: IntArray, k: int) -> tuple[IntArray, int]:
    """The request ids shown in the ``k`` slots and how many of them are running (they come first).

    Args:
        running: Running ids in admission order.
        waiting: Waiting ids in arrival order.
        k: Number of slots.

    Returns:
        ``(slot_ids, n_running_slots)``: running slots first, then waiting slots.
    """
    n_run, n_wait = running.size, waiting.size
    n_w = min(n_wait, max(k - n_run, k // 2))
    n_r = min(n_run, k - n_w)
    if n_w == 0:
        return running[:n_r], n_r
    if n_r == 0:
        return waiting[:n_w], 0
    return np.concatenate((running[:n_r], waiting[:n_w])), n_r


WaitingOrder = Callable[["EngineView", FloatArray], IntArray]
"""-v1: a function giving the waiting requests in slot-fill order (the decoder's ``waiting_order``)."""


class DecisionContext:
    """What one decision sees: the engine, its view, the slot assignment and per-client service.

    The environment calls :meth:`refresh` after every engine step; the encoder and the decoder then read the
    same slot assignment, so slot ``i`` of the observation is slot ``i`` of the action.

    Args:
        engine: The engine of the current episode.
        slots: Number of slots ``K``.
        service: Per-client service counters (VTC cost: prompt tokens + 2 x output tokens), indexed by client.
        order: -v1: the waiting requests in slot-fill order; ``None`` (-v0) fills them in arrival order.
    """

    __slots__ = ("engine", "n_run_slots", "order", "running", "service", "slots", "view", "waiting", "width")

    def __init__(self, engine: Engine, slots: int, service: FloatArray, order: WaitingOrder | None = None) -> None:
        self.engine = engine
        self.width = slots
        self.service = service
        self.order = order
        self.view: EngineView = engine.view()
        self.running: IntArray = engine.running_ids()
        self.waiting: IntArray = self.running[:0]
        self.slots: IntArray = self.running[:0]
        self.n_run_slots = 0
        self.refresh(service)

    def refresh(self, service: FloatArray) -> None:
        """Re-read the engine after a step (ingests due arrivals) and recompute the slots."""
        engine = self.engine
        self.view = engine.view()
        self.service = service
        self.running = engine.running_ids()
        if self.order is None:
            t = engine.table
            self.waiting, self.slots, self.n_run_slots = waiting_and_slots(t.state, t.n, self.running, self.width)
        else:
            self.waiting = self.order(self.view, service)
            self.slots, self.n_run_slots = select_slots(self.running, self.waiting, self.width)
