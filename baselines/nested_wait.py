"""Nested WAIT: segment gates for unknown output lengths.

Paper: Ao, Luo, Simchi-Levi, Wang, "Optimizing LLM Inference: Fluid-Guided Online Scheduling with Memory
Constraints", arXiv 2504.11320 v4: Nested WAIT §5 (Algorithm 2), the event-driven Algorithm 3 (App. H.1),
Thm 7 and Eq. 12–14, segments App. A.2 (Eq. 16–17), calibration §6. Reference code: ``Luoxiaogan/vidur_or``
``general_nested_booking_limit_replica_scheduler.py``. Spec: ``docs/specs/baselines.md`` §11 (with §10.4, §1.2–1.4).

Decode progress is cut at boundaries r_1 < … < r_L. A request advances through segments and reveals its length
only by finishing. Each iteration opens the longest prefix of segments whose entry queues (the external waiting
queue for segment 1, the resident boundary queue for later ones) hold at least their gate. It then selects up to
each stage's cap in every open segment: stage-0 selections are admitted and prefilled, the rest decode. Everything
else is paused with its KV. Before launch a LIFO repair evicts unselected boundary residents while the projected
memory exceeds C. The output-length *distribution* is configuration. The scheduler never reads a request's true
length (``oracle_output_len``), and a test enforces this.

Deviations and decisions:
    * Engine stage g = tokens generated (the prefill emits token 1). Segment 1 is g in [0, r_1), segment k >= 2 is
      g in [r_{k-1}, r_k): a request with output o leaves segment k iff o <= r_k, and survivors wait at g = r_k,
      the entry (boundary) stage of segment k + 1. Δ_1 = r_1 stages (prefill included), Δ_k = r_k − r_{k-1}; this
      is the paper's decode-stage count with the prefill merged into the first decode, as in the code. [decision]
    * Calibrated caps: B_k = round(Δ_k n_k) (half up) spread over the segment's stages with the extra units on the
      earliest stages, then clamped to >= 1 per stage (a 0 cap would strand requests). Stage 0 and each gate use
      the cap of the segment's first stage. [decision, spec §11.2 / §15.5]
    * ``thresholds="fluid"``: q_k = min(p_{k+1} + η, 0.99) as in calibration; n_1 = (1 + η)·Λ_1 d0 / (1 − Λ_1 d1 W),
      the smallest drift-feasible value (Eq. 12/16) times (1 + η), with W = Σ_k c_k (l + s̄_k) δ_k; raises
      ValueError if p_k < q_k < 1 fails, Λ_1 d1 W >= 1 or M^π > C. Caps as in calibrated mode. [decision]
    * ``thresholds="code"``: the spec's reference-code rule (segment budgets L_k, remain_k, bypassed first gate,
      first failing gate closes the rest). occupied_k counts residents past the segment's entry stage (code).
    * Without ``output_dist`` the distribution is uniform on 1..horizon (horizon 512 unless given). [decision]
    * Requests longer than r_L stay in the last segment, using its last stage's cap. [decision, spec §11]
    * Memory repair: projected = used + this iteration's decode growth + admitted prompts (finishing requests are
      assumed to stay). While it exceeds C (``capacity_tokens`` or the pool, in blocks), evict the most recently
      admitted unselected boundary resident. If it still exceeds C, drop the newest admissions (keeping one when
      nothing is resident). Only then does the engine's ``evict_newest`` apply. [decision: admission dropping]
    * Within a stage the earliest admitted go first; the external queue is in arrival order and evicted requests
      return to their arrival position. [decision, spec §15.5]
    * Release timeout and flush as in WAIT (§10.4, timer from the first held decision after a batch): a release
      or flush batch opens every segment with its caps (code mode: without remain_k).
    * The first ``schedule`` after ``reset`` takes the external queue from ``view.waiting``, so the scheduler may
      attach to a running engine. Residents are read from the view each iteration. Decisions use ``repeat=1``.
    * :meth:`NestedWAIT.buffer_check` implements Eq. 14/17 and is not applied automatically. m = number of
      segments. θ_k is the positive root of e^{-θ n_k}(1 − p_k + p_k e^θ)^{n_{k-1}} = 1. With n_k >= n_{k-1} there
      is none and that buffer term is 0.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Sequence

import numpy as np

from baselines._nested_plan import MODES, Groups, NestedWAITConfig, SegmentPlan, build_plan, paper_terms, theta_root
from baselines._queue import decode_block_needs
from baselines._wait_common import ReleaseClock
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements, RestartMode
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

__all__ = ["MODES", "NestedWAIT", "NestedWAITConfig", "SegmentPlan", "build_plan"]


class NestedWAIT:
    """Nested WAIT scheduler (``nested-wait``); see the module docstring.

    Args:
        thresholds: ``"calibrated"``, ``"fluid"`` or ``"code"``.
        tl: Total cap.
        num_segments: Number of equal-width segments.
        boundaries: Explicit segment boundaries.
        horizon: Decode horizon r_L.
        eta: Continuation margin.
        output_dist: Output-length distribution ``[(length, weight), ...]``.
        release_timeout_s: Release timeout (s) or ``None``.
        capacity_tokens: Memory C (tokens) for the repair and fluid mode; ``None`` = the pool.
        d0: Iteration intercept (s).
        d1: Iteration time per KV token (s).
        arrival_rate: Total arrival rate (fluid mode).
        prompt_len: Prompt length l (fluid mode, buffer check).
        restart_mode: ``"recompute"`` (default) or ``"full"`` (paper presets).
    """

    def __init__(
        self,
        thresholds: str = "calibrated",
        tl: int = 64,
        num_segments: int = 3,
        boundaries: Sequence[int] | None = None,
        horizon: int | None = None,
        eta: float = 0.05,
        output_dist: Sequence[tuple[int, float]] | None = None,
        release_timeout_s: float | None = 1.0,
        capacity_tokens: int | None = None,
        d0: float | None = None,
        d1: float | None = None,
        arrival_rate: float | None = None,
        prompt_len: float | None = None,
        restart_mode: RestartMode = "recompute",
    ) -> None:
        self.config = NestedWAITConfig(
            thresholds,
            tl,
            num_segments,
            None if boundaries is None else tuple(int(b) for b in boundaries),
            horizon,
            eta,
            None if output_dist is None else tuple((int(n), float(w)) for n, w in output_dist),
            release_timeout_s,
            capacity_tokens,
            d0,
            d1,
            arrival_rate,
            prompt_len,
            restart_mode,
        )
        self.name = "nested-wait"
        self.requirements = EngineRequirements(allocation="prompt", overflow="evict_newest", restart_mode=restart_mode)
        self.clock = ReleaseClock(release_timeout_s)
        self._lazy = thresholds == "fluid" and capacity_tokens is None
        self.plan: SegmentPlan | None = None if self._lazy else build_plan(self.config)
        self.reset()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the external queue, the release timer and statistics."""
        self._queue: list[int] = []
        self._attached = False
        if self._lazy:
            self.plan = None
        self.clock.reset()
        self.releases = 0
        self.repairs = 0

    def buffer_check(self, capacity_tokens: float, horizon_s: float, delta: float) -> float:
        """Memory the safety buffer of Eq. 14/17 requires over ``horizon_s`` with overflow probability ``delta``.

        Args:
            capacity_tokens: Memory C (tokens) to check.
            horizon_s: Time horizon T (seconds).
            delta: Allowed overflow probability.

        Returns:
            M^π + Σ_{k>=2} (l + r_{k-1})(n_k + ln(m(1 + T/d0)/δ) / θ_k).

        Raises:
            ValueError: Missing d0 / prompt_len, bad arguments, or C below the requirement.
        """
        cfg = self.config
        if cfg.d0 is None or cfg.d0 <= 0 or cfg.prompt_len is None:
            raise ValueError("NestedWAIT.buffer_check needs d0 > 0 and prompt_len in the configuration")
        if not 0 < delta < 1 or horizon_s <= 0:
            raise ValueError(f"NestedWAIT.buffer_check: delta={delta} must be in (0, 1) and T={horizon_s} > 0")
        plan = self.plan or build_plan(cfg, capacity_tokens)
        r, n, prompt = plan.bounds, plan.n, cfg.prompt_len
        need = sum(nk * t for nk, t in zip(n, paper_terms(r, prompt), strict=True))
        log_term = math.log(len(r) * (1 + horizon_s / cfg.d0) / delta)
        for k in range(1, len(r)):
            if n[k] <= plan.p[k - 1] * n[k - 1]:
                raise ValueError(f"NestedWAIT.buffer_check: n_{k + 1} <= p_{k + 1}·n_{k}; the drift condition fails")
            need += (prompt + r[k - 1]) * (n[k] + log_term / theta_root(n[k - 1], n[k], plan.p[k - 1]))
        if capacity_tokens < need:
            raise ValueError(f"NestedWAIT.buffer_check: C={capacity_tokens} < required {need:.6g} tokens")
        return need

    # ---- the iteration -------------------------------------------------------------------
    def _sync(self, view: EngineView) -> None:
        if not self._attached:
            self._queue = view.waiting.tolist()
            self._attached = True
            return
        for rid in view.evicted:
            insort(self._queue, rid)
        state = view.state
        self._queue.extend(r for r in view.arrived if state[r] == WAITING)

    def schedule(self, view: EngineView) -> BatchPlan:
        """Open the gated prefix of segments, select per-stage caps, repair memory (or hold)."""
        self._sync(view)
        if self.plan is None:
            self.plan = build_plan(self.config, view.total_blocks * view.block_size)
        running = view.running
        if not running.size and not self._queue:
            self.clock.reset()
            return BatchPlan.idle()
        groups: Groups = {}
        gen = view.generated
        for rid in running.tolist():
            groups.setdefault(int(gen[rid]), []).append(rid)
        n_open = len(self.plan.bounds) if view.arrivals_done else self._open_prefix(groups)
        plan = self._launch(view, groups, n_open, remain=not view.arrivals_done)
        if plan is None:
            if not self.clock.due(view.now):
                return BatchPlan.idle(self.clock.deadline)
            self.releases += 1
            plan = self._launch(view, groups, len(self.plan.bounds), remain=False)
        if plan is None:
            return BatchPlan.idle(self.clock.deadline)
        self.clock.reset()
        return plan

    def _open_prefix(self, groups: Groups) -> int:
        assert self.plan is not None
        k = 0
        for k, gate in enumerate(self.plan.gates):
            entry = len(self._queue) if k == 0 else len(groups.get(self.plan.bounds[k - 1], ()))
            if entry < gate:
                return k
        return k + 1

    def _launch(self, view: EngineView, groups: Groups, n_open: int, remain: bool) -> BatchPlan | None:
        """Select the open segments' stages, then repair memory; ``None`` when nothing is selected."""
        assert self.plan is not None
        sp = self.plan
        left = self._remain(groups) if remain and sp.remain else None
        decodes: list[int] = []
        for g, ids in groups.items():
            k = sp.segment(g)
            if k >= n_open:
                continue
            cap = sp.cap(g)
            if left is not None and g == sp.start(k):
                cap = min(cap, left[k])
            decodes.extend(ids[: max(cap, 0)])
        cap0 = sp.cap(0) if left is None else min(sp.cap(0), left[0])
        admits = self._queue[: max(cap0, 0)] if n_open > 0 else []
        victims, admits = self._repair(view, groups, decodes, admits)
        if not decodes and not admits and not victims:
            return None
        del self._queue[: len(admits)]
        for rid in victims:
            insort(self._queue, rid)
        tokens = dict.fromkeys(decodes, 1)
        tokens.update((rid, view.pending(rid)) for rid in admits)
        return BatchPlan.of(tokens, preempt=victims)

    def _remain(self, groups: Groups) -> list[int]:
        """Code mode: remain_k = floor(L_k) − residents past segment k's entry stage."""
        sp = self.plan
        assert sp is not None
        left = list(sp.budgets)
        for g, ids in groups.items():
            k = sp.segment(g)
            if g > sp.start(k):
                left[k] -= len(ids)
        return left

    def _repair(
        self, view: EngineView, groups: Groups, decodes: list[int], admits: list[int]
    ) -> tuple[list[int], list[int]]:
        """LIFO boundary repair, then admission dropping (module docstring); returns victims and admissions."""
        assert self.plan is not None
        limit = view.total_blocks
        if self.config.capacity_tokens is not None:
            limit = min(limit, self.config.capacity_tokens // view.block_size)
        growth = int(decode_block_needs(view, np.asarray(decodes, dtype=np.int64)).sum())
        adm = [view.admission_blocks(rid) for rid in admits]
        projected = view.total_blocks - view.free_blocks + growth + sum(adm)
        victims: list[int] = []
        if projected > limit:
            chosen = set(decodes)
            cands = [r for b in self.plan.bounds[:-1] for r in groups.get(b, ()) if r not in chosen]
            cands.sort(key=lambda r: -int(view.admit_seq[r]))
            for rid in cands:
                if projected <= limit:
                    break
                victims.append(rid)
                projected -= int(view.blocks[rid])
            self.repairs += len(victims)
        keep = len(admits)
        floor = 1 if not decodes and len(victims) == len(view.running) else 0
        while projected > limit and keep > floor:
            keep -= 1
            projected -= adm[keep]
        return victims, admits[:keep]
