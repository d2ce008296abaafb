"""A small self-contained work generator for executor tests and benchmarks (not the engine).

:class:`ChunkedDriver` plays a Sarathi-style policy directly on a runner: decodes first, then prefill
chunks of running and then waiting requests within a token budget; when the KV blocks of an iteration do
not fit it preempts the newest running request (recompute: its KV is released and it is later
re-prefilled over prompt plus generated tokens). Optional random holds skip running requests for an
iteration. Its accounting is the engine's on-demand accounting: ``ceil(cached tokens / block_size)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.batch import BatchSummary, IterationWork
from llmsched_gym.core.protocols import Runner


def make_work(ids: Sequence[int], n_tokens: Sequence[int], start: Sequence[int], is_decode: Sequence[bool],
              samples: Sequence[bool]) -> IterationWork:  # fmt: skip
    """Build an :class:`IterationWork` (and its :class:`BatchSummary`) from per-row lists."""
    i = np.asarray(ids, dtype=np.int64)
    n = np.asarray(n_tokens, dtype=np.int64)
    s = np.asarray(start, dtype=np.int64)
    dec = np.asarray(is_decode, dtype=bool)
    smp = np.asarray(samples, dtype=bool)
    summary = BatchSummary(n[~dec], s[~dec], int(dec.sum()), int(s[dec].sum()), int(i.size))
    return IterationWork(i, n, s, dec, smp, summary)


@dataclass(slots=True)
class _Req:
    prompt: int
    target: int
    generated: int = 0
    computed: int = 0
    admitted: int = -1

    @property
    def pending(self) -> int:
        return self.prompt + self.generated - self.computed


class ChunkedDriver:
    """Drive a runner through a workload with chunked prefill, mixed batches, holds and preemption.

    Args:
        runner: The runner (e.g. :class:`~llmsched_gym.executor.runner.LiveRunner`).
        prompt_lens: Prompt length of each request (engine ids ``0..n-1``).
        output_lens: Tokens to generate per request.
        num_blocks: KV blocks (the runner's).
        block_size: Tokens per block.
        token_budget: Tokens per iteration (Sarathi's chunk budget).
        max_batch: Rows per iteration.
        hold_prob: Probability that a running request is skipped in an iteration.
        seed: Seed of the holds.
    """

    def __init__(
        self,
        runner: Runner,
        prompt_lens: Sequence[int],
        output_lens: Sequence[int],
        *,
        num_blocks: int,
        block_size: int = 16,
        token_budget: int = 512,
        max_batch: int = 256,
        hold_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if token_budget < 1 or max_batch < 1:
            raise ValueError(f"ChunkedDriver: token_budget={token_budget} and max_batch={max_batch} must be >= 1")
        if not 0.0 <= hold_prob < 1.0:
            raise ValueError(f"ChunkedDriver: hold_prob={hold_prob} must be in [0, 1)")
        self.runner = runner
        self.reqs = [_Req(int(p), int(o)) for p, o in zip(prompt_lens, output_lens, strict=True)]
        self.num_blocks, self.block_size = num_blocks, block_size
        self.token_budget, self.max_batch = token_budget, max_batch
        self.hold_prob = hold_prob
        self.rng = np.random.default_rng(seed)
        self.running: list[int] = []
        self.waiting: list[int] = list(range(len(self.reqs)))
        self.finished: list[int] = []
        self.times: list[float] = []
        self.works: list[IterationWork] = []
        self.preemptions = 0
        self._admit_seq = 0

    def blocks_held(self) -> int:
        """Blocks the driver's accounting says are held (``sum ceil(computed / block_size)``)."""
        return sum(-(-r.computed // self.block_size) for r in self.reqs)

    def run(self, max_iterations: int = 100_000) -> None:
        """Iterate until every request finished."""
        for _ in range(max_iterations):
            if not self.running and not self.waiting:
                return
            self.step()
        raise RuntimeError(f"ChunkedDriver: not done after {max_iterations} iterations")

    def step(self) -> IterationWork | None:
        """Plan, run and commit one iteration (``None`` when everything was held)."""
        plan = self._plan()
        while plan and self._new_blocks(plan) > self.num_blocks - self.blocks_held():
            if len(self.running) <= 1:
                raise RuntimeError("ChunkedDriver: a single request does not fit the KV pool")
            self._preempt(self.running[-1])
            plan = self._plan()
        if not plan:
            return None
        work = make_work(
            [rid for rid, _ in plan], [k for _, k in plan], [self.reqs[r].computed for r, _ in plan],
            [self.reqs[r].generated >= 1 and self.reqs[r].pending == 1 for r, _ in plan],
            [k == self.reqs[r].pending for r, k in plan],
        )  # fmt: skip
        self.times.append(self.runner.run(work))
        self.works.append(work)
        self._commit(plan)
        return work

    def _plan(self) -> list[tuple[int, int]]:
        budget = self.token_budget
        plan: list[tuple[int, int]] = []
        active = [r for r in self.running if self.rng.random() >= self.hold_prob] if self.hold_prob else self.running
        decodes = [r for r in active if self.reqs[r].generated >= 1 and self.reqs[r].pending == 1]
        for rid in decodes[: min(budget, self.max_batch)]:
            plan.append((rid, 1))
            budget -= 1
        prefills = [r for r in active if r not in decodes] + self.waiting
        for rid in prefills:
            if budget <= 0 or len(plan) >= self.max_batch:
                break
            k = min(self.reqs[rid].pending, budget)
            plan.append((rid, k))
            budget -= k
        return plan

    def _new_blocks(self, plan: list[tuple[int, int]]) -> int:
        bs = self.block_size
        return sum(-(-(self.reqs[r].computed + k) // bs) - -(-self.reqs[r].computed // bs) for r, k in plan)

    def _preempt(self, rid: int) -> None:
        self.running.remove(rid)
        self.reqs[rid].computed = 0
        self.waiting.insert(0, rid)
        self.runner.release(np.array([rid], dtype=np.int64))
        self.preemptions += 1

    def _commit(self, plan: list[tuple[int, int]]) -> None:
        for rid, k in plan:
            req = self.reqs[rid]
            if rid in self.waiting:
                self.waiting.remove(rid)
                self.running.append(rid)
            req.computed += k
            if req.pending == 0:
                req.generated += 1
            if req.generated >= req.target:
                self.running.remove(rid)
                self.finished.append(rid)
                arr = np.array([rid], dtype=np.int64)
                req.computed = 0
                self.runner.release(arr)
                self.runner.forget(arr)
