"""WAIT (Waiting for Accumulated Inference Threshold): per-type batching thresholds for known output lengths.

Paper: Ao, Luo, Simchi-Levi, Wang, "Optimizing LLM Inference: Fluid-Guided Online Scheduling with Memory
Constraints", arXiv 2504.11320 v4: model §2 (Eq. 1 iteration time, §2.3 LIFO eviction and restart, §2.4 pausing),
fluid equilibrium §3 (Eq. 8–10), WAIT Algorithm 1 and the threshold conditions Eq. 11 (§4), experiments §6,
App. H. Reference code: ``Luoxiaogan/vidur_or``, ``booking_limit`` and ``modified_booking_limit`` replica
schedulers. Spec: ``specs/baselines.md`` §10 (with §1.2–1.4 and §13.4).

Each type j has a per-stage threshold n_j. Type j is eligible when at least n_j of its requests wait; an iteration
then admits (fully prefills) up to n_j of them and advances up to n_j residents of every stage of every eligible
type by one token; everything else is paused with its KV. With no eligible type no batch is formed.

Deviations and decisions:
    * Stage of a resident request = its decode progress ``view.generated`` (0 = waiting / prefill). The engine's
      prefill emits the first token, so a request with output o runs o iterations (stages 0..o-1); the table's
      output length is still used as the paper's l'_j in every formula (l'_j + 1 stages). [decision]
    * Within a stage the earliest admitted go first; the waiting queue of a type is in arrival order and evicted
      requests return to their arrival position. [decision, spec §15.5]
    * Types come from ``view.type_label``; without a label, from the true output length: the type with the
      smallest l'_j >= o, else the largest l'_j (§10.7). Without a ``types`` table (registry default) the table is
      estimated online: one type per label (all unlabeled requests form type 0), rate proportional to the
      arrival count, prompt and output length the means of the arrivals' (true) lengths; cap thresholds are
      recomputed when a request arrives. [decision]
    * Cap mode (§10.2): n_j = max(1, floor(L_j / (l'_j + 1))), L_j = tl·λ_j(l'_j + 1) / Σ_k λ_k(l'_k + 1).
      Fluid mode: :func:`fluid_thresholds` (§10.2 algorithm); types with rate 0 get threshold 0 there and 1 at
      run time; the allowance budget in fluid mode is L_j = n_j(l'_j + 1). [decision]
    * ``hold="allowance"`` releases when *some* type has at least its allowance waiting (spec §10.3; the code
      checks every type); a type with allowance <= 0 counts as satisfied (code). ``"all-types"`` waits for every
      type with positive rate (online table: every type seen). Both run every in-flight request uncapped (code).
    * A ``type_label`` outside the table raises ValueError (a configuration mismatch, not silently bucketed).
    * Release timeout (§10.4): after holding for ``release_timeout_s`` (measured from the first held decision after
      the last batch ended, or after work appeared [decision]), one batch is formed as under ``hold="none"``
      (every type open, n_j per stage); the idle plan carries that wake-up time. Once arrivals are exhausted
      the hold is off (flush). Nothing is ever dropped (the code's ``force_clear``).
    * Admissions are planned only into blocks that are free after this iteration's decode growth, stopping at
      the first that does not fit. The paper makes no memory check (safety from M^π <= C); without this guard
      ``evict_newest`` would evict residents to make room for prompts, which can ping-pong forever in small
      pools. Decode growth that overflows is still repaired by the engine's LIFO ``evict_newest`` (§1.4).
    * ``prefill_chunk`` splits the prefill into chunk stages (each chunk a stage, capped like any stage); the whole
      prompt's KV is still reserved at admission.
    * Per-iteration work is proportional to the resident and waiting sets; decisions use ``repeat=1``.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from baselines._queue import decode_block_needs
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements, RestartMode
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

TypeSpec = tuple[float, float, float]
"""A request type: ``(prompt_len l_j, output_len l'_j, arrival rate λ_j)``."""

HOLDS = ("per-type", "all-types", "allowance", "none")
_MAX_ROUNDS = 1000


@dataclass(frozen=True, slots=True)
class FluidThresholds:
    """Fluid-mode thresholds and the fluid quantities behind them (paper Eq. 8–11).

    Attributes:
        n: Integer per-stage thresholds n_j.
        n_star: Fluid thresholds n*_j = λ_j ΔT*.
        m_star: Fluid memory M* = d0·A / (1 − d1·A) (tokens).
        m_pi: Memory of the integer thresholds M^π = Σ_j n_j S_j (tokens).
        delta_t: Fluid iteration time ΔT* = d0 / (1 − d1·A) (seconds).
    """

    n: tuple[int, ...]
    n_star: tuple[float, ...]
    m_star: float
    m_pi: float
    delta_t: float


def _check_types(types: Sequence[TypeSpec]) -> None:
    if not types:
        raise ValueError("WAIT: the type table is empty; pass [(prompt_len, output_len, rate), ...]")
    for j, (p, o, lam) in enumerate(types):
        if p < 0 or o < 1 or lam < 0 or not all(math.isfinite(x) for x in (p, o, lam)):
            raise ValueError(f"WAIT: type {j} = {(p, o, lam)} needs prompt_len >= 0, output_len >= 1, rate >= 0")
    if not any(lam > 0 for _, _, lam in types):
        raise ValueError("WAIT: every type has rate 0; give at least one type a positive arrival rate")


def cap_thresholds(types: Sequence[TypeSpec], tl: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Cap-mode thresholds (spec §10.2, code ``booking_limit``).

    Args:
        types: Type table ``(l_j, l'_j, λ_j)``.
        tl: System-wide cap on concurrent requests.

    Returns:
        Per-stage thresholds n_j = max(1, floor(L_j / (l'_j + 1))) and the type budgets L_j.
    """
    _check_types(types)
    weights = [lam * (o + 1) for _, o, lam in types]
    total = sum(weights)
    budgets = tuple(tl * w / total for w in weights)
    n = tuple(max(1, math.floor(b / (o + 1) + 1e-9)) for b, (_, o, _) in zip(budgets, types, strict=True))
    return n, budgets


def _fixed_point(n: list[int], lam: list[float], s: list[float], d0: float, d1: float, m_star: float) -> list[int]:
    """Raise n_j to ceil(λ_j (d0 + d1 M^π)) until stable (spec §10.2 step 2)."""
    for _ in range(_MAX_ROUNDS):
        m_pi = sum(k * x for k, x in zip(n, s, strict=True))
        new = [max(k, math.ceil(x * (d0 + d1 * m_pi) - 1e-12)) for k, x in zip(n, lam, strict=True)]
        if new == n:
            return n
        n = new
    raise ValueError(
        f"fluid_thresholds: thresholds did not converge in {_MAX_ROUNDS} rounds (M*={m_star:.6g}); use thresholds='cap'"
    )


def fluid_thresholds(
    types: Sequence[TypeSpec], d0: float, d1: float, capacity_tokens: float, slack: bool = False
) -> FluidThresholds:
    """Fluid-mode thresholds (paper §3–§4, Eq. 8–11; spec §10.2 algorithm).

    S_j = (l'_j + 1)(l_j + l'_j / 2), A = Σ λ_j S_j, ΔT* = d0 / (1 − d1 A), M* = d0 A / (1 − d1 A), n*_j = λ_j ΔT*.
    Starting from ceil(n*_j), n_j ← max(n_j, ceil(λ_j (d0 + d1 M^π))) until stable (at most 1000 rounds), with
    M^π = Σ n_j S_j; ``slack`` then adds 1 to every n_j of a type with positive rate.

    Args:
        types: Type table ``(l_j, l'_j, λ_j)`` (tokens, tokens, requests per second).
        d0: Iteration-time intercept (seconds).
        d1: Iteration time per KV token in the batch (seconds).
        capacity_tokens: KV memory C in tokens.
        slack: Add 1 to each threshold (strict inequality in Eq. 11).

    Returns:
        The thresholds and fluid quantities.

    Raises:
        ValueError: d1·A >= 1 (no fluid equilibrium), the rounds do not converge, or M^π > C.
    """
    _check_types(types)
    if d0 < 0 or d1 < 0:
        raise ValueError(f"fluid_thresholds: d0={d0} and d1={d1} must be >= 0 (fit them with the affine_kv model)")
    s = [(o + 1) * (p + o / 2) for p, o, _ in types]
    lam = [t[2] for t in types]
    a = sum(x * y for x, y in zip(lam, s, strict=True))
    if d1 * a >= 1:
        raise ValueError(f"fluid_thresholds: d1·A = {d1 * a:.4g} >= 1, no fluid equilibrium; lower the load or use cap")
    delta_t = d0 / (1 - d1 * a)
    m_star = d0 * a / (1 - d1 * a)
    n_star = tuple(x * delta_t for x in lam)
    n = _fixed_point([math.ceil(x - 1e-12) for x in n_star], lam, s, d0, d1, m_star)
    if slack:
        n = [k + 1 if x > 0 else k for k, x in zip(n, lam, strict=True)]
    m_pi = float(sum(k * x for k, x in zip(n, s, strict=True)))
    if m_pi > capacity_tokens:
        raise ValueError(
            f"fluid_thresholds: M^π={m_pi:.6g} exceeds C={capacity_tokens} (M*={m_star:.6g}); "
            "lower the load, add memory or use thresholds='cap'"
        )
    return FluidThresholds(tuple(n), n_star, m_star, m_pi, delta_t)


class ReleaseClock:
    """The release timeout of spec §10.4: time the server has been holding (since it went idle with work).

    Args:
        timeout: Seconds of holding before a release batch; ``None`` = never (pure paper rule).
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.since: float | None = None

    def reset(self) -> None:
        """A batch was formed, or there is no work: the next hold starts a fresh timer."""
        self.since = None

    def due(self, now: float) -> bool:
        """Whether a held scheduler must release now (the first hold after a batch starts the timer)."""
        if self.since is None:
            self.since = now
        return self.timeout is not None and now >= self.since + self.timeout

    @property
    def deadline(self) -> float | None:
        """When the current hold ends (the idle plan's ``wake_at``)."""
        if self.timeout is None or self.since is None:
            return None
        return self.since + self.timeout


def check_restart_mode(owner: str, mode: str) -> None:
    """Raise ValueError unless ``mode`` is an engine restart mode."""
    if mode not in ("recompute", "full"):
        raise ValueError(f"{owner}: restart_mode={mode!r} must be 'recompute' or 'full' (paper presets use 'full')")


def check_timeout(owner: str, timeout: float | None) -> None:
    """Raise ValueError unless ``timeout`` is None or positive and finite."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"{owner}: release_timeout_s={timeout} must be positive or None (pure paper rule)")


@dataclass(frozen=True, slots=True)
class WAITConfig:
    """WAIT parameters (spec §10.6).

    Attributes:
        thresholds: ``"cap"`` (code rule, default) or ``"fluid"`` (needs types, d0, d1).
        tl: System-wide concurrency cap of cap mode.
        hold: ``"per-type"`` (Algorithm 1), ``"all-types"``, ``"allowance"`` or ``"none"``.
        types: Type table ``((l_j, l'_j, λ_j), ...)``; ``None`` estimates it online.
        d0: Iteration-time intercept (fluid mode).
        d1: Iteration time per KV token (fluid mode).
        capacity_tokens: Memory C of fluid mode; ``None`` = the KV pool.
        slack: Fluid mode: add 1 to each threshold.
        release_timeout_s: Release timeout; ``None`` = pure paper rule.
        prefill_chunk: Prefill chunk size (each chunk one stage); ``None`` = whole prompt.
        restart_mode: Engine restart mode on eviction.
    """

    thresholds: str = "cap"
    tl: int = 64
    hold: str = "per-type"
    types: tuple[TypeSpec, ...] | None = None
    d0: float | None = None
    d1: float | None = None
    capacity_tokens: int | None = None
    slack: bool = False
    release_timeout_s: float | None = 1.0
    prefill_chunk: int | None = None
    restart_mode: str = "recompute"

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.thresholds not in ("cap", "fluid"):
            raise ValueError(f"WAITConfig: thresholds={self.thresholds!r} must be 'cap' or 'fluid'")
        if self.tl < 1:
            raise ValueError(f"WAITConfig: tl={self.tl} must be >= 1 (code default 64)")
        if self.hold not in HOLDS:
            raise ValueError(f"WAITConfig: hold={self.hold!r} must be one of {', '.join(HOLDS)}")
        if self.types is not None:
            _check_types(self.types)
        if self.thresholds == "fluid" and (self.types is None or self.d0 is None or self.d1 is None):
            raise ValueError("WAITConfig: thresholds='fluid' needs types, d0 and d1 (or use thresholds='cap')")
        if self.capacity_tokens is not None and self.capacity_tokens < 1:
            raise ValueError(f"WAITConfig: capacity_tokens={self.capacity_tokens} must be >= 1 or None (the pool)")
        check_timeout("WAITConfig", self.release_timeout_s)
        if self.prefill_chunk is not None and self.prefill_chunk < 1:
            raise ValueError(f"WAITConfig: prefill_chunk={self.prefill_chunk} must be >= 1 or None (whole prompt)")
        check_restart_mode("WAITConfig", self.restart_mode)


Groups = dict[int, dict[int, list[int]]]
"""Resident requests: type -> stage -> ids in admission order."""


class WAIT:
    """WAIT scheduler (``wait``, ``wait-modified``, ``wait-no-wait``); see the module docstring.

    Args:
        thresholds: ``"cap"`` or ``"fluid"``.
        tl: Concurrency cap (cap mode).
        hold: Hold rule, one of :data:`HOLDS`.
        types: Type table ``[(prompt_len, output_len, rate), ...]`` or ``None`` (estimated online).
        d0: Fluid-mode iteration intercept (s).
        d1: Fluid-mode iteration time per KV token (s).
        capacity_tokens: Fluid-mode memory C (tokens); ``None`` = the KV pool.
        slack: Fluid mode: add 1 to each threshold.
        release_timeout_s: Release timeout (s) or ``None``.
        prefill_chunk: Prefill chunk size or ``None``.
        restart_mode: ``"recompute"`` (default) or ``"full"`` (paper presets).
    """

    def __init__(
        self,
        thresholds: str = "cap",
        tl: int = 64,
        hold: str = "per-type",
        types: Sequence[TypeSpec] | None = None,
        d0: float | None = None,
        d1: float | None = None,
        capacity_tokens: int | None = None,
        slack: bool = False,
        release_timeout_s: float | None = 1.0,
        prefill_chunk: int | None = None,
        restart_mode: RestartMode = "recompute",
    ) -> None:
        table = None if types is None else tuple((float(p), float(o), float(r)) for p, o, r in types)
        self.config = WAITConfig(
            thresholds, tl, hold, table, d0, d1, capacity_tokens, slack, release_timeout_s, prefill_chunk, restart_mode
        )
        self.name = "wait"
        self.requirements = EngineRequirements(allocation="prompt", overflow="evict_newest", restart_mode=restart_mode)
        self.clock = ReleaseClock(release_timeout_s)
        self._n: dict[int, int] = {}
        self._budget: dict[int, float] = {}
        if table is not None and (thresholds == "cap" or capacity_tokens is not None):
            self._set_table(table, capacity_tokens)
        self._static = bool(self._n)
        self.reset()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear queues, type assignments, online statistics and the release timer."""
        self._waiting: dict[int, list[int]] = {}
        self._type: dict[int, int] = {}
        self._stats: dict[int, list[float]] = {}
        if not self._static:
            self._n, self._budget = {}, {}
        self._dirty = False
        self.clock.reset()
        self.releases = 0

    def type_of(self, rid: int) -> int | None:
        """The type assigned to unfinished request ``rid`` (``None`` if unknown)."""
        return self._type.get(rid)

    @property
    def type_thresholds(self) -> dict[int, int]:
        """Current per-stage thresholds n_j by type."""
        return dict(self._n)

    def _set_table(self, table: Sequence[TypeSpec], capacity: float | None) -> None:
        cfg = self.config
        if cfg.thresholds == "fluid":
            assert cfg.d0 is not None and cfg.d1 is not None and capacity is not None
            n = fluid_thresholds(table, cfg.d0, cfg.d1, capacity, cfg.slack).n
            budgets: Sequence[float] = [k * (o + 1) for k, (_, o, _) in zip(n, table, strict=True)]
        else:
            n, budgets = cap_thresholds(table, cfg.tl)
        self._n = {j: max(1, k) for j, k in enumerate(n)}
        self._budget = dict(enumerate(budgets))

    def _rate_positive(self, j: int) -> bool:
        table = self.config.types
        return table is None or table[j][2] > 0

    # ---- bookkeeping ---------------------------------------------------------------------
    def _sync(self, view: EngineView) -> None:
        for rid in view.evicted:
            insort(self._waiting[self._type[rid]], rid)
        state = view.state
        for rid in view.arrived:
            if state[rid] == WAITING:
                j = self._assign(view, rid)
                self._type[rid] = j
                self._waiting.setdefault(j, []).append(rid)
        for rid in view.finished:
            self._type.pop(rid, None)
        if self._dirty:
            self._refresh_online()
        elif not self._n and self.config.types is not None:
            self._set_table(self.config.types, view.total_blocks * view.block_size)

    def _assign(self, view: EngineView, rid: int) -> int:
        label = int(view.type_label[rid])
        table = self.config.types
        if table is None:
            key = max(label, 0)
            st = self._stats.setdefault(key, [0.0, 0.0, 0.0])
            st[0] += 1
            st[1] += float(view.prompt[rid])
            st[2] += float(view.oracle_output_len(rid))
            self._dirty = True
            return key
        if label >= len(table):
            raise ValueError(f"WAIT: request {rid} has type_label {label} but the type table has {len(table)} types")
        if label >= 0:
            return label
        out = view.oracle_output_len(rid)
        fits = [(o, j) for j, (_, o, _) in enumerate(table) if o >= out]
        if fits:
            return min(fits)[1]
        return max(range(len(table)), key=lambda j: (table[j][1], -j))

    def _refresh_online(self) -> None:
        keys = sorted(self._stats)
        table = [(st[1] / st[0], st[2] / st[0], st[0]) for st in (self._stats[k] for k in keys)]
        n, budgets = cap_thresholds(table, self.config.tl)
        self._n = dict(zip(keys, n, strict=True))
        self._budget = dict(zip(keys, budgets, strict=True))
        self._dirty = False

    def _groups(self, view: EngineView, running: np.ndarray) -> Groups:
        groups: Groups = {}
        gen, comp = view.generated, view.computed
        chunk = self.config.prefill_chunk or 1
        for rid in running.tolist():
            g = int(gen[rid])
            stage = g if (g >= 1 and view.pending(rid) == 1) else -(int(comp[rid]) // chunk) - 1
            groups.setdefault(self._type[rid], {}).setdefault(stage, []).append(rid)
        return groups

    # ---- the iteration -------------------------------------------------------------------
    def schedule(self, view: EngineView) -> BatchPlan:
        """Form the batch of Algorithm 1 (or hold with a wake-up time)."""
        self._sync(view)
        running = view.running
        if not running.size and not any(self._waiting.values()):
            self.clock.reset()
            return BatchPlan.idle()
        groups = self._groups(view, running)
        hold = "none" if view.arrivals_done else self.config.hold
        tokens = self._select_for(view, groups, hold)
        if not tokens:
            if not self.clock.due(view.now):
                return BatchPlan.idle(self.clock.deadline)
            self.releases += 1
            tokens = self._select_for(view, groups, "none")
        self.clock.reset()
        return BatchPlan.of(tokens)

    def _select_for(self, view: EngineView, groups: Groups, hold: str) -> dict[int, int]:
        """The batch under ``hold``; empty when the rule holds."""
        wait_n = {j: len(q) for j, q in self._waiting.items()}
        n = self._n
        if hold == "none":
            return self._select(view, groups, {j: n[j] for j in n}, list(groups), capped=True)
        if hold == "per-type":
            eligible = [j for j in n if wait_n.get(j, 0) >= n[j]]
            return self._select(view, groups, {j: n[j] for j in eligible}, eligible, capped=True)
        if hold == "all-types":
            if any(wait_n.get(j, 0) < n[j] for j in n if self._rate_positive(j)):
                return {}
            return self._select(view, groups, dict(n), list(groups), capped=False)
        occupied = {j: sum(len(ids) for ids in groups.get(j, {}).values()) for j in n}
        allow = {j: min(n[j], math.floor(self._budget[j] + 1e-9) - occupied[j]) for j in n}
        if not any(wait_n.get(j, 0) >= allow[j] for j in n):
            return {}
        return self._select(view, groups, {j: max(a, 0) for j, a in allow.items()}, list(groups), capped=False)

    def _select(
        self, view: EngineView, groups: Groups, admit: dict[int, int], resident_types: list[int], capped: bool
    ) -> dict[int, int]:
        """Residents of ``resident_types`` (n_j per stage if ``capped``), then up to ``admit[j]`` new requests."""
        chunk = self.config.prefill_chunk
        tokens: dict[int, int] = {}
        decodes: list[int] = []
        for j in resident_types:
            cap = self._n[j]
            for stage, ids in groups.get(j, {}).items():
                for rid in ids[:cap] if capped else ids:
                    if stage >= 1:
                        tokens[rid] = 1
                        decodes.append(rid)
                    else:
                        pend = view.pending(rid)
                        tokens[rid] = pend if chunk is None else min(chunk, pend)
        free = view.free_blocks - int(decode_block_needs(view, np.asarray(decodes, dtype=np.int64)).sum())
        for j in sorted(admit):
            queue = self._waiting.get(j, [])
            k = 0
            while k < min(admit[j], len(queue)):
                rid = queue[k]
                need = view.admission_blocks(rid)
                if need > free:
                    break
                free -= need
                pend = view.pending(rid)
                tokens[rid] = pend if chunk is None else min(chunk, pend)
                k += 1
            del queue[:k]
        return tokens
