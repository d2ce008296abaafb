"""vLLM V0 default scheduler: prefill-first, whole prompts, decodes stall during prefill iterations.

Sources: ``vllm-project/vllm`` V0 ``vllm/core/scheduler.py::_schedule_default`` (no chunked prefill);
``microsoft/sarathi-serve`` ``sarathi/core/scheduler/vllm_scheduler.py``; Sarathi-Serve (Agrawal et al.,
OSDI'24, arXiv 2403.02310) §2.5 Algorithm 2. Spec: ``specs/baselines.md`` §3 (registry ``vllm-v0``; §12.3
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

from dataclasses import dataclass

from baselines._queue import WaitingQueue, decode_block_needs
from baselines.sarathi import decode_with_preemption
from llmsched_gym.core.plan import UNBOUNDED_REPEAT, BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.view import EngineView


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
    """

    name = "vllm-v0"
    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self, max_num_seqs: int = 256, max_num_batched_tokens: int | None = None, max_model_len: int = 8192
    ) -> None:
        self.config = VLLMV0Config(max_num_seqs, max_num_batched_tokens, max_model_len)
        self.queue = WaitingQueue()

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the waiting queue."""
        self.queue.clear()

    def schedule(self, view: EngineView) -> BatchPlan:
        """A prefill-only iteration if any request can be admitted, else a decode-only iteration."""
        self.queue.sync(view)
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
