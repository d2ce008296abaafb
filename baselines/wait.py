"""WAIT (Waiting for Accumulated Inference Threshold): per-type batching thresholds for known output lengths.

Paper: Ao, Luo, Simchi-Levi, Wang, "Optimizing LLM Inference: Fluid-Guided Online Scheduling with Memory
Constraints", arXiv 2504.11320 v4: model §2 (Eq. 1 iteration time, §2.3 LIFO eviction and restart, §2.4 pausing),
fluid equilibrium §3 (Eq. 8–10), WAIT Algorithm 1 and the threshold conditions Eq. 11 (§4), experiments §6,
App. H. Reference code: ``Luoxiaogan/vidur_or``, ``booking_limit`` and ``modified_booking_limit`` replica
schedulers. Spec: ``docs/specs/baselines.md`` §10 (with §1.2–1.4 and §13.4).

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
from baselines._wait_common import (
    HOLDS,
    FluidThresholds,
    ReleaseClock,
    TypeSpec,
    cap_thresholds,
    check_restart_mode,
    check_timeout,
    check_types,
    fluid_thresholds,
)
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements, RestartMode
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView

__all__ = [
    "HOLDS",
    "WAIT",
    "FluidThresholds",
    "ReleaseClock",
    "TypeSpec",
    "WAITConfig",
    "cap_thresholds",
    "check_restart_mode",
    "check_timeout",
    "fluid_thresholds",
]


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
            check_types(self.types)
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
