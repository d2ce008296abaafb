"""Nested WAIT: segment gates for unknown output lengths.

Paper: Ao, Luo, Simchi-Levi, Wang, "Optimizing LLM Inference: Fluid-Guided Online Scheduling with Memory
Constraints", arXiv 2504.11320 v4: Nested WAIT §5 (Algorithm 2), the event-driven Algorithm 3 (App. H.1),
Thm 7 and Eq. 12–14, segments App. A.2 (Eq. 16–17), calibration §6. Reference code: ``Luoxiaogan/vidur_or``
``general_nested_booking_limit_replica_scheduler.py``. Spec: ``specs/baselines.md`` §11 (with §10.4, §1.2–1.4).

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
from bisect import bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from baselines._queue import decode_block_needs
from baselines.wait import ReleaseClock, check_restart_mode, check_timeout
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements, RestartMode
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

MODES = ("calibrated", "fluid", "code")


def _half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


@dataclass(frozen=True, slots=True)
class NestedWAITConfig:
    """Nested WAIT parameters (spec §11 table).

    Attributes:
        thresholds: ``"calibrated"`` (paper experiments), ``"fluid"`` (theory) or ``"code"`` (reference code).
        tl: Total cap (calibrated and code modes).
        num_segments: L, equal-width segments of the horizon (ignored with ``boundaries``).
        boundaries: Explicit r_1 < … < r_L; ``None`` = equal width.
        horizon: r_L; ``None`` = the distribution's largest length (512 without a distribution).
        eta: Margin on continuation probabilities.
        output_dist: Output-length distribution ``((length, weight), ...)``; ``None`` = uniform on 1..horizon.
        release_timeout_s: Release timeout; ``None`` = pure paper rule.
        capacity_tokens: Memory C of the repair and fluid modes; ``None`` = the KV pool.
        d0: Iteration-time intercept (fluid mode, buffer check).
        d1: Iteration time per KV token (fluid mode).
        arrival_rate: Total arrival rate Λ_1 (fluid mode).
        prompt_len: Prompt length l (segment-wise maximum for heterogeneous prompts; fluid mode, buffer check).
        restart_mode: Engine restart mode on eviction.
    """

    thresholds: str = "calibrated"
    tl: int = 64
    num_segments: int = 3
    boundaries: tuple[int, ...] | None = None
    horizon: int | None = None
    eta: float = 0.05
    output_dist: tuple[tuple[int, float], ...] | None = None
    release_timeout_s: float | None = 1.0
    capacity_tokens: int | None = None
    d0: float | None = None
    d1: float | None = None
    arrival_rate: float | None = None
    prompt_len: float | None = None
    restart_mode: str = "recompute"

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.thresholds not in MODES:
            raise ValueError(f"NestedWAITConfig: thresholds={self.thresholds!r} must be one of {', '.join(MODES)}")
        if self.tl < 1 or self.num_segments < 1:
            raise ValueError(f"NestedWAITConfig: tl={self.tl} and num_segments={self.num_segments} must be >= 1")
        b = self.boundaries
        if b is not None and (not b or b[0] < 1 or any(x >= y for x, y in pairwise(b))):
            raise ValueError(f"NestedWAITConfig: boundaries={b} must be strictly increasing integers >= 1")
        if self.horizon is not None and self.horizon < self.num_segments:
            raise ValueError(f"NestedWAITConfig: horizon={self.horizon} must be >= num_segments={self.num_segments}")
        if not 0.0 <= self.eta < 1.0:
            raise ValueError(f"NestedWAITConfig: eta={self.eta} must be in [0, 1) (paper: 0.05)")
        dist = self.output_dist
        if dist is not None and (not dist or any(n < 1 or w < 0 for n, w in dist) or sum(w for _, w in dist) <= 0):
            raise ValueError("NestedWAITConfig: output_dist must be ((length >= 1, weight >= 0), ...), total > 0")
        check_timeout("NestedWAITConfig", self.release_timeout_s)
        if self.capacity_tokens is not None and self.capacity_tokens < 1:
            raise ValueError(f"NestedWAITConfig: capacity_tokens={self.capacity_tokens} must be >= 1 or None")
        needs = (self.d0, self.d1, self.arrival_rate, self.prompt_len)
        if self.thresholds == "fluid" and any(x is None or x < 0 for x in needs):
            raise ValueError("NestedWAITConfig: thresholds='fluid' needs d0, d1, arrival_rate, prompt_len >= 0")
        check_restart_mode("NestedWAITConfig", self.restart_mode)

    def bounds(self) -> tuple[int, ...]:
        """Segment boundaries r_1 < … < r_L."""
        if self.boundaries is not None:
            return self.boundaries
        h = self.horizon or (max(n for n, _ in self.output_dist) if self.output_dist else 512)
        if h < self.num_segments:
            raise ValueError(f"NestedWAITConfig: horizon {h} is shorter than num_segments={self.num_segments}")
        return tuple(_half_up(k * h / self.num_segments) for k in range(1, self.num_segments + 1))

    def survival(self, r: int) -> float:
        """P(output > r) under the configured distribution."""
        if self.output_dist is None:
            h = self.bounds()[-1]
            return min(1.0, max(0.0, (h - r) / h))
        total = sum(w for _, w in self.output_dist)
        return sum(w for n, w in self.output_dist if n > r) / total


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """Segment boundaries and integer caps.

    Attributes:
        bounds: r_1 < … < r_L.
        p: Continuation probabilities p_k, k = 2..L.
        n: Real per-stage thresholds n_k.
        caps: Per-stage caps of every segment.
        gates: Entry threshold of every segment (0 = bypassed).
        budgets: Segment caps B_k = round(Δ_k n_k); code mode: floor(L_k).
        remain: Code mode: cap each entry stage by remain_k = floor(L_k) − occupied_k.
    """

    bounds: tuple[int, ...]
    p: tuple[float, ...]
    n: tuple[float, ...]
    caps: tuple[tuple[int, ...], ...]
    gates: tuple[int, ...]
    budgets: tuple[int, ...]
    remain: bool = False

    def start(self, k: int) -> int:
        """First stage of segment ``k`` (0-based)."""
        return 0 if k == 0 else self.bounds[k - 1]

    def segment(self, g: int) -> int:
        """Segment (0-based) of stage ``g``; beyond r_L it is the last."""
        return min(bisect_right(self.bounds, g), len(self.bounds) - 1)

    def cap(self, g: int) -> int:
        """Cap of stage ``g``."""
        caps = self.caps[self.segment(g)]
        return caps[min(g - self.start(self.segment(g)), len(caps) - 1)]


def _spread(n: Sequence[float], widths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    out = []
    for nk, d in zip(n, widths, strict=True):
        b = _half_up(d * nk)
        out.append(tuple(max(1, b // d + (i < b % d)) for i in range(d)))
    return tuple(out)


def build_plan(cfg: NestedWAITConfig, capacity_tokens: float | None = None) -> SegmentPlan:
    """Segment caps for ``cfg`` (``capacity_tokens`` = C for fluid mode when the config has none)."""
    bounds = cfg.bounds()
    widths = [r - s for r, s in zip(bounds, (0, *bounds[:-1]), strict=True)]
    surv = [cfg.survival(r) for r in (0, *bounds)]
    p = tuple(surv[k] / surv[k - 1] if surv[k - 1] > 0 else 0.0 for k in range(1, len(bounds)))
    if cfg.thresholds == "code":
        lam = surv[: len(bounds)]
        total = sum(d * x for d, x in zip(widths, lam, strict=True))
        budgets = [cfg.tl * d * x / total for d, x in zip(widths, lam, strict=True)]
        n_int = [max(1, math.ceil(b / d - 1e-9)) for b, d in zip(budgets, widths, strict=True)]
        caps = tuple((k,) * d for k, d in zip(n_int, widths, strict=True))
        gates = (0, *n_int[1:])
        floor_b = tuple(math.floor(b + 1e-9) for b in budgets)
        n_real = tuple(b / d for b, d in zip(budgets, widths, strict=True))
        return SegmentPlan(bounds, p, n_real, caps, gates, floor_b, remain=True)
    q = [min(x + cfg.eta, 0.99) for x in p]
    c = [math.prod(q[:k]) for k in range(len(bounds))]
    if cfg.thresholds == "fluid":
        n1 = _fluid_n1(cfg, bounds, p, q, c, capacity_tokens)
    else:
        n1 = cfg.tl / sum(d * ck for d, ck in zip(widths, c, strict=True))
    n = tuple(n1 * ck for ck in c)
    caps = _spread(n, widths)
    seg_budgets = tuple(_half_up(d * nk) for d, nk in zip(widths, n, strict=True))
    return SegmentPlan(bounds, p, n, caps, tuple(seg[0] for seg in caps), seg_budgets)


def _paper_terms(bounds: Sequence[int], prompt: float) -> list[float]:
    """(l + s̄_k)·δ_k per segment with the paper's δ_1 = r_1 + 1 and s̄ (Eq. 16)."""
    out = [(prompt + bounds[0] / 2) * (bounds[0] + 1)]
    for a, b in pairwise(bounds):
        out.append((prompt + (a + 1 + b) / 2) * (b - a))
    return out


