"""RAD (Resource-Aware Dynamic scheduler), a project reconstruction, and the ``rad-hybrid`` comparison variant.

Paper: Bari, Hegde, de Veciana, "Optimal Scheduling Algorithms for LLM Inference: Theory and Practice",
arXiv 2508.01002 (SIGMETRICS'26), §4 Algorithm 1 (RAD) and §5. No reference code exists (the SLAI repo
``agrimUT/SLAI`` has no RAD scheduler). Spec: ``docs/specs/baselines.md`` §8 "Project specification"; every
rule below is a [decision] of that section, to be checked against Algorithm 1 (spec §15 item 1).

``RAD`` alternates a PREFILL mode and a DECODE mode. It enters PREFILL when requests wait and either no
request is decode-ready or at least ``max_prefills_per_cycle`` (N) of the ``decode_tile`` (D) active
slots are free. A cycle admits up to N requests FCFS (active requests stay below D, Sarathi watermark
check) and runs prefill-only batches of at most ``prefill_token_cap`` (P) tokens over the cycle's
prompts, oldest first; when the cycle's remaining prefill work exceeds P the batch is trimmed to a
multiple of ``tile_tokens`` (T), otherwise it takes all of it. The cycle ends when its prompts have all
completed their prefill (or nothing could be admitted); then DECODE runs decode-only iterations over
all decode-ready requests, oldest arrival first, with Sarathi's slot rule (recompute-preempt the
youngest). KV: whole-prompt allocation at admission, 1% watermark.

``RADHybrid`` (``rad-hybrid``) is Sarathi-Serve (decode-first hybrid batches) with its token budget
rounded down to a multiple of T. It is not the paper's algorithm.

Deviations and interpretations of the spec:
    * After a cycle ends at least one DECODE iteration runs before condition (b) may start a new cycle
      (otherwise (b) would re-enter PREFILL at once and starve decodes); condition (a) (no decode-ready
      request) re-enters immediately.
    * The batch cap for a trimmed batch is ``P`` rounded down to a multiple of ``T`` (equal to ``P`` for
      the defaults); a cycle's work is every running request still prefilling (all belong to the cycle).
    * Victims of DECODE-mode preemption rejoin the front of the waiting queue (Sarathi semantics) and
      are re-admitted by a later cycle. Requests that can never fit above the watermark, or exceed the
      optional ``max_model_len``, are rejected.
    * The engine admits a request only when it is scheduled, so a request admitted to a cycle whose
      first chunk does not fit in the current batch keeps its blocks reserved virtually until it starts
      (prefill-only batches allocate nothing else, so the reservation always holds).
    * ``RADHybrid`` defaults to a budget of 2048 (= P), so ``rad`` and ``rad-hybrid`` compare mode cycles
      against hybrid batches at equal per-iteration token caps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines._queue import WaitingQueue, decode_block_needs
from baselines.sarathi import SarathiServe, decode_with_preemption
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.view import EngineView

PREFILL = "prefill"
DECODE = "decode"


@dataclass(frozen=True, slots=True)
class RADConfig:
    """RAD parameters (spec §8).

    Attributes:
        tile_tokens: Prefill batch granularity T (stands in for LCM(b_row, b_col, b_red)).
        decode_tile: Target decode batch size D (b_col); also the cap on active requests.
        max_prefills_per_cycle: Requests admitted per prefill cycle (N <= D).
        prefill_token_cap: Tokens per prefill-mode iteration (P >= T).
        max_model_len: Reject (re-)prefills longer than this; ``None`` = no limit.
    """

    tile_tokens: int = 128
    decode_tile: int = 128
    max_prefills_per_cycle: int = 32
    prefill_token_cap: int = 2048
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        """Validate parameters."""
        for name in ("tile_tokens", "decode_tile", "max_prefills_per_cycle", "prefill_token_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"RADConfig: {name}={getattr(self, name)} must be >= 1")
        if self.max_prefills_per_cycle > self.decode_tile:
            raise ValueError(
                f"RADConfig: max_prefills_per_cycle={self.max_prefills_per_cycle} must be <= "
                f"decode_tile={self.decode_tile} (N <= D)"
            )
        if self.prefill_token_cap < self.tile_tokens:
            raise ValueError(
                f"RADConfig: prefill_token_cap={self.prefill_token_cap} must be >= tile_tokens={self.tile_tokens}"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"RADConfig: max_model_len={self.max_model_len} must be >= 1 or None")


class RAD:
    """RAD mode-cycling scheduler (``rad``, project reconstruction); see the module docstring.

    Args:
        tile_tokens: Prefill batch granularity T.
        decode_tile: Decode batch target and active-request cap D.
        max_prefills_per_cycle: Admissions per prefill cycle N.
        prefill_token_cap: Tokens per prefill iteration P.
        max_model_len: Optional length limit.
    """

    name = "rad"
    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        tile_tokens: int = 128,
        decode_tile: int = 128,
        max_prefills_per_cycle: int = 32,
        prefill_token_cap: int = 2048,
        max_model_len: int | None = None,
    ) -> None:
        self.config = RADConfig(tile_tokens, decode_tile, max_prefills_per_cycle, prefill_token_cap, max_model_len)
        self.queue = WaitingQueue()
        self.mode = DECODE
        self.cycle_admitted = 0
        self.cycles = 0
        self._starting: list[int] = []

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the queue, the mode and the cycle."""
        self.queue.clear()
        self.mode = DECODE
        self.cycle_admitted = 0
        self.cycles = 0
        self._starting = []

    def schedule(self, view: EngineView) -> BatchPlan:
        """Switch modes, then build a prefill-only or a decode-only batch."""
        self.queue.sync(view)
        rejects: list[tuple[int, str]] = []
        running = view.running
        ready = (view.pending_array(running) == 1) & (view.generated[running] >= 1)
        if self.mode == DECODE and (not ready.all() or self._should_enter(running.size, bool(ready.any()))):
            self._start_cycle()  # (unfinished prefills only exist inside a cycle; the first test is a guard)
        if self.mode == PREFILL:
            plan = self._prefill_iteration(view, running[~ready], rejects)
            if plan is not None:
                return plan
            self.mode = DECODE
            if not ready.any() and len(self.queue):  # (a): nothing to decode, start the next cycle now
                self._start_cycle()
                plan = self._prefill_iteration(view, running[~ready], rejects)
                if plan is not None:
                    return plan
                self.mode = DECODE
        return self._decode_iteration(view, np.sort(running[ready]), rejects)

    def _should_enter(self, n_active: int, any_ready: bool) -> bool:
        """Enter PREFILL: work waits and (a) nothing is decode-ready or (b) N decode slots are free."""
        cfg = self.config
        return len(self.queue) > 0 and (not any_ready or cfg.decode_tile - n_active >= cfg.max_prefills_per_cycle)

    def _start_cycle(self) -> None:
        self.mode = PREFILL
        self.cycle_admitted = 0

    # ---- PREFILL mode --------------------------------------------------------------------
    def _prefill_iteration(
        self, view: EngineView, prefilling: IntArray, rejects: list[tuple[int, str]]
    ) -> BatchPlan | None:
        """A prefill-only batch of this cycle's prompts, or ``None`` when the cycle is over."""
        work = dict(zip(prefilling.tolist(), view.pending_array(prefilling).tolist(), strict=True))
        for rid in self._starting:
            work[rid] = view.pending(rid)
        if self.cycle_admitted and not work:
            return None  # every prompt admitted this cycle has completed its prefill
        self._admit(view, work, rejects)
        if not work:
            return None
        plan = self._prefill_batch(work, rejects)
        if self._starting:
            started = set(plan.ids.tolist())
            self._starting = [rid for rid in self._starting if rid not in started]
        return plan

    def _admit(self, view: EngineView, work: dict[int, int], rejects: list[tuple[int, str]]) -> None:
        """Admit FCFS while the cycle has room, active < D and the watermark check passes.

        Admitted requests whose first chunk does not fit in this batch wait in ``_starting`` with
        their blocks reserved virtually (prefill-only batches allocate nothing else).
        """
        cfg = self.config
        q = self.queue.items
        watermark = view.watermark_blocks
        free = view.free_blocks - sum(view.admission_blocks(rid) for rid in self._starting)
        usable = view.total_blocks - watermark
        active = len(view.running) + len(self._starting)
        while q and self.cycle_admitted < cfg.max_prefills_per_cycle and active < cfg.decode_tile:
            rid = q[0]
            pend = view.pending(rid)
            blocks = view.admission_blocks(rid)
            if (cfg.max_model_len is not None and pend > cfg.max_model_len) or blocks > usable:
                rejects.append((rid, f"{pend} prefill tokens exceed max_model_len or the KV pool"))
                q.popleft()
                continue
            if free - blocks < watermark:
                break
            q.popleft()
            work[rid] = pend
            self._starting.append(rid)
            free -= blocks
            active += 1
            self.cycles += self.cycle_admitted == 0
            self.cycle_admitted += 1

    def _prefill_batch(self, work: dict[int, int], rejects: list[tuple[int, str]]) -> BatchPlan:
        """Take all remaining work if it fits in P, else a tile-multiple batch, oldest first."""
        cfg = self.config
        remaining = sum(work.values())
        # Prefill-only batches allocate nothing, so a blocked queue head stays blocked: an arrival
        # matters only when the queue is empty.
        sensitive = len(self.queue) == 0
        if remaining <= cfg.prefill_token_cap:
            return BatchPlan.of(work, reject=rejects, arrival_sensitive=sensitive)
        cap = cfg.prefill_token_cap - cfg.prefill_token_cap % cfg.tile_tokens
        tokens: dict[int, int] = {}
        left = cap
        for rid, pend in work.items():
            if left == 0:
                break
            tokens[rid] = min(pend, left)
            left -= tokens[rid]
        # The same batch repeats while the cycle's remaining work stays above P.
        repeat = -(-(remaining - cfg.prefill_token_cap) // cap)
        return BatchPlan.of(tokens, reject=rejects, repeat=repeat, arrival_sensitive=sensitive)

    # ---- DECODE mode ---------------------------------------------------------------------
    def _decode_iteration(self, view: EngineView, ready: IntArray, rejects: list[tuple[int, str]]) -> BatchPlan:
        """One decode-only iteration over every decode-ready request, Sarathi's slot rule."""
        if ready.size == 0:
            return BatchPlan.of({}, reject=rejects)
        free = view.free_blocks
        if int(decode_block_needs(view, ready).sum()) > free:
            decodes, _, preempted, _ = decode_with_preemption(view, ready.tolist(), free)
            self.queue.push_front(sorted(preempted))
            return BatchPlan.of(dict.fromkeys(decodes, 1), preempt=preempted, reject=rejects)
        cfg = self.config
        tokens = dict.fromkeys(ready.tolist(), 1)
        if cfg.decode_tile - len(view.running) < cfg.max_prefills_per_cycle:
            # No cycle can start before a request finishes (an event): stable, arrivals included.
            return BatchPlan.of(tokens, reject=rejects, repeat=UNBOUNDED_REPEAT, arrival_sensitive=False)
        if len(self.queue) == 0:
            return BatchPlan.of(tokens, reject=rejects, repeat=UNBOUNDED_REPEAT)
        if self._head_blocked(view):
            # The next call starts a cycle that admits nothing: decoding only lowers the free blocks.
            return BatchPlan.of(tokens, reject=rejects, repeat=UNBOUNDED_REPEAT, arrival_sensitive=False)
        return BatchPlan.of(tokens, reject=rejects)  # the next call starts a cycle

    def _head_blocked(self, view: EngineView) -> bool:
        """Whether the queue head fails the watermark check (and would not be rejected)."""
        cfg = self.config
        rid = self.queue.items[0]
        blocks = view.admission_blocks(rid)
        if cfg.max_model_len is not None and view.pending(rid) > cfg.max_model_len:
            return False
        if blocks > view.total_blocks - view.watermark_blocks:
            return False
        return view.free_blocks - blocks < view.watermark_blocks


@dataclass(frozen=True, slots=True)
class RADHybridConfig:
    """``rad-hybrid`` parameters.

    Attributes:
        chunk_size: Requested token budget; rounded down to a multiple of ``tile_tokens``.
        tile_tokens: Tile granularity T.
        max_num_seqs: Cap on KV-holding requests.
        order: ``"fcfs"`` or ``"spf"``.
        max_model_len: Optional length limit.
    """

    chunk_size: int = 2048
    tile_tokens: int = 128
    max_num_seqs: int = 128
    order: str = "fcfs"
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        """Validate parameters (Sarathi's own checks cover the rest)."""
        if self.tile_tokens < 1:
            raise ValueError(f"RADHybridConfig: tile_tokens={self.tile_tokens} must be >= 1 (default 128)")
        if self.chunk_size < self.tile_tokens:
            raise ValueError(f"RADHybridConfig: chunk_size={self.chunk_size} must be >= tile_tokens={self.tile_tokens}")

    @property
    def budget(self) -> int:
        """The tile-aligned token budget."""
        return self.chunk_size - self.chunk_size % self.tile_tokens


class RADHybrid(SarathiServe):
    """Sarathi-Serve with a tile-aligned token budget (``rad-hybrid``); not the paper's RAD.

    Args:
        chunk_size: Requested token budget (rounded down to a multiple of ``tile_tokens``).
        tile_tokens: Tile granularity T.
        max_num_seqs: Cap on KV-holding requests.
        order: ``"fcfs"`` or ``"spf"``.
        max_model_len: Optional length limit.
    """

    def __init__(
        self,
        chunk_size: int = 2048,
        tile_tokens: int = 128,
        max_num_seqs: int = 128,
        order: str = "fcfs",
        max_model_len: int | None = None,
    ) -> None:
        self.hybrid_config = RADHybridConfig(chunk_size, tile_tokens, max_num_seqs, order, max_model_len)
        super().__init__(self.hybrid_config.budget, max_num_seqs, order, max_model_len)
        self.name = "rad-hybrid"
