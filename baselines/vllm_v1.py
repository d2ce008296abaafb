"""vLLM V1 default scheduler: one token budget, chunked prefill always on, on-demand KV.

Source: ``vllm-project/vllm``, ``vllm/v1/core/sched/scheduler.py::schedule`` (no paper; the V1
engine design). Spec: ``docs/specs/baselines.md`` §4.

Per iteration: a running pass in running-list (admission) order tops every request up with
``min(pending, budget)`` tokens, allocating KV only for the new tokens and, on allocation failure,
recompute-preempting the *last* running request (stopping the pass if that is the request being
scheduled); then, only if nothing was preempted, a waiting pass admits requests FCFS with
``min(pending, budget)`` tokens while the budget lasts and fewer than ``max_num_seqs`` run,
stopping at the first allocation failure.

Deviations from the code:
    * No prefix caching (hits are always 0) and no ``long_prefill_token_threshold`` by default
      (exposed as ``long_prefill_threshold``, 0 = off).
    * Preempted requests re-prefill prompt plus generated tokens under the engine's recompute
      semantics (spec §1.3).
    * Structured output, speculative decoding, LoRA and encoder budgets are out of scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from baselines._queue import WaitingQueue, run_fcfs_segment
from llmsched_gym.core import rules
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.rules import RUNNING, WAITING
from llmsched_gym.core.segment import PLAN_OK, PlanOutput, specialize
from llmsched_gym.core.table import IntCol
from llmsched_gym.core.view import EngineView

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class VLLMV1Config:
    """vLLM V1 parameters (spec §4; H100 server defaults: 8192 tokens, 1024 sequences).

    Attributes:
        max_num_batched_tokens: Token budget per iteration.
        max_num_seqs: Cap on running requests.
        long_prefill_threshold: Per-request chunk cap (0 = off).
    """

    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 1024
    long_prefill_threshold: int = 0

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.max_num_batched_tokens < 1:
            raise ValueError(f"VLLMV1Config: max_num_batched_tokens={self.max_num_batched_tokens} must be >= 1")
        if self.max_num_seqs < 1:
            raise ValueError(f"VLLMV1Config: max_num_seqs={self.max_num_seqs} must be >= 1")
        if self.long_prefill_threshold < 0:
            raise ValueError(f"VLLMV1Config: long_prefill_threshold={self.long_prefill_threshold} must be >= 0")


class VLLMV1:
    """vLLM V1 chunked FCFS scheduler (``vllm-v1``); see the module docstring.

    Args:
        max_num_batched_tokens: Token budget per iteration.
        max_num_seqs: Cap on running requests.
        long_prefill_threshold: Per-request chunk cap (0 = off).
        compiled: Run decisions in compiled segments (:func:`vllm_v1_plan`, the same rules)
            when the engine has a compiled cost model; off gives the Python path only.
    """

    name = "vllm-v1"
    requirements = EngineRequirements(allocation="on_demand")

    def __init__(
        self,
        max_num_batched_tokens: int = 8192,
        max_num_seqs: int = 1024,
        long_prefill_threshold: int = 0,
        compiled: bool = True,
    ) -> None:
        self.config = VLLMV1Config(max_num_batched_tokens, max_num_seqs, long_prefill_threshold)
        self.queue = WaitingQueue()
        self._running: list[int] = []
        self._compiled = compiled

    def fused_driver(self, engine: Engine) -> Callable[[], None] | None:
        """A callable advancing ``engine`` by compiled segments (used by :func:`llmsched_gym.simulate.run_engine`).

        ``None`` unless compiled segments are on, the engine has a compiled cost model and no per-token times
        are recorded.
        """
        if not (self._compiled and engine.runs_segments):
            return None
        return partial(self._segment, engine)

    def _segment(self, engine: Engine) -> None:
        """Advance ``engine`` by a compiled segment, or by one Python decision where it stops at once."""
        cfg = self.config
        params = (cfg.max_num_batched_tokens, cfg.max_num_seqs, cfg.long_prefill_threshold)
        seg, view = run_fcfs_segment(engine, self.queue, SEGMENT, params, cfg.max_num_seqs + 1)
        self._running = view.running.tolist()
        if seg.outcome.decisions == 0:
            engine.step(self._plan(view))

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the queue and the running list."""
        self.queue.clear()
        self._running = []

    def _chunk(self, pending: int, budget: int) -> int:
        cap = self.config.long_prefill_threshold
        n = min(pending, budget)
        return min(n, cap) if cap and pending > 1 else n

    def _sync_running(self, view: EngineView) -> None:
        state = view.state
        self._running = [r for r in self._running if state[r] == RUNNING]

    def schedule(self, view: EngineView) -> BatchPlan:
        """Running pass, then (if nothing was preempted) the waiting pass."""
        self.queue.sync(view)
        return self._plan(view)

    def _plan(self, view: EngineView) -> BatchPlan:
        """:meth:`schedule` for a view whose arrivals the queue has already taken in."""
        self._sync_running(view)
        budget = self.config.max_num_batched_tokens
        free = view.free_blocks
        tokens: dict[int, int] = {}
        preempted: list[int] = []
        order = list(self._running)
        i = 0
        while i < len(order) and budget > 0:
            rid = order[i]
            n = self._chunk(view.pending(rid), budget)
            need = view.new_blocks(rid, n)
            while need > free and order[-1] != rid:
                victim = order.pop()
                preempted.append(victim)
                free += int(view.blocks[victim])
            if need > free:
                order.pop()
                preempted.append(rid)
                break
            tokens[rid] = n
            budget -= n
            free -= need
            i += 1
        self._running = order
        if preempted:
            self.queue.push_front(preempted[::-1])  # each victim is prepended as it is popped
            return BatchPlan.of(tokens, preempt=preempted)
        self._waiting_pass(view, tokens, budget, free)
        left = self.config.max_num_batched_tokens - sum(tokens.values())
        sensitive = left > 0 and len(self.queue) == 0
        return BatchPlan.of(tokens, repeat=UNBOUNDED_REPEAT, arrival_sensitive=sensitive)

    def _waiting_pass(self, view: EngineView, tokens: dict[int, int], budget: int, free: int) -> None:
        q = self.queue.items
        while q and budget > 0 and len(self._running) < self.config.max_num_seqs:
            rid = q[0]
            n = self._chunk(view.pending(rid), budget)
            need = view.new_blocks(rid, n)
            if need > free:
                break
            q.popleft()
            tokens[rid] = n
            budget -= n
            free -= need
            self._running.append(rid)


