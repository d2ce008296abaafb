"""MC-SF (memory-constrained shortest first) and the α-protection baselines of its paper.

Paper: Jaillet, Jiang, Mellou, Molinaro, Podimata, Zhou, "Online Scheduling for LLM Inference with KV Cache
Constraints", arXiv 2502.07115 v5: the model (non-preemptive requests on one worker with KV memory M), Algorithm
MC-SF and its future-feasibility check (Eq. 5), the baselines MC-Benchmark, α-protection greedy and
α-protection β-clearing. Spec: ``docs/specs/baselines.md`` §12 (with §1.3–1.4, §13.5). No reference implementation
is known. The spec's description is [summary] (two third-party readings and a public simulation script).

MC-SF, per iteration: every started request runs (no pausing, no preemption). Waiting requests are tried in
ascending predicted output (ties: arrival, id); ``order="arrival"`` gives MC-Benchmark. A candidate is admitted if
the started set plus the admitted set plus the candidate stays within floor((1 − α)·total blocks) at every
projected completion instant. The first infeasible candidate stops admission (no skipping).

Deviations and decisions (engine mapping, spec §12.2):
    * A round is one iteration. Prefill is unchunked and emits the first token, so a request with p prompt
      tokens, g generated and r = max(õ − g, 1) predicted remaining rounds needs ceil((p + g + u)/bs) blocks
      in the u-th round from now (u = 0..r−1), for candidates (u = 0 is the prefill) and started requests alike.
      The check works in these block footprints at the instants u = r − 1 of every request in the set. Footprints
      never decrease, so those instants carry the peaks. :func:`projected_blocks` evaluates them in
      O(n log n + n·bs).
    * Remaining predicted output õ − g (at least 1) is both the sort key and the horizon. It equals õ for requests
      that never ran. A request past its prediction is assumed to finish this round. [decision]
    * If nothing is running and the first candidate is infeasible even alone (α > 0 or over-prediction), it is
      admitted anyway; the engine's admission check guarantees it fits the pool. Otherwise MC-SF could idle
      forever. [decision]
    * Under-prediction can overflow; the engine's LIFO ``evict_newest`` repairs it (§1.4) and the victim returns
      to the candidate set (keyed by its remaining prediction) under ``restart_mode``. ``max_num_seqs``
      (optional) caps started plus admitted requests.
    * Predictors come from :mod:`baselines.predictors` (``oracle``, ``noisy``, also written ``"noisy(0.2)"``,
      ``max_tokens``, ...) or a callable ``(view, rid) -> int``.

α-protection greedy (``alpha-greedy``) and β-clearing (``alpha-beta-clear``), spec §12.3 [summary]:
    * Every running request decodes. If resident memory <= floor((1 − α)·total blocks), waiting requests are
      admitted in arrival order until the batch holds ``max_num_seqs`` (default 256 [decision]), with no
      look-ahead. An admission also stops at the first prompt that does not fit the free blocks. [decision: the
      paper's model would overflow at once and clear]
    * Overflow is detected when planning: this round's decode growth does not fit the free blocks. Greedy then
      clears every running request. β-clearing clears each with probability β (scheduler generator, seeded in
      ``reset``), repeating until the survivors' growth fits. Survivors decode in the same plan. The public
      script's idle unit between clearing rounds is omitted (spec).
    * Cleared requests restart per ``restart_mode``. With ``"full"``, greedy clearing can cycle forever on some
      instances (as in the paper's model): after ``max_clears`` consecutive clears without a completion a
      :class:`~llmsched_gym.errors.LivelockError` is raised.
    * The default α = 0.2 is a [decision]; the paper's grid is {0.3, 0.25, 0.2, 0.1}.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from baselines._queue import decode_block_needs
from baselines.predictors import OutputPredictor, PredictorConfig
from baselines.wait import check_restart_mode
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements, RestartMode
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.errors import LivelockError

PredictFn = Callable[[EngineView, int], int]
ORDERS = ("shortest_predicted", "arrival")


def projected_blocks(base: IntArray, end: IntArray, times: IntArray, block_size: int) -> IntArray:
    """Σ over requests alive at t (``end_i >= t``) of ceil((base_i + t) / block_size), for every t in ``times``.

    With b + bs − 1 = q·bs + r and t = Q·bs + R, ceil((b + t)/bs) = q + Q + [r >= bs − R], so sorting by ``end``
    and suffix sums over q and over residue counts give every t in O(n log n + n·bs).

    Args:
        base: Per-request base tokens b_i (footprint at t is b_i + t tokens).
        end: Per-request last round index (alive while t <= end_i).
        times: Round indices to evaluate (>= 0).
        block_size: Tokens per block.

    Returns:
        Projected blocks at each time.
    """
    order = np.argsort(end, kind="stable")
    e = end[order]
    q, r = np.divmod(base[order] + block_size - 1, block_size)
    n = e.size
    suffix_q = np.zeros(n + 1, dtype=np.int64)
    suffix_q[:n] = np.cumsum(q[::-1])[::-1]
    rows = np.zeros((n + 1, block_size + 1), dtype=np.int64)
    rows[np.arange(n), r] = 1
    ge = np.cumsum(rows[:, ::-1], axis=1)[:, ::-1]
    ge = np.cumsum(ge[::-1], axis=0)[::-1]
    idx = np.searchsorted(e, times, side="left")
    big_q, small_r = np.divmod(times, block_size)
    out: IntArray = suffix_q[idx] + big_q * (n - idx) + ge[idx, block_size - small_r]
    return out


def feasible(base: IntArray, end: IntArray, block_size: int, limit: int) -> bool:
    """Whether the projected blocks stay within ``limit`` at every completion instant (MC-SF's check)."""
    if base.size == 0:
        return True
    return bool(projected_blocks(base, end, np.unique(end), block_size).max() <= limit)


def make_predictor(spec: str | PredictorConfig | PredictFn, eps: float) -> OutputPredictor | PredictFn:
    """A predictor from a kind name (``"noisy(0.2)"`` sets eps), a :class:`PredictorConfig` or a callable."""
    if isinstance(spec, PredictorConfig):
        return OutputPredictor(spec)
    if isinstance(spec, str):
        m = re.fullmatch(r"(\w+)\(([\d.]+)\)", spec.strip())
        kind, eps = (m.group(1), float(m.group(2))) if m else (spec, eps)
        return OutputPredictor(PredictorConfig(kind, eps=eps))
    if callable(spec):
        return spec
    raise ValueError(f"MCSF: predictor={spec!r} must be a predictor name, a PredictorConfig or a callable")


@dataclass(frozen=True, slots=True)
class MCSFConfig:
    """MC-SF parameters (spec §12.2 table).

    Attributes:
        alpha: Memory protection fraction α (limit floor((1 − α)·total blocks)).
        order: ``"shortest_predicted"`` (MC-SF) or ``"arrival"`` (MC-Benchmark).
        max_num_seqs: Optional cap on started plus admitted requests.
        restart_mode: Engine restart mode on eviction.
    """

    alpha: float = 0.0
    order: str = "shortest_predicted"
    max_num_seqs: int | None = None
    restart_mode: str = "recompute"

    def __post_init__(self) -> None:
        """Validate parameters."""
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"MCSFConfig: alpha={self.alpha} must be in [0, 1) (0 with oracle, 0.1 with noise)")
        if self.order not in ORDERS:
            raise ValueError(f"MCSFConfig: order={self.order!r} must be one of {', '.join(ORDERS)}")
        if self.max_num_seqs is not None and self.max_num_seqs < 1:
            raise ValueError(f"MCSFConfig: max_num_seqs={self.max_num_seqs} must be >= 1 or None (no cap)")
        check_restart_mode("MCSFConfig", self.restart_mode)


