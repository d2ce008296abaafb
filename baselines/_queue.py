"""Shared rules of the FCFS family: the waiting queue, the decode slot check with preemption, segment driving.

:func:`preempt_for_decodes` is compiled and serves both the schedulers' Python paths
(:func:`decode_with_preemption`) and their compiled plan functions (:mod:`llmsched_gym.core.segment`).
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from llmsched_gym.core import rules
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.table import IntCol
from llmsched_gym.core.view import EngineView

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmsched_gym.core.engine import Engine
    from llmsched_gym.core.segment import Segment, Unpacked

__all__ = [
    "UNBOUNDED_REPEAT",
    "WaitingQueue",
    "decode_block_needs",
    "decode_with_preemption",
]  # the constant: core.plan
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


def run_fcfs_segment(
    engine: Engine, queue: WaitingQueue, kernel: Callable[..., Segment], params: Any, room: int
) -> tuple[Unpacked, EngineView]:
    """One compiled segment of an FCFS-queue policy: the queue's first ``room`` ids in, its new head back.

    Returns the segment and the view (whose arrivals the queue has taken in) for a Python decision when
    the segment stopped before its first decision.
    """
    view = engine.view()
    queue.sync(view)
    n_arrived = view.n_arrived
    head, more = queue.head(room)
    seg = engine.run_segment(kernel, params, waiting=head, more_waiting=more)
    queue.resume(head.size, seg.queue, range(n_arrived, seg.n_arrived), more)
    return seg, view


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
    arr = np.array(order, dtype=np.int64)
    decodes, partials, preempted, left = preempt_for_decodes(arr, view.ints, view.block_size, free)
    return decodes.tolist(), partials.tolist(), preempted.tolist(), int(left)


@njit(cache=True)
def preempt_for_decodes(order, ints, bs, free):  # type: ignore[no-untyped-def]
    """:func:`decode_with_preemption` on an id array: ``(decodes, partials, victims, free)`` as arrays."""
    dec, par, victims = np.empty(order.size, np.int64), np.empty(order.size, np.int64), np.empty(order.size, np.int64)
    nd = npar = nv = i = 0
    j = order.size - 1
    while i <= j:
        r = order[i]
        i += 1
        if not rules.is_decode(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]):
            par[npar], npar = r, npar + 1
            continue
        need = rules.decode_blocks(ints[IntCol.COMPUTED, r], ints[IntCol.BLOCKS, r], bs)
        while need > free and i <= j:
            victims[nv], nv, free, j = order[j], nv + 1, free + ints[IntCol.BLOCKS, order[j]], j - 1
        if need > free:
            victims[nv], nv, free = r, nv + 1, free + ints[IntCol.BLOCKS, r]
            continue
        dec[nd], nd, free = r, nd + 1, free - need
    return dec[:nd], par[:npar], victims[:nv], free


@njit(cache=True)
def ascending(ids):  # type: ignore[no-untyped-def]
    """``np.sort(ids)`` by insertion (running ids in admission order are nearly sorted; cheap to compile)."""
    out = ids.copy()
    for i in range(1, out.size):
        v, j = out[i], i
        while j > 0 and out[j - 1] > v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
    return out