# ---- vLLM V1 in compiled code (a plan function of llmsched_gym.core.segment) ---------------------------------
@njit(cache=True)
def _v1_chunk(ints, r, budget, cap):  # type: ignore[no-untyped-def]
    """VLLM V1's tokens for request ``r``: ``min(pending, budget)``, capped for long prefills when ``cap``."""
    pend = rules.pending(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r])
    n = min(pend, budget)
    return min(n, cap) if cap and pend > 1 else n


@njit(cache=True)
def vllm_v1_plan(inp, params):  # type: ignore[no-untyped-def]
    """VLLM V1's iteration; ``params = (max_num_batched_tokens, max_num_seqs, long_prefill_threshold)``.

    The running pass (admission order) tops every request up, preempting from the back of the running list
    when a request's new blocks are not free; then, if nothing was preempted, the waiting pass admits FCFS
    until the budget, the sequence cap or the first allocation failure. Victims re-enter the queue front in
    the reverse of their preemption order.
    """
    budget, max_seqs, cap = params
    ints, bs, free = inp.ints, inp.block_size, inp.free
    order, n_order = inp.running, inp.running.size
    ids, tokens = np.empty(n_order + inp.waiting.size, np.int64), np.empty(n_order + inp.waiting.size, np.int64)
    victims, n_vic, n, i = np.empty(n_order, np.int64), 0, 0, 0
    while i < n_order and budget > 0:
        r = order[i]
        x = _v1_chunk(ints, r, budget, cap)
        p, g, c, held = (
            ints[IntCol.PROMPT, r],
            ints[IntCol.GENERATED, r],
            ints[IntCol.COMPUTED, r],
            ints[IntCol.BLOCKS, r],
        )
        need = rules.new_blocks(c, x, rules.ONE, p, g, held, bs, inp.prompt_alloc and inp.state[r] == WAITING)
        while need > free and order[n_order - 1] != r:
            n_order -= 1
            victims[n_vic], n_vic, free = order[n_order], n_vic + 1, free + ints[IntCol.BLOCKS, order[n_order]]
        if need > free:
            victims[n_vic], n_vic = r, n_vic + 1
            break
        ids[n], tokens[n], n, budget, free, i = r, x, n + 1, budget - x, free - need, i + 1
    if n_vic:
        return PlanOutput(PLAN_OK, ids[:n], tokens[:n], victims[:n_vic][::-1].copy(), 1, True, _INF)
    j = 0
    while j < inp.waiting.size and budget > 0 and n_order < max_seqs:
        r = inp.waiting[j]
        x = _v1_chunk(ints, r, budget, cap)
        need = rules.blocks_for(ints[IntCol.COMPUTED, r] + x, bs) - ints[IntCol.BLOCKS, r]
        if need > free:
            break
        ids[n], tokens[n], n, budget, free, n_order, j = r, x, n + 1, budget - x, free - need, n_order + 1, j + 1
    sensitive = budget > 0 and j == inp.waiting.size and not inp.more_waiting
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], ids[:0], UNBOUNDED_REPEAT, sensitive, _INF)


SEGMENT = specialize(vllm_v1_plan)  # the engine's segment loop running vLLM V1's compiled plan