class MCSF:
    """MC-SF (``mcsf``) and MC-Benchmark (``mc-benchmark``); see the module docstring.

    Args:
        predictor: Predictor name, :class:`PredictorConfig` or callable ``(view, rid) -> int``.
        alpha: Memory protection fraction.
        order: ``"shortest_predicted"`` or ``"arrival"``.
        max_num_seqs: Optional sequence cap.
        eps: Noise half-width for ``predictor="noisy"``.
        restart_mode: ``"recompute"`` (default) or ``"full"`` (paper presets).
    """

    def __init__(
        self,
        predictor: str | PredictorConfig | PredictFn = "oracle",
        alpha: float = 0.0,
        order: str = "shortest_predicted",
        max_num_seqs: int | None = None,
        eps: float = 0.5,
        restart_mode: RestartMode = "recompute",
    ) -> None:
        self.config = MCSFConfig(alpha, order, max_num_seqs, restart_mode)
        self.name = "mcsf" if order == "shortest_predicted" else "mc-benchmark"
        self.requirements = EngineRequirements(allocation="prompt", overflow="evict_newest", restart_mode=restart_mode)
        self.predictor = make_predictor(predictor, eps)
        self._heap: list[tuple[float, float, int]] = []

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the candidate set and reseed the predictor."""
        self._heap = []
        if isinstance(self.predictor, OutputPredictor):
            self.predictor.reset(seed)

    def _predict(self, view: EngineView, rid: int) -> int:
        p = self.predictor
        return p.predict(view, rid) if isinstance(p, OutputPredictor) else int(p(view, rid))

    def _remaining(self, view: EngineView, rid: int) -> int:
        return max(self._predict(view, rid) - int(view.generated[rid]), 1)

    def _push(self, view: EngineView, rid: int) -> None:
        arrival = float(view.arrival[rid])
        key = float(self._remaining(view, rid)) if self.config.order == "shortest_predicted" else arrival
        heapq.heappush(self._heap, (key, arrival, rid))

    def schedule(self, view: EngineView) -> BatchPlan:
        """Run every started request and admit the feasible prefix of the sorted candidates."""
        if isinstance(self.predictor, OutputPredictor):
            self.predictor.observe(view, view.finished)
        for rid in view.evicted:
            self._push(view, rid)
        state = view.state
        for rid in view.arrived:
            if state[rid] == WAITING:
                self._push(view, rid)
        running = view.running
        tokens = {rid: view.pending(rid) for rid in running.tolist()}
        if not self._heap:
            if not tokens:
                return BatchPlan.idle()
            return BatchPlan.of(tokens, repeat=UNBOUNDED_REPEAT)
        for rid in self._admit(view, running):
            tokens[rid] = view.pending(rid)
        if not tokens:
            return BatchPlan.idle()
        return BatchPlan.of(tokens)

    def _admit(self, view: EngineView, running: IntArray) -> list[int]:
        """Pop candidates in order while the set stays feasible; stop at the first that does not."""
        cfg = self.config
        bs = view.block_size
        limit = math.floor((1.0 - cfg.alpha) * view.total_blocks + 1e-9)
        base = [int(view.prompt[r] + view.generated[r]) for r in running.tolist()]
        end = [self._remaining(view, r) - 1 for r in running.tolist()]
        admitted: list[int] = []
        while self._heap:
            if cfg.max_num_seqs is not None and len(base) >= cfg.max_num_seqs:
                break
            rid = self._heap[0][2]
            base.append(int(view.prompt[rid] + view.generated[rid]))
            end.append(self._remaining(view, rid) - 1)
            ok = feasible(np.asarray(base, dtype=np.int64), np.asarray(end, dtype=np.int64), bs, limit)
            if not ok and len(base) > 1:
                break
            heapq.heappop(self._heap)
            admitted.append(rid)
        return admitted


@dataclass(frozen=True, slots=True)
class AlphaGreedyConfig:
    """α-protection greedy / β-clearing parameters (spec §12.3).

    Attributes:
        alpha: Admission gate: admit only while resident blocks <= floor((1 − α)·total).
        beta: ``None`` = clear all on overflow; else the per-request clearing probability.
        max_num_seqs: Batch cap (decodes plus new prompts).
        restart_mode: Engine restart mode for cleared requests.
        max_clears: Consecutive clearing rounds without a completion before LivelockError.
    """

    alpha: float = 0.2
    beta: float | None = None
    max_num_seqs: int = 256
    restart_mode: str = "recompute"
    max_clears: int = 10_000

    def __post_init__(self) -> None:
        """Validate parameters."""
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"AlphaGreedyConfig: alpha={self.alpha} must be in [0, 1) (paper grid 0.1–0.3)")
        if self.beta is not None and not 0.0 < self.beta <= 1.0:
            raise ValueError(f"AlphaGreedyConfig: beta={self.beta} must be in (0, 1] or None (clear all)")
        if self.max_num_seqs < 1 or self.max_clears < 1:
            raise ValueError(
                f"AlphaGreedyConfig: max_num_seqs={self.max_num_seqs} and max_clears={self.max_clears} must be >= 1"
            )
        check_restart_mode("AlphaGreedyConfig", self.restart_mode)


class AlphaGreedy:
    """α-protection greedy (``alpha-greedy``) and β-clearing (``alpha-beta-clear``); see the module docstring.

    Args:
        alpha: Admission gate fraction.
        beta: Clearing probability; ``None`` clears every running request.
        max_num_seqs: Batch cap.
        restart_mode: ``"recompute"`` (default) or ``"full"`` (paper presets).
        max_clears: Livelock guard (consecutive clears without a completion).
    """

    def __init__(
        self,
        alpha: float = 0.2,
        beta: float | None = None,
        max_num_seqs: int = 256,
        restart_mode: RestartMode = "recompute",
        max_clears: int = 10_000,
    ) -> None:
        self.config = AlphaGreedyConfig(alpha, beta, max_num_seqs, restart_mode, max_clears)
        self.name = "alpha-greedy" if beta is None else "alpha-beta-clear"
        self.requirements = EngineRequirements(allocation="prompt", overflow="error", restart_mode=restart_mode)
        self.reset()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the queue and counters and reseed the clearing generator."""
        self._rng = np.random.default_rng(seed)
        self._heap: list[int] = []
        self._streak = 0
        self.clears = 0

    def schedule(self, view: EngineView) -> BatchPlan:
        """Clear on overflow, else decode everything and admit greedily below the α gate."""
        for rid in view.evicted:
            heapq.heappush(self._heap, rid)
        state = view.state
        for rid in view.arrived:
            if state[rid] == WAITING:
                heapq.heappush(self._heap, rid)
        if view.finished:
            self._streak = 0
        running = view.running
        need = decode_block_needs(view, running)
        free = view.free_blocks
        if int(need.sum()) > free:
            return self._clear(view, running, need, free)
        tokens = {rid: view.pending(rid) for rid in running.tolist()}
        free -= int(need.sum())
        admitted = 0
        cfg = self.config
        if view.total_blocks - view.free_blocks <= math.floor((1.0 - cfg.alpha) * view.total_blocks + 1e-9):
            while self._heap and len(tokens) < cfg.max_num_seqs:
                blocks = view.admission_blocks(self._heap[0])
                if blocks > free:
                    break
                rid = heapq.heappop(self._heap)
                tokens[rid] = view.pending(rid)
                free -= blocks
                admitted += 1
        if not tokens:
            return BatchPlan.idle()
        if admitted:
            return BatchPlan.of(tokens)
        return BatchPlan.of(tokens, repeat=UNBOUNDED_REPEAT, arrival_sensitive=not self._heap)

    def _clear(self, view: EngineView, running: IntArray, need: IntArray, free: int) -> BatchPlan:
        """Clear all (greedy) or each with probability β until the survivors' growth fits."""
        self.clears += 1
        self._streak += 1
        if self._streak > self.config.max_clears:
            raise LivelockError(
                f"{self.name}: {self._streak} consecutive clearing rounds without a completion at t={view.now:.6f}; "
                "the instance cycles (use restart_mode='recompute' or a larger alpha)"
            )
        beta = self.config.beta
        if beta is None:
            victims = running
            alive = np.zeros(running.size, dtype=bool)
        else:
            alive = np.ones(running.size, dtype=bool)
            freed = 0
            while int(need[alive].sum()) > free + freed:
                cleared = alive & (self._rng.random(running.size) < beta)
                freed += int(view.blocks[running[cleared]].sum())
                alive &= ~cleared
            victims = running[~alive]
        for rid in victims.tolist():
            heapq.heappush(self._heap, rid)
        tokens = {rid: view.pending(rid) for rid in running[alive].tolist()}
        return BatchPlan.of(tokens, preempt=victims.tolist())
