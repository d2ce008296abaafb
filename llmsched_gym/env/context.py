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
    """What one decision sees: the engine's view, the slot assignment and per-client service.

    The environment calls :meth:`refresh` after every engine step; the encoder and the decoder then read the
    same slot assignment, so slot ``i`` of the observation is slot ``i`` of the action. Everything is read from
    the :class:`~llmsched_gym.core.view.EngineView`, so a scheduler holding only a view (the deployed policy,
    :class:`~llmsched_gym.policy.scheduler.PolicyScheduler`) builds the same context; ``engine`` is kept for the
    -v0 decoders and the renderer.

    Args:
        engine: The engine of the current episode (``None``: a view-only context; pass ``view``).
        slots: Number of slots ``K``.
        service: Per-client service counters (VTC cost: prompt tokens + 2 x output tokens), indexed by client.
        order: -v1: the waiting requests in slot-fill order; ``None`` (-v0) fills them in arrival order.
        view: The view of a view-only context.
    """

    __slots__ = ("_engine", "n_run_slots", "order", "running", "service", "slots", "view", "waiting", "width")

    def __init__(
        self,
        engine: Engine | None,
        slots: int,
        service: FloatArray,
        order: WaitingOrder | None = None,
        view: EngineView | None = None,
    ) -> None:
        self._engine = engine
        self.width = slots
        self.service = service
        self.order = order
        if view is None:
            if engine is None:
                raise ValueError("DecisionContext: give an engine or a view")
            view = engine.view()
        self.view: EngineView = view
        self.running: IntArray = view.running
        self.waiting: IntArray = self.running[:0]
        self.slots: IntArray = self.running[:0]
        self.n_run_slots = 0
        self.refresh(service, view)

    @property
    def engine(self) -> Engine:
        """The engine (environment contexts only; a view-only context has none)."""
        if self._engine is None:
            raise RuntimeError("a view-only DecisionContext has no engine: -v0 decoders and rendering need the env's")
        return self._engine

    def refresh(self, service: FloatArray, view: EngineView | None = None) -> None:
        """Re-read the view after a step (the engine's view ingests due arrivals) and recompute the slots."""
        if view is None:
            view = self.engine.view()
        self.view = view
        self.service = service
        self.running = view.running
        if self.order is None:
            self.waiting, self.slots, self.n_run_slots = waiting_and_slots(
                view.state, view.n_arrived, self.running, self.width
            )
        else:
            self.waiting = self.order(view, service)
            self.slots, self.n_run_slots = select_slots(self.running, self.waiting, self.width)
