"""Orca as re-implemented in the Sarathi-Serve codebase: iteration-level FCFS, full prompts, max-length KV.

Sources: Yu et al., "Orca: A Distributed Serving System for Transformer-Based Generative Models",
OSDI'22 (iteration-level scheduling); as used by Sarathi-Serve (Agrawal et al., OSDI'24, arXiv
2403.02310) §2.5, §3.2, §5.1; code ``microsoft/sarathi-serve`` ``sarathi/core/scheduler/orca_scheduler.py``
and ``sarathi/core/block_space_manager/orca_block_space_manager.py``. Spec: ``docs/specs/baselines.md`` §5.

Per iteration: every running request decodes one token, and waiting requests are admitted FCFS with
their whole prompt in the same (hybrid) batch. Admission reserves ``ceil(max_model_len / block_size)``
blocks per request, so there is no watermark and no preemption; it stops at the first request that
does not fit or when ``max_num_seqs`` requests run.

Deviations from the spec and code:
    * The engine's "prompt" allocation reserves only the prompt's blocks at admission and allocates
      decode blocks on demand. The max-length reservation is kept virtually: each running request
      counts ``R = ceil(max_model_len / block_size)`` blocks and a request is admitted only while
      ``(running + 1) * R <= total_blocks``. Since no request holds more than ``R`` blocks, physical
      allocation always succeeds, exactly as with a physical reservation.
    * ``R`` is capped at the pool size: with ``R > total_blocks`` the code could never admit anything;
      here one request runs at a time.
    * The code stops a sequence at ``max_model_len`` (``FINISHED_LENGTH_CAPPED``); the engine cannot end a
      request early, so a request that would need more than ``R`` blocks is recompute-preempted and then
      rejected ("length capped") when it reaches the queue head. This is the only preemption Orca makes
      and it cannot happen on workloads filtered to ``max_model_len`` (spec §1.5).
    * Requests whose prompt exceeds ``max_model_len`` are rejected at the queue head.
    * The batch cap is named ``max_num_seqs`` (default 16, the Mistral-7B/Yi-34B runs; 8 for the
      LLaMA2-70B, Falcon-180B and SLAI runs).
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
from llmsched_gym.core.segment import PLAN_OK, PLAN_PYTHON, PlanOutput, specialize
from llmsched_gym.core.table import IntCol
from llmsched_gym.core.view import EngineView

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class OrcaConfig:
    """Orca parameters (spec §5).

    Attributes:
        max_num_seqs: Batch cap (requests holding KV).
        max_model_len: Context length whose KV every admitted request reserves.
    """

    max_num_seqs: int = 16
    max_model_len: int = 8192

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.max_num_seqs < 1:
            raise ValueError(f"OrcaConfig: max_num_seqs={self.max_num_seqs} must be >= 1 (paper runs: 16 or 8)")
        if self.max_model_len < 1:
            raise ValueError(f"OrcaConfig: max_model_len={self.max_model_len} must be >= 1 (e.g. 8192)")


class Orca:
    """Orca iteration-level FCFS scheduler (``orca``); see the module docstring.

    Args:
        max_num_seqs: Batch cap.
        max_model_len: Context length reserved per request.
        compiled: Run decisions in compiled segments (:func:`orca_plan`, the same rules) when the engine has a
            compiled cost model; off gives the Python path only.
    """

    name = "orca"
    requirements = EngineRequirements(allocation="prompt")

    def __init__(self, max_num_seqs: int = 16, max_model_len: int = 8192, compiled: bool = True) -> None:
        self.config = OrcaConfig(max_num_seqs, max_model_len)
        self.queue = WaitingQueue()
        self.length_capped = 0
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
        cfg, view = self.config, engine.view()
        params = (self._reservation(view), cfg.max_num_seqs, cfg.max_model_len)
        seg, view = run_fcfs_segment(engine, self.queue, SEGMENT, params, cfg.max_num_seqs + 1)
        if seg.outcome.decisions == 0:
            engine.step(self._plan(view))

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the waiting queue and statistics."""
        self.queue.clear()
        self.length_capped = 0

    def _reservation(self, view: EngineView) -> int:
        """Blocks reserved per request: ``ceil(max_model_len / block_size)``, at most the pool."""
        return min(view.blocks_for(self.config.max_model_len), view.total_blocks)

    def schedule(self, view: EngineView) -> BatchPlan:
        """All running decodes plus FCFS admissions of whole prompts."""
        self.queue.sync(view)
        return self._plan(view)

    def _plan(self, view: EngineView) -> BatchPlan:
        """:meth:`schedule` for a view whose arrivals the queue has already taken in."""
        reserve = self._reservation(view)
        running = view.running
        cap_tokens = reserve * view.block_size
        room = cap_tokens - view.computed[running]  # decode iterations left inside the reservation
        capped = running[room <= 0]
        if capped.size:
            self.length_capped += int(capped.size)
            running = running[room > 0]
            room = room[room > 0]
        tokens: dict[int, int] = dict.fromkeys(running.tolist(), 1)
        rejects, slots = self._admit(view, tokens, reserve, int(running.size))
        if capped.size:
            self.queue.push_front(capped.tolist())  # rejected as over-long when they reach the head
            return BatchPlan.of(tokens, preempt=capped.tolist(), reject=rejects)
        repeat = int(room.min()) if room.size else UNBOUNDED_REPEAT
        # Admissions complete their prefill in one iteration (an event). A non-empty queue's head is
        # blocked by the cap or the reservations until a request finishes; an arrival is looked at
        # (admitted or rejected) only when the queue is empty and a slot is free.
        sensitive = len(self.queue) == 0 and slots > 0
        return BatchPlan.of(tokens, reject=rejects, repeat=repeat, arrival_sensitive=sensitive)

    def _admit(
        self, view: EngineView, tokens: dict[int, int], reserve: int, n_running: int
    ) -> tuple[list[tuple[int, str]], int]:
        """Admit whole prompts FCFS while the batch cap and the virtual reservations allow.

        Returns:
            The rejections and the admission slots left.
        """
        cfg = self.config
        rejects: list[tuple[int, str]] = []
        q = self.queue.items
        slots = min(cfg.max_num_seqs, view.total_blocks // reserve) - n_running
        while q and slots > 0:
            rid = q[0]
            n = view.pending(rid)
            if n > cfg.max_model_len:
                rejects.append((rid, f"length capped: {n} tokens exceed max_model_len={cfg.max_model_len}"))
                q.popleft()
                continue
            q.popleft()
            tokens[rid] = n
            slots -= 1
        return rejects, slots


# ---- Orca in compiled code (a plan function of llmsched_gym.core.segment) ------------------------------------
@njit(cache=True)
def orca_plan(inp, params):  # type: ignore[no-untyped-def]
    """Orca's iteration; ``params = (reservation blocks, max_num_seqs, max_model_len)``; see :class:`Orca`.

    Every running request decodes; whole prompts are admitted FCFS while the virtual reservations and the batch
    cap allow. Python decides length-capped preemptions and rejections.
    """
    reserve, max_seqs, max_model_len = params
    ints, running = inp.ints, inp.running
    ids, tokens = (
        np.empty(running.size + inp.waiting.size, np.int64),
        np.ones(running.size + inp.waiting.size, np.int64),
    )
    repeat = UNBOUNDED_REPEAT
    for i in range(running.size):
        room = reserve * inp.block_size - ints[IntCol.COMPUTED, running[i]]
        if room <= 0:
            return PlanOutput(PLAN_PYTHON, ids[:0], ids[:0], ids[:0], 1, True, _INF)
        ids[i], repeat = running[i], min(repeat, room)
    n, slots = running.size, min(max_seqs, inp.total // reserve) - running.size
    for r in inp.waiting:
        if slots <= 0:
            break
        x = rules.pending(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r])
        if x > max_model_len:
            return PlanOutput(PLAN_PYTHON, ids[:0], ids[:0], ids[:0], 1, True, _INF)
        ids[n], tokens[n], n, slots = r, x, n + 1, slots - 1
    sensitive = n - running.size == inp.waiting.size and not inp.more_waiting and slots > 0
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], ids[:0], repeat, sensitive, _INF)


SEGMENT = specialize(orca_plan)  # the engine's segment loop running Orca's compiled plan
