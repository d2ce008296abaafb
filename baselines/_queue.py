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


def decode_with_preemption(
    view: EngineView, order: list[int], free: int
) -> tuple[list[int], list[int], list[int], int]:
    """The Sarathi/vLLM decode pass when KV slots run out (spec §6 step 2, §3 step 3).

    Walks ``order`` from the head. Rows that are not decodes are set aside as partial prefills. A decode
    that needs a new block while none is free recompute-preempts the request at the tail of ``order``
    (the youngest unprocessed one) until the block fits, or itself when nothing is left.

    Args:
        view: The engine view.
        order: Running request ids, highest priority first.
        free: Free KV blocks.

    Returns:
        ``(decodes, partials, preempted, free)``: scheduled decodes, set-aside prefills, victims in
        preemption order, and the free blocks left.
    """
    decodes: list[int] = []
    partials: list[int] = []
    preempted: list[int] = []
    bs = view.block_size
    todo = deque(order)
    while todo:
        rid = todo.popleft()
        if view.pending(rid) != 1 or view.generated[rid] < 1:
            partials.append(rid)
            continue
        need = max(0, -(-(int(view.computed[rid]) + 1) // bs) - int(view.blocks[rid]))
        while need > free and todo:
            victim = todo.pop()
            preempted.append(victim)
            free += int(view.blocks[victim])
        if need > free:
            preempted.append(rid)
            free += int(view.blocks[rid])
            continue
        free -= need
        decodes.append(rid)
    return decodes, partials, preempted, free
