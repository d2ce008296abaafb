"""Shared helpers: the FCFS waiting queue the vLLM/Sarathi family keeps, and the decode slot check."""

from __future__ import annotations

from collections import deque

import numpy as np

from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

UNBOUNDED_REPEAT = 1 << 30


class WaitingQueue:
    """An FCFS queue of waiting request ids: arrivals at the back, preempted requests at the front.

    Call :meth:`sync` at the start of every ``schedule`` to take in the view's new arrivals and the
    engine's overflow evictions; put the scheduler's own preemptions back with :meth:`push_front`.
    """

    def __init__(self) -> None:
        self.items: deque[int] = deque()

    def clear(self) -> None:
        """Forget everything."""
        self.items.clear()

    def sync(self, view: EngineView) -> None:
        """Add arrivals (back) and engine evictions (front) since the previous step."""
        for rid in reversed(view.evicted):
            self.items.appendleft(rid)
        arrived = view.arrived
        if len(arrived):
            state = view.state
            self.items.extend(r for r in arrived if state[r] == WAITING)

    def push_front(self, ids: list[int]) -> None:
        """Put preempted requests at the front, keeping ``ids`` order (first id ends up first)."""
        for rid in reversed(ids):
            self.items.appendleft(rid)

    def __len__(self) -> int:
        return len(self.items)


def decode_block_needs(view: EngineView, ids: IntArray) -> IntArray:
    """New blocks each of ``ids`` needs to cache one more token."""
    bs = view.block_size
    out: IntArray = np.maximum(-(-(view.computed[ids] + 1) // bs) - view.blocks[ids], 0)
    return out
