"""SLAI (SLO-Aware LLM Inference): critical decodes by last schedulable time, then prefills, then the rest.

Paper: Bari, Hegde, de Veciana, "Optimal Scheduling Algorithms for LLM Inference: Theory and Practice",
arXiv 2508.01002 (SIGMETRICS'26), §6 and Eq. 8. Code: ``agrimUT/SLAI``,
``sarathi/core/scheduler/slai_scheduler.py`` (a fork of the Sarathi-Serve OSDI branch). Spec:
``docs/specs/baselines.md`` §7.

When request j emits a token at the end of a batch, its next token's last schedulable time is
``LST_j = batch_end + TBT_j - Θ·b̄`` (Eq. 8), with b̄ the running mean batch duration and Θ the offset
(fixed, or ``above_offset`` when at least ``memory_limit`` of the blocks are used, else ``below_offset``).
Per iteration (token budget B, decode cap D): (1) decodes whose LST has passed, ascending LST; (2)
paused partial prefills, FIFO, ``min(remaining, B - used)`` each; (3) waiting requests ordered shortest
prompt first (or FCFS), strict-TBT classes first with ``user_priority``; (4) new prefills admitted while
the watermark and ``max_num_seqs`` allow; (5) non-critical decodes fill the remaining budget in LST
order. A decode that needs a block while none is free preempts the most recently paused prefill, or
else itself. Anything not scheduled is paused and keeps its KV.

Deviations from the spec and code:
    * Per-request TBT comes from the request's SLO class (``slo_tbt``), else ``time_between_tokens``.
      ``user_priority`` orders waiting requests by that TBT (smaller first), which equals the code's
      paying/free split for two classes; here it also applies with ``fcfs=True`` (the code ignores it).
    * SPF sorts by the tokens to prefill, ``prompt + generated`` (the code folds generated tokens into the
      prompt on preemption, so its "prompt length" is the same number).
    * Requests preempted in an iteration rejoin the waiting queue (at the front, latest first) after the
      plan is built: the engine forbids preempting and admitting a request in the same plan.
    * The slot check asks for a block only when the next token needs one (code: any free block).
    * Over-long requests (``max_model_len``, off by default) and requests that can never fit above the
      watermark are rejected and popped (the code's ignored-but-not-popped quirk loops forever).
    * b̄ is the mean of all iteration durations seen (``view.last_iteration_time`` after each plan that ran
      tokens); time is the simulated clock, so every plan repeats once (``repeat=1``).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.table import RUNNING, WAITING
from llmsched_gym.core.view import EngineView


@dataclass(frozen=True, slots=True)
class SLAIConfig:
    """SLAI parameters (spec §7 table; repo ``default.yml``).

    Attributes:
        token_budget: Tokens per iteration (B).
        max_num_seqs: Cap on KV-holding requests.
        limit_total_decodes: Decodes per iteration, critical plus non-critical (D).
        time_between_tokens: Default TBT target in seconds.
        fcfs: FCFS prefill order instead of shortest prompt first.
        fixed_offset: Θ when fixed; ``None`` switches between ``below_offset`` and ``above_offset``.
        below_offset: Θ below the memory limit.
        above_offset: Θ at or above the memory limit.
        memory_limit: Fraction of used blocks at which Θ switches.
        user_priority: Strict-TBT classes first among waiting requests.
        max_model_len: Reject (re-)prefills longer than this; ``None`` = no limit.
    """

    token_budget: int = 512
    max_num_seqs: int = 128
    limit_total_decodes: int = 128
    time_between_tokens: float = 0.2
    fcfs: bool = False
    fixed_offset: float | None = None
    below_offset: float = 5.0
    above_offset: float = 10.0
    memory_limit: float = 0.96
    user_priority: bool = True
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        """Validate parameters."""
        for name in ("token_budget", "max_num_seqs", "limit_total_decodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"SLAIConfig: {name}={getattr(self, name)} must be >= 1 (defaults 512/128/128)")
        if not (math.isfinite(self.time_between_tokens) and self.time_between_tokens > 0):
            raise ValueError(f"SLAIConfig: time_between_tokens={self.time_between_tokens} must be > 0 (e.g. 0.2 s)")
        for name in ("fixed_offset", "below_offset", "above_offset"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"SLAIConfig: {name}={value} must be a finite number >= 0 (paper: 5 and 10)")
        if not 0.0 < self.memory_limit <= 1.0:
            raise ValueError(f"SLAIConfig: memory_limit={self.memory_limit} must be in (0, 1] (default 0.96)")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"SLAIConfig: max_model_len={self.max_model_len} must be >= 1 or None")


@dataclass(slots=True)
class _Batch:
    """The plan under construction."""

    free: int
    tokens: dict[int, int] = field(default_factory=dict)
    preempt: list[int] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    used: int = 0
    decodes: int = 0


class SLAI:
    """SLAI scheduler (``slai`` and its ablations); see the module docstring.

    Args:
        token_budget: Tokens per iteration (B).
        max_num_seqs: Cap on KV-holding requests.
        limit_total_decodes: Decodes per iteration (D).
        time_between_tokens: Default TBT target in seconds.
        fcfs: FCFS prefill order instead of shortest prompt first.
        fixed_offset: Fixed Θ, or ``None`` for the memory-dependent offset.
        below_offset: Θ below ``memory_limit``.
        above_offset: Θ at or above ``memory_limit``.
        memory_limit: Used-block fraction at which Θ switches.
        user_priority: Strict-TBT classes first.
        max_model_len: Optional length limit.
    """

    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        token_budget: int = 512,
        max_num_seqs: int = 128,
        limit_total_decodes: int = 128,
        time_between_tokens: float = 0.2,
        fcfs: bool = False,
        fixed_offset: float | None = None,
        below_offset: float = 5.0,
        above_offset: float = 10.0,
        memory_limit: float = 0.96,
        user_priority: bool = True,
        max_model_len: int | None = None,
    ) -> None:
        self.config = SLAIConfig(
            token_budget,
            max_num_seqs,
            limit_total_decodes,
            time_between_tokens,
            fcfs,
            fixed_offset,
            below_offset,
            above_offset,
            memory_limit,
            user_priority,
            max_model_len,
        )
        self.name = "slai"
        self.reset()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear queues, heaps, batch statistics and counters."""
        self._waiting: list[tuple[float, int, int, int]] = []  # (class TBT, length, order, id)
        self._order_back = 0
        self._order_front = 0
        self._decodes: list[tuple[float, float, int]] = []  # (LST, arrival, id)
        self._paused: deque[int] = deque()
        self._paused_set: set[int] = set()
        self._last_plan: list[int] = []
        self._batch_time_sum = 0.0
        self._batches = 0
        self.offset = self.config.fixed_offset if self.config.fixed_offset is not None else 0.0
        self.preempted_prefills = 0
        self.preempted_decodes = 0

    # ---- introspection -------------------------------------------------------------------
    @property
    def mean_batch_time(self) -> float:
        """Running mean iteration duration b̄ (0 before the first iteration)."""
        return self._batch_time_sum / self._batches if self._batches else 0.0

    def paused_decodes(self) -> list[tuple[float, int]]:
        """``(LST, id)`` of decodes waiting in the decode heap, ascending LST."""
        return sorted((lst, rid) for lst, _, rid in self._decodes)

    # ---- the iteration -------------------------------------------------------------------
    def schedule(self, view: EngineView) -> BatchPlan:
        """Critical decodes, paused prefills, new prefills, then non-critical decodes."""
        self._bookkeep(view)
        self._take_arrivals(view)
        batch = _Batch(view.free_blocks)
        self._critical_decodes(view, batch)
        self._resume_prefills(view, batch)
        self._new_prefills(view, batch)
        self._fill_decodes(view, batch)
        self._last_plan = list(batch.tokens)
        for rid in batch.preempt:
            self._push_waiting(view, rid, front=True)
        return BatchPlan.of(batch.tokens, preempt=batch.preempt, reject=batch.rejects)

    def _tbt(self, view: EngineView, rid: int) -> float:
        tbt = float(view.slo_tbt[rid])
        return tbt if math.isfinite(tbt) else self.config.time_between_tokens

    def _bookkeep(self, view: EngineView) -> None:
        """Post-batch processing: batch statistics, paused prefills, and LSTs of new decode tokens (Eq. 8)."""
        if not self._last_plan:
            return
        self._batch_time_sum += view.last_iteration_time
        self._batches += 1
        cfg = self.config
        if cfg.fixed_offset is None:
            used = (view.total_blocks - view.free_blocks) / view.total_blocks
            self.offset = cfg.above_offset if used >= cfg.memory_limit else cfg.below_offset
        shift = self.offset * self.mean_batch_time
        now = view.now
        state, generated = view.state, view.generated
        for rid in self._last_plan:
            if state[rid] != RUNNING:
                continue
            if view.pending(rid) != 1 or generated[rid] < 1:
                if rid not in self._paused_set:
                    self._paused.append(rid)
                    self._paused_set.add(rid)
            else:
                lst = now + self._tbt(view, rid) - shift
                heapq.heappush(self._decodes, (lst, float(view.arrival[rid]), rid))
        self._last_plan = []

    def _push_waiting(self, view: EngineView, rid: int, *, front: bool = False) -> None:
        cfg = self.config
        if front:
            self._order_front -= 1
            order = self._order_front
        else:
            order = self._order_back
            self._order_back += 1
        cls = self._tbt(view, rid) if cfg.user_priority else 0.0
        length = 0 if cfg.fcfs else int(view.prompt[rid] + view.generated[rid])
        heapq.heappush(self._waiting, (cls, length, order, rid))

    def _take_arrivals(self, view: EngineView) -> None:
        state = view.state
        for rid in view.arrived:
            if state[rid] == WAITING:
                self._push_waiting(view, rid)

    def _decode(self, view: EngineView, batch: _Batch, rid: int) -> None:
        """Schedule one decode token, preempting the latest paused prefill (else itself) for a block."""
        need = view.new_blocks(rid, 1)
        while need > batch.free:
            if not self._paused:
                batch.preempt.append(rid)
                batch.free += int(view.blocks[rid])
                self.preempted_decodes += 1
                return
            victim = self._paused.pop()
            self._paused_set.discard(victim)
            batch.preempt.append(victim)
            batch.free += int(view.blocks[victim])
            self.preempted_prefills += 1
        batch.free -= need
        batch.tokens[rid] = 1
        batch.used += 1
        batch.decodes += 1

    def _critical_decodes(self, view: EngineView, batch: _Batch) -> None:
        """Step 1: decodes whose LST has passed, ascending LST, within B and D."""
        heap, now, cfg = self._decodes, view.now, self.config
        while heap and batch.used < cfg.token_budget and batch.decodes < cfg.limit_total_decodes:
            if now < heap[0][0]:
                break
            self._decode(view, batch, heapq.heappop(heap)[2])

    def _resume_prefills(self, view: EngineView, batch: _Batch) -> None:
        """Step 2: paused partial prefills, FIFO, while budget remains."""
        budget = self.config.token_budget
        while self._paused and batch.used < budget:
            rid = self._paused.popleft()
            self._paused_set.discard(rid)
            n = min(view.pending(rid), budget - batch.used)
            batch.tokens[rid] = n
            batch.used += n

    def _new_prefills(self, view: EngineView, batch: _Batch) -> None:
        """Steps 3-4: admit waiting requests in priority order under the watermark and the sequence cap."""
        cfg, heap = self.config, self._waiting
        watermark = view.watermark_blocks
        usable = view.total_blocks - watermark
        active = len(view.running) - len(batch.preempt)
        while heap and batch.used < cfg.token_budget:
            rid = heap[0][3]
            pend = view.pending(rid)
            blocks = view.admission_blocks(rid)
            if (cfg.max_model_len is not None and pend > cfg.max_model_len) or blocks > usable:
                batch.rejects.append((rid, f"{pend} prefill tokens exceed max_model_len or the KV pool"))
                heapq.heappop(heap)
                continue
            if batch.free - blocks < watermark or active >= cfg.max_num_seqs:
                break
            heapq.heappop(heap)
            n = min(pend, cfg.token_budget - batch.used)
            batch.tokens[rid] = n
            batch.used += n
            batch.free -= blocks
            active += 1

    def _fill_decodes(self, view: EngineView, batch: _Batch) -> None:
        """Step 5: non-critical decodes in LST order while budget and the decode cap allow."""
        heap, cfg = self._decodes, self.config
        while heap and batch.used < cfg.token_budget and batch.decodes < cfg.limit_total_decodes:
            self._decode(view, batch, heapq.heappop(heap)[2])
