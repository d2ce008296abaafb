"""Sarathi-Serve: chunked prefills with stall-free (decode-first) hybrid batching.

Paper: Agrawal et al., "Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve",
OSDI'24 (arXiv 2403.02310), Algorithm 3 and §4.1–4.3. Code: ``microsoft/sarathi-serve``,
``sarathi/core/scheduler/sarathi_scheduler.py``. Spec: ``specs/baselines.md`` §6.

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
      default; dynamic chunking is not implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines._queue import UNBOUNDED_REPEAT, WaitingQueue, decode_block_needs
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.view import EngineView


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
    """

    chunk_size: int = 512
    max_num_seqs: int = 128
    order: str = "fcfs"
    max_model_len: int | None = None
    tile_align: bool = False

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


class SarathiServe:
    """Sarathi-Serve scheduler (``sarathi`` / ``sarathi-spf``); see the module docstring.

    Args:
        chunk_size: Token budget per iteration.
        max_num_seqs: Cap on KV-holding requests.
        order: ``"fcfs"`` or ``"spf"``.
        max_model_len: Optional length limit (rejects longer requests).
        tile_align: Round the prefill budget down to a multiple of 32.
    """

    requirements = EngineRequirements(allocation="prompt")

    def __init__(
        self,
        chunk_size: int = 512,
        max_num_seqs: int = 128,
        order: str = "fcfs",
        max_model_len: int | None = None,
        tile_align: bool = False,
    ) -> None:
        self.config = SarathiConfig(chunk_size, max_num_seqs, order, max_model_len, tile_align)
        self.name = "sarathi" if order == "fcfs" else "sarathi-spf"
        self.queue = WaitingQueue()
        self.budget_overruns = 0

    def reset(self, *, seed: int | None = None) -> None:
        """Clear the waiting queue and statistics."""
        self.queue.clear()
        self.budget_overruns = 0

    # ---- the iteration -------------------------------------------------------------------
    def schedule(self, view: EngineView) -> BatchPlan:
        """Build the hybrid batch: decodes, ongoing prefills, then admissions."""
        self.queue.sync(view)
        running = np.sort(view.running)
        pend = view.pending_array(running)
        is_dec = (pend == 1) & (view.generated[running] >= 1)
        free = view.free_blocks
        needs = decode_block_needs(view, running[is_dec])
        total_need = int(needs.sum())
        if total_need <= free:
            decodes = running[is_dec].tolist()
            partials = running[~is_dec].tolist()
            preempted: list[int] = []
            free -= total_need
        else:
            decodes, partials, preempted, free = self._decode_with_preemption(view, running.tolist(), free)
        tokens: dict[int, int] = dict.fromkeys(decodes, 1)
        used = len(decodes)
        if used > self.config.chunk_size:
            self.budget_overruns += 1
        used = self._partial_prefills(view, partials, tokens, used)
        admitted, rejects = self._admit(view, tokens, used, free, len(running) - len(preempted))
        used += admitted
        if preempted:
            self.queue.push_front(sorted(preempted))
            return BatchPlan.of(tokens, preempt=preempted, reject=rejects)
        sensitive = used < self.config.chunk_size and (len(self.queue) == 0 or self.config.order == "spf")
        return BatchPlan.of(tokens, reject=rejects, repeat=UNBOUNDED_REPEAT, arrival_sensitive=sensitive)

    def _decode_with_preemption(
        self, view: EngineView, order: list[int], free: int
    ) -> tuple[list[int], list[int], list[int], int]:
        """Sarathi's decode pass when slots run out: preempt the youngest unprocessed request."""
        decodes: list[int] = []
        partials: list[int] = []
        preempted: list[int] = []
        bs = view.block_size
        while order:
            rid = order.pop(0)
            if view.pending(rid) != 1 or view.generated[rid] < 1:
                partials.append(rid)
                continue
            need = max(0, -(-(int(view.computed[rid]) + 1) // bs) - int(view.blocks[rid]))
            while need > free and order:
                victim = order.pop()
                preempted.append(victim)
                free += int(view.blocks[victim])
            if need > free:
                preempted.append(rid)
                free += int(view.blocks[rid])
                continue
            free -= need
            decodes.append(rid)
        return decodes, partials, preempted, free

    def _budget_left(self, used: int) -> int:
        left = self.config.chunk_size - used
        if self.config.tile_align and left > 32:
            left -= left % 32
        return max(left, 0)

    def _partial_prefills(self, view: EngineView, partials: list[int], tokens: dict[int, int], used: int) -> int:
        for rid in partials:
            chunk = min(view.pending(rid), self._budget_left(used))
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
            chunk = min(pend, self._budget_left(used + added))
            blocks = view.admission_blocks(rid)
            if chunk == 0 or n_active + 1 > cfg.max_num_seqs or free - blocks < view.watermark_blocks:
                break
            q.popleft()
            tokens[rid] = chunk
            added += chunk
            free -= blocks
            n_active += 1
        return added, rejects
