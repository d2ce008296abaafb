"""Sarathi-Serve: chunked prefills with stall-free (decode-first) hybrid batching.

Paper: Agrawal et al., "Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve",
OSDI'24 (arXiv 2403.02310), Algorithm 3 and §4.1–4.3. Code: ``microsoft/sarathi-serve``,
``sarathi/core/scheduler/sarathi_scheduler.py``. Spec: ``docs/specs/baselines.md`` §6.

Per iteration: running requests oldest first; every decode gets one token (preempting the youngest
unprocessed running request while no KV slot is free); then every ongoing partial prefill gets
``min(remaining, budget - used)`` tokens; then new requests are admitted FCFS (or shortest prompt
first, ``order="spf"``) with the whole prompt's blocks allocated at admission under a 1% watermark,
until one does not fit, the sequence cap is reached or the budget is used up.

Deviations from the paper and code:
    * Preemption is recompute with the engine's restart semantics (spec §1.3): a re-admitted request
      re-prefills prompt plus generated tokens and never re-emits tokens; the code's
      ``reset_for_recompute`` quirk (generated tokens folded into the prompt) is not copied.
    * When decodes alone exceed the budget (only if ``max_num_seqs > chunk_size``) all are scheduled,
      as the code does, and the iteration is counted in ``budget_overruns`` (spec §6, [decision]).
    * Time-to-arrival is not modelled inside the scheduler: it sees requests once they have arrived.
    * ``tile_align`` (round the prefill budget down to a multiple of 32) is a project option, off by
      default.
    * Dynamic chunking (``dynamic_chunking=True``, off by default; code
      ``_compute_chunk_size_schedule``): stage chunk sizes are ``linspace(low, high, stages)`` reversed and
      rounded to a multiple of ``min(32, low)``; a row's stage is ``computed // ceil(max_tokens / stages)``
      where ``computed`` counts the KV tokens of the (re-)prefill already processed. The code asserts the
      stage index is in range; here prefills past ``chunk_max_tokens`` keep the last (smallest) chunk. The
      code's budget ``stage_chunk - batched_tokens`` can go negative when decodes exceed the stage chunk;
      here it is clamped to 0 (the prefill waits). Budget overruns are counted against the largest chunk.
    * A waiting request whose (re-)prefill needs more blocks than the pool holds above the watermark is
      rejected (the code's ``AllocStatus.NEVER``) instead of blocking the queue forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from baselines._queue import WaitingQueue, ascending, decode_with_preemption, preempt_for_decodes, run_fcfs_segment
from llmsched_gym.core import rules
from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.segment import PLAN_OK, PLAN_PYTHON, PlanInput, PlanOutput, specialize
from llmsched_gym.core.table import IntCol
from llmsched_gym.core.view import EngineView

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class SarathiConfig:
    """Sarathi-Serve parameters (spec §6 table).

    Attributes:
        chunk_size: Token budget per iteration (τ).
        max_num_seqs: Cap on requests holding KV (running plus newly admitted).
        order: ``"fcfs"`` or ``"spf"`` (shortest prompt first among waiting requests).
        max_model_len: Requests whose prompt plus generated tokens exceed it are rejected; ``None``
            leaves only the engine's can-never-fit check.
        tile_align: Round the prefill share of the budget down to a multiple of 32 when possible.
        dynamic_chunking: Use the code's stage-wise decreasing chunk sizes instead of ``chunk_size``.
        chunk_low: Smallest stage chunk (dynamic chunking).
        chunk_high: Largest stage chunk, used for the first stage (dynamic chunking).
        chunk_stages: Number of stages (dynamic chunking).
        chunk_max_tokens: Prefill tokens spread over the stages (code ``chunk_schedule_max_tokens``).
    """

    chunk_size: int = 512
    max_num_seqs: int = 128
    order: str = "fcfs"
    max_model_len: int | None = None
    tile_align: bool = False
    dynamic_chunking: bool = False
    chunk_low: int = 128
    chunk_high: int = 2048
    chunk_stages: int = 16
    chunk_max_tokens: int = 8192

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.chunk_size < 1:
            raise ValueError(f"SarathiConfig: chunk_size={self.chunk_size} must be >= 1 (paper: 512 or 2048)")
        if self.max_num_seqs < 1:
            raise ValueError(f"SarathiConfig: max_num_seqs={self.max_num_seqs} must be >= 1 (default 128)")
        if self.order not in ("fcfs", "spf"):
            raise ValueError(f"SarathiConfig: order={self.order!r} must be 'fcfs' or 'spf'")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"SarathiConfig: max_model_len={self.max_model_len} must be >= 1 or None")
        if not 1 <= self.chunk_low <= self.chunk_high:
            raise ValueError(
                f"SarathiConfig: chunk_low={self.chunk_low}, chunk_high={self.chunk_high} must satisfy "
                "1 <= chunk_low <= chunk_high (defaults 128 and 2048)"
            )
        if self.chunk_stages < 1 or self.chunk_max_tokens < 1:
            raise ValueError(
                f"SarathiConfig: chunk_stages={self.chunk_stages}, chunk_max_tokens={self.chunk_max_tokens} "
                "must be >= 1 (defaults 16 and 8192)"
            )

    def chunk_schedule(self) -> tuple[int, ...]:
        """Dynamic-chunking stage sizes, largest first (code ``_compute_chunk_size_schedule``)."""
        sizes = np.linspace(self.chunk_low, self.chunk_high, self.chunk_stages, dtype=np.int32)[::-1]
        step = min(32, self.chunk_low)
        return tuple(int(c) for c in (np.round(sizes / step) * step).astype(np.int64))


class SarathiServe:
    """Sarathi-Serve scheduler (``sarathi`` / ``sarathi-spf``); see the module docstring.

    Args:
        chunk_size: Token budget per iteration.
        max_num_seqs: Cap on KV-holding requests.
        order: ``"fcfs"`` or ``"spf"``.
        max_model_len: Optional length limit (rejects longer requests).
        tile_align: Round the prefill budget down to a multiple of 32.
        dynamic_chunking: Stage-wise decreasing chunk sizes (spec §6 "Options").
        chunk_low: Smallest stage chunk.
        chunk_high: Largest (first-stage) chunk.
        chunk_stages: Number of stages.
        chunk_max_tokens: Prefill tokens spread over the stages.
        compiled: Use the compiled fast path for the default configuration (FCFS, no tile alignment, no
            dynamic chunking, no length limit); it falls back to the Python path whenever a preemption or a
            rejection must be decided. Off gives the reference Python path (identical plans, tested).
    """

    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        chunk_size: int = 512,
        max_num_seqs: int = 128,
        order: str = "fcfs",
        max_model_len: int | None = None,
        tile_align: bool = False,
        dynamic_chunking: bool = False,
        chunk_low: int = 128,
        chunk_high: int = 2048,
        chunk_stages: int = 16,
        chunk_max_tokens: int = 8192,
        compiled: bool = True,
    ) -> None:
        self.config = SarathiConfig(
            chunk_size,
            max_num_seqs,
            order,
            max_model_len,
            tile_align,
            dynamic_chunking,
            chunk_low,
            chunk_high,
            chunk_stages,
            chunk_max_tokens,
        )
        self.name = "sarathi" if order == "fcfs" else "sarathi-spf"
        self._chunks = self.config.chunk_schedule() if dynamic_chunking else (chunk_size,)
        self._stage_tokens = -(-chunk_max_tokens // chunk_stages)
        self.queue = WaitingQueue()
        self.budget_overruns = 0
        plain = order == "fcfs" and not tile_align and not dynamic_chunking and max_model_len is None
        self._compiled = compiled and plain and type(self) is SarathiServe

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the waiting queue and statistics."""
        self.queue.clear()
        self.budget_overruns = 0

    # ---- the iteration -------------------------------------------------------------------
    def fused_driver(self, engine: Engine) -> Callable[[], None] | None:
        """A callable advancing ``engine`` by compiled segments of decisions, where this configuration has one.

        Used by :func:`llmsched_gym.simulate.run_engine`; ``None`` unless the compiled path is on, the
        engine has a compiled cost model and no per-token times are recorded.
        """
        if not (self._compiled and engine.runs_segments):
            return None
        return partial(self._segment, engine)

    def _segment(self, engine: Engine) -> None:
        """Advance ``engine`` by a compiled segment of decisions, or by one Python decision where it stops at once."""
        cfg = self.config
        params = (cfg.chunk_size, cfg.max_num_seqs)
        seg, view = run_fcfs_segment(engine, self.queue, SEGMENT, params, 2 * cfg.max_num_seqs + 1)
        log = seg.outcome.log
        self.budget_overruns += int(np.count_nonzero(log[:, 4] > cfg.chunk_size * log[:, 2]))
        if seg.outcome.decisions == 0:
            engine.step(self._python_plan(view))

    def schedule(self, view: EngineView) -> BatchPlan:
        """Build the hybrid batch: decodes, ongoing prefills, then admissions."""
        self.queue.sync(view)
        return self.plan(view)

    def plan(self, view: EngineView) -> BatchPlan:
        """:meth:`schedule` for a view whose arrivals the queue has already taken in."""
        if self._compiled:
            plan = self._compiled_plan(view)
            if plan is not None:
                return plan
        return self._python_plan(view)

    def _python_plan(self, view: EngineView) -> BatchPlan:
        """The reference Python path of :meth:`plan` (every configuration)."""
        srt, decodes, partial_ids, total_need = split_running(view.running.copy(), view.ints, view.block_size)
        free = view.free_blocks
        if total_need <= free:
            partials: list[int] = partial_ids.tolist()
            preempted: list[int] = []
            free -= total_need
        else:
            dec_list, partials, preempted, free = self._decode_with_preemption(view, srt.tolist(), free)
            decodes = np.array(dec_list, dtype=np.int64)
        n_dec = decodes.size
        self.plan_decodes = decodes
        if n_dec > self._chunks[0]:
            self.budget_overruns += 1
        prefills: dict[int, int] = {}
        used = self._partial_prefills(view, partials, prefills, n_dec)
        admitted, rejects = self._admit(view, prefills, used, free, srt.size - len(preempted))
        used += admitted
        ids, tokens = _plan_arrays(decodes, prefills)
        if preempted:
            self.queue.push_front(sorted(preempted))
            return BatchPlan(ids, tokens, preempt=tuple(preempted), reject=tuple(rejects))
        open_queue = len(self.queue) == 0 or self.config.order == "spf"
        # An arrival matters if it could be admitted, or rejected for its length (checked before the budget).
        sensitive = open_queue and (used < self._chunks[0] or self.config.max_model_len is not None)
        repeat = self._repeat(view, prefills, n_dec, partials)
        return BatchPlan(ids, tokens, reject=tuple(rejects), repeat=repeat, arrival_sensitive=sensitive)

    def _compiled_plan(self, view: EngineView) -> BatchPlan | None:
        """The default configuration's plan in one compiled call (:func:`sarathi_plan`).

        ``None`` where the Python path must decide. Same rules and row order as the Python path (tested).
        """
        cfg = self.config
        running = view.running
        head, more = self.queue.head(max(cfg.max_num_seqs - running.size, 0) + 1)  # every candidate it can reach
        tables, sets = (view.ints, view.floats, view.state), (running.copy(), head, more)
        kv = (view.free_blocks, view.total_blocks, view.block_size, view.prompt_allocation, view.watermark_blocks)
        ok, ids, tokens, n_dec, n_adm, sensitive = sarathi_plan_of(tables, sets, kv, (cfg.chunk_size, cfg.max_num_seqs))
        if not ok:
            return None
        for _ in range(n_adm):
            self.queue.items.popleft()
        self.plan_decodes = ids[:n_dec]
        if n_dec > cfg.chunk_size:
            self.budget_overruns += 1
        return BatchPlan(ids, tokens, repeat=UNBOUNDED_REPEAT, arrival_sensitive=sensitive)

    def _chunk_limit(self, view: EngineView, rid: int) -> int:
        """The request's chunk size: ``chunk_size``, or its dynamic-chunking stage size."""
        return self._limit_at(int(view.computed[rid]))

    def _limit_at(self, done: int) -> int:
        if not self.config.dynamic_chunking:
            return self.config.chunk_size
        return self._chunks[min(done // self._stage_tokens, len(self._chunks) - 1)]

    def _repeat(self, view: EngineView, prefills: dict[int, int], n_decodes: int, partials: list[int]) -> int:
        """How many times the plan may repeat before it could change without an engine event.

        By default a prefill row that gets less than its pending tokens uses up the budget, so the plan
        holds until an event. With tile alignment or dynamic chunking a row can leave budget to later
        rows; the next iteration's plan is then re-derived (rows re-sorted by id, as they will be) and
        must come out the same, and dynamic chunks hold only until a row reaches its next stage.
        """
        cfg = self.config
        if not (cfg.tile_align or cfg.dynamic_chunking):
            return UNBOUNDED_REPEAT
        rows = list(prefills.items())
        if any(view.pending(r) < 2 * n for r, n in rows):
            return UNBOUNDED_REPEAT  # a row completes or runs short: the engine stops the stretch there
        if not self._same_next(view, prefills, partials, n_decodes):
            return 1
        return self._stage_repeat(view, rows) if cfg.dynamic_chunking else UNBOUNDED_REPEAT

    def _same_next(self, view: EngineView, planned: dict[int, int], partials: list[int], used: int) -> bool:
        """Whether the partial-prefill pass after one iteration of ``planned`` gives the same chunks."""
        for rid in sorted(planned.keys() | set(partials)):
            n = planned.get(rid, 0)
            chunk = min(view.pending(rid) - n, self._budget_left(used, self._limit_at(int(view.computed[rid]) + n)))
            if chunk != n:
                return False
            used += chunk
        return True

    def _stage_repeat(self, view: EngineView, rows: list[tuple[int, int]]) -> int:
        """Iterations until some prefill row enters its next chunk stage (the plan is stable until then)."""
        repeat = UNBOUNDED_REPEAT
        last = len(self._chunks) - 1
        for rid, n in rows:
            done = int(view.computed[rid])
            stage = done // self._stage_tokens
            if stage < last:
                repeat = min(repeat, -(-((stage + 1) * self._stage_tokens - done) // n))
        return repeat

    def _decode_with_preemption(
        self, view: EngineView, order: list[int], free: int
    ) -> tuple[list[int], list[int], list[int], int]:
        """Sarathi's decode pass when slots run out: preempt the youngest unprocessed request."""
        return decode_with_preemption(view, order, free)

    def _budget_left(self, used: int, limit: int | None = None) -> int:
        """Prefill tokens still available under ``limit`` (default ``chunk_size``) after ``used``."""
        left = (self.config.chunk_size if limit is None else limit) - used
        if self.config.tile_align and left > 32:
            left -= left % 32
        return max(left, 0)

    def _partial_prefills(self, view: EngineView, partials: list[int], tokens: dict[int, int], used: int) -> int:
        for rid in partials:
            chunk = min(view.pending(rid), self._budget_left(used, self._chunk_limit(view, rid)))
            if chunk > 0:
                tokens[rid] = chunk
                used += chunk
        return used

    def _admit(
        self, view: EngineView, tokens: dict[int, int], used: int, free: int, n_active: int
    ) -> tuple[int, list[tuple[int, str]]]:
        """Admit waiting requests in order; returns prefill tokens added and rejections."""
        added = 0
        rejects: list[tuple[int, str]] = []
        cfg = self.config
        q = self.queue.items
        if cfg.order == "spf" and len(q) > 1:
            prompt = view.prompt
            self.queue.items = q = type(q)(sorted(q, key=lambda r: int(prompt[r])))
        while q:
            rid = q[0]
            pend = view.pending(rid)
            if cfg.max_model_len is not None and pend > cfg.max_model_len:
                rejects.append((rid, f"{pend} tokens exceed max_model_len={cfg.max_model_len}"))
                q.popleft()
                continue
            blocks = view.admission_blocks(rid)
            if blocks > view.total_blocks - view.watermark_blocks:
                rejects.append((rid, f"needs {blocks} KV blocks, more than the pool holds above the watermark"))
                q.popleft()
                continue
            chunk = min(pend, self._budget_left(used + added, self._chunk_limit(view, rid)))
            if chunk == 0 or n_active + 1 > cfg.max_num_seqs or free - blocks < view.watermark_blocks:
                break
            q.popleft()
            tokens[rid] = chunk
            added += chunk
            free -= blocks
            n_active += 1
        return added, rejects


# ---- the default configuration in compiled code (a plan function of llmsched_gym.core.segment) ----------------
@njit(cache=True)
def split_running(running, ints, bs):  # type: ignore[no-untyped-def]
    """Sort running ids (oldest arrival first) and split them into decodes and partial prefills.

    Returns ``(sorted_ids, decodes, partials, need)`` where ``need`` is the total number of new KV
    blocks the decodes need to cache one more token each.
    """
    srt = ascending(running)
    dec, par = np.empty(srt.size, np.int64), np.empty(srt.size, np.int64)
    nd = npar = need = 0
    prompt, generated, computed = ints[IntCol.PROMPT], ints[IntCol.GENERATED], ints[IntCol.COMPUTED]
    for r in srt:
        if rules.is_decode(prompt[r], generated[r], computed[r]):
            dec[nd] = r
            nd += 1
            need += rules.decode_blocks(computed[r], ints[IntCol.BLOCKS, r], bs)
        else:
            par[npar] = r
            npar += 1
    return srt, dec[:nd], par[:npar], need


@njit(cache=True)
def sarathi_plan(inp, params):  # type: ignore[no-untyped-def]
    """Sarathi-Serve's default iteration (FCFS, no options); ``params = (chunk_size, max_num_seqs)``.

    Decodes (oldest first; while a decode's block is not free, the youngest unprocessed running request is
    preempted), then ongoing partial prefills with ``min(pending, budget - used)``, then admissions from the
    queue head with the whole pending prefill's blocks under the watermark. Victims re-enter the queue front
    in id order. Python decides when a candidate can never fit above the watermark (a rejection).
    """
    budget, max_seqs = params
    ints, bs = inp.ints, inp.block_size
    srt, dec, par, need = split_running(inp.running, ints, bs)
    free, victims = inp.free - need, srt[:0]
    if need > inp.free:
        dec, par, victims, free = preempt_for_decodes(srt, ints, bs, inp.free)
    m = srt.size + inp.waiting.size
    ids, tokens = np.empty(m, np.int64), np.empty(m, np.int64)
    for i in range(dec.size):
        ids[i], tokens[i] = dec[i], 1
    n = used = dec.size
    for r in par:
        chunk = min(
            rules.pending(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]),
            max(budget - used, 0),
        )
        if chunk > 0:
            ids[n], tokens[n] = r, chunk
            n, used = n + 1, used + chunk
    active, admitted = srt.size - victims.size, 0
    for r in inp.waiting:
        p, g, c = ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]
        b = rules.admission_blocks(p, g, ints[IntCol.BLOCKS, r], bs)
        if b > inp.total - inp.watermark:
            return PlanOutput(PLAN_PYTHON, ids[:0], ids[:0], ids[:0], 1, True, _INF)
        chunk = min(rules.pending(p, g, c), max(budget - used, 0))
        if chunk == 0 or active + 1 > max_seqs or free - b < inp.watermark:
            break
        ids[n], tokens[n] = r, chunk
        n, used, free, active, admitted = n + 1, used + chunk, free - b, active + 1, admitted + 1
    if victims.size:
        return PlanOutput(PLAN_OK, ids[:n], tokens[:n], ascending(victims), 1, True, _INF)
    sensitive = admitted == inp.waiting.size and not inp.more_waiting and used < budget
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], victims, UNBOUNDED_REPEAT, sensitive, _INF)


