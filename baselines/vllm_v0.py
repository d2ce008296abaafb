"""vLLM V0 default scheduler: prefill-first, whole prompts, decodes stall during prefill iterations.

Sources: ``vllm-project/vllm`` V0 ``vllm/core/scheduler.py::_schedule_default`` (no chunked prefill);
``microsoft/sarathi-serve`` ``sarathi/core/scheduler/vllm_scheduler.py``; Sarathi-Serve (Agrawal et al.,
OSDI'24, arXiv 2403.02310) §2.5 Algorithm 2. Spec: ``docs/specs/baselines.md`` §3 (registry ``vllm-v0``; §12.3
``vllm-fcfs-threshold`` is the same policy).

Per iteration: a prefill pass walks the FCFS waiting queue and admits whole (re-)prefills while the
watermark check ``free - blocks >= watermark`` holds, the batch's prefill tokens stay within
``max_num_batched_tokens`` and at most ``max_num_seqs`` requests hold KV; a request longer than the
prompt limit is rejected and the walk continues. If anything was admitted the iteration is
prefill-only (running decodes stall). Otherwise every running request decodes one token, oldest
admission first; when a decode needs a block and none is free the newest running request is
recompute-preempted (the decode itself when it is the last candidate).

Deviations from the spec and code:
    * ``max_model_len`` defaults to 8192 (the sharegpt context cap of the Sarathi/SLAI runs, spec §13.1),
      so ``max_num_batched_tokens`` defaults to ``max(8192, 2048) = 8192``. The prompt limit is
      ``min(max_model_len, max_num_batched_tokens)`` as upstream V0 without chunked prefill.
    * The decode slot check asks for a block only when the next token needs one (spec §3); upstream's
      ``can_append_slots`` conservatively wants one free block per running sequence.
    * A waiting request whose (re-)prefill needs more blocks than the pool holds above the watermark is
      rejected (upstream ``AllocStatus.NEVER``), not left to block the queue.
    * Preemption is recompute with the engine's restart semantics (spec §1.3); no swapping.
    * Victims re-enter the waiting queue at the front, oldest admission first (upstream ``extendleft``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from baselines._queue import (
    WaitingQueue,
    decode_block_needs,
    decode_with_preemption,
    preempt_for_decodes,
    run_fcfs_segment,
)
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
class VLLMV0Config:
    """vLLM V0 parameters (spec §3 table, upstream defaults).

    Attributes:
        max_num_seqs: Cap on requests holding KV.
        max_num_batched_tokens: Prefill tokens per iteration; ``None`` means ``max(max_model_len, 2048)``.
        max_model_len: Longest (re-)prefill accepted; longer requests are rejected.
    """

    max_num_seqs: int = 256
    max_num_batched_tokens: int | None = None
    max_model_len: int = 8192

    def __post_init__(self) -> None:
        """Validate parameters."""
        if self.max_num_seqs < 1:
            raise ValueError(f"VLLMV0Config: max_num_seqs={self.max_num_seqs} must be >= 1 (upstream 256)")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < 1:
            raise ValueError(
                f"VLLMV0Config: max_num_batched_tokens={self.max_num_batched_tokens} must be >= 1, or None "
                "for max(max_model_len, 2048)"
            )
        if self.max_model_len < 1:
            raise ValueError(f"VLLMV0Config: max_model_len={self.max_model_len} must be >= 1 (default 8192)")

    @property
    def batch_tokens(self) -> int:
        """The effective per-iteration prefill token cap."""
        if self.max_num_batched_tokens is None:
            return max(self.max_model_len, 2048)
        return self.max_num_batched_tokens

    @property
    def prompt_limit(self) -> int:
        """Longest (re-)prefill the scheduler accepts."""
        return min(self.max_model_len, self.batch_tokens)


class VLLMV0:
    """vLLM V0 prefill-first scheduler (``vllm-v0``, ``vllm-fcfs-threshold``); see the module docstring.

    Args:
        max_num_seqs: Cap on requests holding KV.
        max_num_batched_tokens: Prefill tokens per iteration (``None``: ``max(max_model_len, 2048)``).
        max_model_len: Longest accepted (re-)prefill.
        compiled: Run decisions in compiled segments (:func:`vllm_v0_plan`, the same rules) when the engine has a
            compiled cost model; off gives the Python path only.
    """

    name = "vllm-v0"
    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        max_num_seqs: int = 256,
        max_num_batched_tokens: int | None = None,
        max_model_len: int = 8192,
        compiled: bool = True,
    ) -> None:
        self.config = VLLMV0Config(max_num_seqs, max_num_batched_tokens, max_model_len)
        self.queue = WaitingQueue()
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
        cfg = self.config
        params = (cfg.max_num_seqs, cfg.batch_tokens, cfg.prompt_limit)
        seg, view = run_fcfs_segment(engine, self.queue, SEGMENT, params, cfg.max_num_seqs + 1)
        if seg.outcome.decisions == 0:
            engine.step(self._plan(view))

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the waiting queue."""
        self.queue.clear()

    def schedule(self, view: EngineView) -> BatchPlan:
        """A prefill-only iteration if any request can be admitted, else a decode-only iteration."""
        self.queue.sync(view)
        return self._plan(view)

    def _plan(self, view: EngineView) -> BatchPlan:
        """:meth:`schedule` for a view whose arrivals the queue has already taken in."""
        tokens, rejects = self._prefill_pass(view)
        if tokens:
            return BatchPlan.of(tokens, reject=rejects)
        return self._decode_pass(view, rejects)

    def _prefill_pass(self, view: EngineView) -> tuple[dict[int, int], list[tuple[int, str]]]:
        """Admit whole (re-)prefills FCFS until one does not fit; reject over-long requests."""
        cfg = self.config
        tokens: dict[int, int] = {}
        rejects: list[tuple[int, str]] = []
        q = self.queue.items
        free, watermark = view.free_blocks, view.watermark_blocks
        usable = view.total_blocks - watermark
        seq_room = cfg.max_num_seqs - len(view.running)
        batched = 0
        while q:
            rid = q[0]
            n = view.pending(rid)
            blocks = view.admission_blocks(rid)
            if n > cfg.prompt_limit or blocks > usable:
                why = f"max_model_len/batch limit {cfg.prompt_limit}" if n > cfg.prompt_limit else "the KV pool"
                rejects.append((rid, f"{n} prefill tokens exceed {why}"))
                q.popleft()
                continue
            if free - blocks < watermark or batched + n > cfg.batch_tokens or len(tokens) >= seq_room:
                break
            q.popleft()
            tokens[rid] = n
            batched += n
            free -= blocks
        return tokens, rejects

    def _decode_pass(self, view: EngineView, rejects: list[tuple[int, str]]) -> BatchPlan:
        """Every running request decodes; preempt the newest while a needed block is missing."""
        running = view.running
        if running.size == 0:
            return BatchPlan.of({}, reject=rejects)
        free = view.free_blocks
        if int(decode_block_needs(view, running).sum()) <= free:
            # Stable until a finish or a KV shortfall; an arrival matters only if the queue is empty
            # (a non-empty queue's head is blocked by the watermark or the sequence cap).
            return BatchPlan.of(
                dict.fromkeys(running.tolist(), 1),
                reject=rejects,
                repeat=UNBOUNDED_REPEAT,
                arrival_sensitive=len(self.queue) == 0,
            )
        decodes, _, preempted, _ = decode_with_preemption(view, running.tolist(), free)
        self.queue.push_front(preempted[::-1])
        return BatchPlan.of(dict.fromkeys(decodes, 1), preempt=preempted, reject=rejects)