def _fluid_n1(
    cfg: NestedWAITConfig,
    bounds: Sequence[int],
    p: Sequence[float],
    q: Sequence[float],
    c: Sequence[float],
    capacity: float | None,
) -> float:
    assert cfg.d0 is not None and cfg.d1 is not None and cfg.arrival_rate is not None and cfg.prompt_len is not None
    for k, (pk, qk) in enumerate(zip(p, q, strict=True), start=2):
        if not pk < qk < 1:
            raise ValueError(f"NestedWAIT fluid: need p_{k}={pk:.4g} < n_{k}/n_{k - 1}={qk:.4g} < 1; raise eta")
    w = sum(ck * t for ck, t in zip(c, _paper_terms(bounds, cfg.prompt_len), strict=True))
    lam = cfg.arrival_rate
    if lam * cfg.d1 * w >= 1:
        raise ValueError(f"NestedWAIT fluid: Λ_1·d1·W = {lam * cfg.d1 * w:.4g} >= 1, no stable thresholds")
    n1 = (1 + cfg.eta) * lam * cfg.d0 / (1 - lam * cfg.d1 * w)
    cap = cfg.capacity_tokens or capacity
    if cap is not None and n1 * w > cap:
        raise ValueError(f"NestedWAIT fluid: M^π={n1 * w:.6g} exceeds C={cap}; use thresholds='calibrated'")
    return n1


def _theta(n_prev: float, n_k: float, p_k: float) -> float:
    """Positive root of -θ n_k + n_prev·ln(1 − p + p e^θ) = 0 (inf when none exists)."""

    def f(t: float) -> float:
        return -t * n_k + n_prev * math.log1p(p_k * math.expm1(t))

    if n_k >= n_prev or p_k <= 0:
        return math.inf
    hi = 1.0
    while f(hi) <= 0:
        hi *= 2
    lo = 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) <= 0 else (lo, mid)
    return hi


Groups = dict[int, list[int]]
"""Resident requests by stage g, in admission order."""


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
        need = sum(nk * t for nk, t in zip(n, _paper_terms(r, prompt), strict=True))
        log_term = math.log(len(r) * (1 + horizon_s / cfg.d0) / delta)
        for k in range(1, len(r)):
            if n[k] <= plan.p[k - 1] * n[k - 1]:
                raise ValueError(f"NestedWAIT.buffer_check: n_{k + 1} <= p_{k + 1}·n_{k}; the drift condition fails")
            need += (prompt + r[k - 1]) * (n[k] + log_term / _theta(n[k - 1], n[k], plan.p[k - 1]))
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
