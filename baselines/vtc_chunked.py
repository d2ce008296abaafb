"""VTC-chunked: virtual-token-counter admission order on the Sarathi-Serve engine.

Paper: Sheng et al., "Fairness in Serving Large Language Models", OSDI'24 (arXiv 2401.00588),
Algorithm 2 (lift lines 7–13, charges lines 24 and 30), §4. Engine: Sarathi-Serve (spec §6,
:mod:`baselines.sarathi`). Spec: ``docs/specs/baselines.md`` §9.4 (a project [decision]; the artifact
``Ying1123/VTC-artifact`` has no chunked runtime).

Each iteration is Sarathi-Serve's: decodes first (preempting the youngest running request when no
slot is free), then ongoing partial prefills, then admissions. Admission repeatedly takes the oldest
waiting request of the minimum-counter client (ties: the client seen first) and applies Sarathi's
checks (chunk budget, ``max_num_seqs``, watermark allocation of the whole prompt); the first failure
ends admission for the iteration. Counters are charged, divided by the request weight, ``w_p`` per
prompt token when the chunk containing it is scheduled (so counters move inside the admission loop)
and ``w_q`` per decode token scheduled; prompt tokens re-prefilled after a recompute preemption are
not charged again. The counter lift is §9.2's (``lift="paper"`` default, ``"code"``, ``"none"``).

Deviations and project choices:
    * The iteration that completes a re-prefill after a preemption emits a new token; it is charged
      ``w_q`` like a decode token, so a request's total charge is ``w_p·p + w_q·(o - 1)`` as in VTC.
    * ``cost="profile"`` charges ``h(hw, 0)`` cumulatively over the prompt high-water mark ``hw``
      (its intercept with the first chunk) and ``h(p, j) - h(p, j-1)`` per decode, as :mod:`baselines.vtc`.
    * Plans are charged when made; iterations the engine fast-forwards are charged from the view at
      the next call (identical totals; counters are exact at every decision).
    * A preempted request returns to the front of its client's queue and does not lift the counter.
    * Requests over ``max_model_len``, or whose prompt can never fit above the watermark, are rejected
      when they enter the per-client queues rather than when they reach the head of the queue.
    * Fast-forward: an arrival always ends a stretch (the lift reads the counters at arrival time), and
      an iteration whose admission stopped on memory is not repeated if another client's head would
      fit (counters move every iteration, so the minimum client can change).
    * ``weighted`` defaults to ``True`` (spec §9.4: charges divided by weight); weights are each
      request's ``weight`` column.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from baselines._vtc_common import ClientQueues, CountersMixin, ServiceCharger, check_fair_options
from baselines.sarathi import SarathiServe
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.view import EngineView

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class VTCChunkedConfig:
    """Fairness parameters of VTC-chunked (the engine's are :class:`~baselines.sarathi.SarathiConfig`).

    Attributes:
        lift: ``"paper"``, ``"code"`` or ``"none"``.
        weighted: Divide charges by the request weight.
        cost: ``"linear"`` or ``"profile"``.
        w_p: Price of a prompt token.
        w_q: Price of an output token.
    """

    lift: str = "paper"
    weighted: bool = True
    cost: str = "linear"
    w_p: float = 1.0
    w_q: float = 2.0

    def __post_init__(self) -> None:
        """Validate parameters."""
        check_fair_options("VTCChunkedConfig", self.lift, self.cost, self.w_p, self.w_q)


class VTCChunked(CountersMixin, SarathiServe):
    """VTC ordering on Sarathi-Serve (``vtc-chunked``); see the module docstring.

    Sarathi's FCFS queue only collects arrivals, engine evictions and preemptions; :meth:`_admit`
    moves them into per-client queues before its VTC-ordered admission loop.

    Args:
        chunk_size: Token budget per iteration.
        max_num_seqs: Cap on KV-holding requests.
        max_model_len: Optional length limit (rejects longer requests).
        tile_align: Round the prefill budget down to a multiple of 32.
        lift: ``"paper"``, ``"code"`` or ``"none"``.
        weighted: Divide charges by the request weight.
        cost: ``"linear"`` or ``"profile"``.
        w_p: Price of a prompt token.
        w_q: Price of an output token.
        **sarathi_options: Further :class:`~baselines.sarathi.SarathiServe` options (dynamic chunking).
    """

    def __init__(
        self,
        chunk_size: int = 512,
        max_num_seqs: int = 128,
        max_model_len: int | None = None,
        tile_align: bool = False,
        *,
        lift: str = "paper",
        weighted: bool = True,
        cost: str = "linear",
        w_p: float = 1.0,
        w_q: float = 2.0,
        **sarathi_options: Any,
    ) -> None:
        super().__init__(chunk_size, max_num_seqs, "fcfs", max_model_len, tile_align, **sarathi_options)
        self.fair = VTCChunkedConfig(lift, weighted, cost, w_p, w_q)
        self.name = "vtc-chunked"
        self.queues = ClientQueues(lift, "vtc")
        self.charger = ServiceCharger(cost, w_p, w_q, weighted)
        self._rows: IntArray = _EMPTY
        self._memory_blocked = False
        self._free_left = 0

    def reset(self, *, seed: int | None = None) -> None:
        """Clear Sarathi's state, the per-client queues and counters, and the charges."""
        super().reset(seed=seed)
        self.queues.clear()
        self.charger.clear()
        self._rows = _EMPTY
        self._memory_blocked = False

    def _reconcile(self, view: EngineView) -> None:
        self.charger.ensure(view.n_arrived)
        if self._rows.size:  # idempotent: charging is monotone
            self.charger.charge_actual(view, self._rows, self.queues)

    def schedule(self, view: EngineView) -> BatchPlan:
        """Sarathi's hybrid batch with VTC admission; fast-forward only where the plan cannot change."""
        self._reconcile(view)
        plan = super().schedule(view)
        if not plan.preempt:  # arrivals always end a stretch: the lift reads the counters at arrival time
            plan = replace(plan, repeat=self._stretch(view, plan), arrival_sensitive=True)
        self._rows = plan.ids.copy() if plan.repeat > 1 else _EMPTY
        return plan

    def _stretch(self, view: EngineView, plan: BatchPlan) -> int:
        """How long the plan repeats exactly: counters move every iteration, so only while no admission could.

        Blocked by the budget or ``max_num_seqs`` nothing changes until an event; blocked by memory
        only if no waiting client's head would fit (free blocks only shrink inside a stretch).
        """
        if self._memory_blocked:
            for q in self.queues.waiting.values():
                if self._free_left - view.admission_blocks(q[0]) >= view.watermark_blocks:
                    return 1
        return min(plan.repeat, UNBOUNDED_REPEAT)

    # ---- admission -----------------------------------------------------------------------
    def _drain_inbox(self, view: EngineView, rejects: list[tuple[int, str]]) -> None:
        """Move Sarathi's queue into per-client queues: arrivals (with the lift) and returns (front).

        Requests longer than ``max_model_len`` are rejected here rather than when they reach the head.
        """
        first_new, limit = view.arrived.start, self.config.max_model_len
        returns: dict[int, list[int]] = {}
        for rid in self.queue.items:
            pend, usable = view.pending(rid), view.total_blocks - view.watermark_blocks
            if limit is not None and pend > limit:
                rejects.append((rid, f"{pend} tokens exceed max_model_len={limit}"))
            elif view.admission_blocks(rid) > usable:
                rejects.append((rid, f"needs {view.admission_blocks(rid)} KV blocks, more than the {usable} usable"))
            elif rid >= first_new:
                self.queues.arrive(int(view.client[rid]), rid)
            else:
                returns.setdefault(int(view.client[rid]), []).append(rid)
        for client, rids in returns.items():
            self.queues.push_front(client, rids)
        self.queue.items = deque()

    def _admit(
        self, view: EngineView, tokens: dict[int, int], used: int, free: int, n_active: int
    ) -> tuple[int, list[tuple[int, str]]]:
        """Charge the decodes and partial chunks, then admit min-counter clients' oldest requests."""
        rejects: list[tuple[int, str]] = []
        self._drain_inbox(view, rejects)
        decodes = self.plan_decodes  # this iteration's decode rows (Sarathi keeps them out of ``tokens``)
        if decodes.size or tokens:
            ids = np.concatenate((decodes, np.fromiter(tokens.keys(), dtype=np.int64, count=len(tokens))))
            n = np.concatenate((np.ones(decodes.size, dtype=np.int64), np.fromiter(tokens.values(), dtype=np.int64)))
            self.charger.charge_plan(view, ids, n, self.queues)
        added = 0
        cfg = self.config
        self._memory_blocked = False
        while (client := self.queues.pick()) is not None:
            rid = self.queues.waiting[client][0]
            chunk = min(view.pending(rid), self._budget_left(used + added, self._chunk_limit(view, rid)))
            blocks = view.admission_blocks(rid)
            if chunk == 0 or n_active + 1 > cfg.max_num_seqs:
                break
            if free - blocks < view.watermark_blocks:
                self._memory_blocked = True
                break
            self.queues.pop(client)
            tokens[rid] = chunk
            added += chunk
            free -= blocks
            n_active += 1
            self.charger.charge_plan(view, np.array([rid]), np.array([chunk]), self.queues)
        self._free_left = free
        return added, rejects