@njit(cache=True)
def sarathi_plan_of(view, sets, kv, params):  # type: ignore[no-untyped-def]
    """:func:`sarathi_plan` for Python: ``(ok, ids, tokens, n_decodes, n_admitted, arrival_sensitive)``.

    ``view`` is the table's read-only ``(ints, floats, state)``, ``sets`` ``(running, queue head, more)``, ``kv``
    ``(free, total, block size, prompt allocation, watermark)``; ``ok`` is False where Python must decide (a
    rejection or a preemption, whose order the Python path reports).
    """
    (running, head, more), (free, total, bs, alloc, watermark) = sets, kv
    out = sarathi_plan(
        PlanInput(view[0], view[1], view[2], running, head, more, free, total, bs, alloc, watermark, 0.0), params
    )
    n_dec = n_adm = 0
    for r in out.ids:
        n_dec += rules.is_decode(view[0][IntCol.PROMPT, r], view[0][IntCol.GENERATED, r], view[0][IntCol.COMPUTED, r])
        n_adm += view[2][r] == WAITING
    return out.status == PLAN_OK and out.victims.size == 0, out.ids, out.tokens, n_dec, n_adm, out.arrival_sensitive


SEGMENT = specialize(sarathi_plan)  # the engine's segment loop running Sarathi-Serve's compiled plan


def _plan_arrays(decodes: IntArray, prefills: dict[int, int]) -> tuple[IntArray, IntArray]:
    """Plan rows: every decode with one token, then the prefill rows in insertion order."""
    n_dec = decodes.size
    if not prefills:
        return decodes, np.ones(n_dec, dtype=np.int64)
    ids = np.empty(n_dec + len(prefills), dtype=np.int64)
    ids[:n_dec] = decodes
    ids[n_dec:] = list(prefills)
    tokens = np.ones(ids.size, dtype=np.int64)
    tokens[n_dec:] = list(prefills.values())
    return ids, tokens
