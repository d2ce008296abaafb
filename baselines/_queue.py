"""Shared helpers: the FCFS waiting queue the vLLM/Sarathi family keeps, and the decode slot check."""

from __future__ import annotations

from collections import deque
from itertools import islice

import numpy as np

from llmsched_gym.core import rules
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.view import EngineView

__all__ = [
    "UNBOUNDED_REPEAT",
    "WaitingQueue",
    "decode_block_needs",
    "decode_with_preemption",
]  # the constant's home is core.plan
_decode_blocks = rules.decode_blocks.py_func


class WaitingQueue:
    """An FCFS queue of waiting request ids: arrivals at the back, preempted requests at the front.

    Call :meth:`sync` at the start of every ``schedule`` to take in the view's new arrivals and the
    engine's overflow evictions; put the scheduler's own preemptions back with :meth:`push_front`.
    Compiled segments take the queue's head (:meth:`head`) and hand back its new head (:meth:`resume`).
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

    def head(self, room: int) -> tuple[IntArray, bool]:
        """The first ``room`` ids and whether more follow them."""
        q = self.items
        n = min(room, len(q))
        return np.fromiter(islice(q, n), dtype=np.int64, count=n), len(q) > n

    def resume(self, given: int, head: IntArray, arrived: range, more: bool) -> None:
        """Replace the ``given`` first ids by a segment's final ``head``; with ``more``, arrivals join the back."""
        q = self.items
        for _ in range(given):
            q.popleft()
        q.extendleft(reversed(head.tolist()))
        if more:
            q.extend(arrived)

    def __len__(self) -> int:
        return len(self.items)


def decode_block_needs(view: EngineView, ids: IntArray) -> IntArray:
    """New blocks each of ``ids`` needs to cache one more token."""
    out: IntArray = _decode_blocks(view.computed[ids], view.blocks[ids], view.block_size)
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
        if not rules.is_decode.py_func(view.prompt[rid], view.generated[rid], view.computed[rid]):
            partials.append(rid)
            continue
        need = int(_decode_blocks(view.computed[rid], view.blocks[rid], bs))
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