# ---- vLLM V0 in compiled code (a plan function of llmsched_gym.core.segment) ---------------------------------
@njit(cache=True)
def vllm_v0_plan(inp, params):  # type: ignore[no-untyped-def]
    """VLLM V0's iteration; ``params = (max_num_seqs, batch_tokens, prompt_limit)``; see :class:`VLLMV0`.

    The prefill pass admits whole (re-)prefills from the queue head; if it admits none, every running request
    decodes, preempting the newest while a block is missing (victims re-enter the queue front newest first).
    Python decides rejections (an over-long request, or one that can never fit, at the queue head).
    """
    max_seqs, batch_tokens, prompt_limit = params
    ints, bs, running = inp.ints, inp.block_size, inp.running
    ids, tokens = (
        np.empty(running.size + inp.waiting.size, np.int64),
        np.ones(running.size + inp.waiting.size, np.int64),
    )
    free, n, batched = inp.free, 0, 0
    for r in inp.waiting:
        p, g, c = ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]
        x = rules.pending(p, g, c)
        b = rules.admission_blocks(p, g, ints[IntCol.BLOCKS, r], bs) if inp.prompt_alloc else 0
        if x > prompt_limit or b > inp.total - inp.watermark:
            return PlanOutput(PLAN_PYTHON, ids[:0], ids[:0], ids[:0], 1, True, _INF)
        if free - b < inp.watermark or batched + x > batch_tokens or n >= max_seqs - running.size:
            break
        ids[n], tokens[n], n, batched, free = r, x, n + 1, batched + x, free - b
    if n or running.size == 0:  # a prefill-only iteration, or nothing to run (idle)
        return PlanOutput(PLAN_OK, ids[:n], tokens[:n], ids[:0], 1, True, _INF)
    need = 0
    for r in running:
        need += rules.decode_blocks(ints[IntCol.COMPUTED, r], ints[IntCol.BLOCKS, r], bs)
    if need <= inp.free:
        sensitive = inp.waiting.size == 0 and not inp.more_waiting
        return PlanOutput(PLAN_OK, running.copy(), tokens[: running.size], ids[:0], UNBOUNDED_REPEAT, sensitive, _INF)
    dec, _, victims, _ = preempt_for_decodes(running, ints, bs, inp.free)
    return PlanOutput(PLAN_OK, dec, tokens[: dec.size], victims[::-1].copy(), 1, True, _INF)


SEGMENT = specialize(vllm_v0_plan)  # the engine's segment loop running vLLM V0's compiled plan
