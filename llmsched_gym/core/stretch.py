"""Building an iteration's work and sizing fast-forward stretches.

A stretch is ``k`` consecutive iterations of one plan: decode rows decode again, prefill rows
process another chunk of the same size. The engine commits it at once when nothing that could
change the scheduler's decision happens inside it. The stretch ends at the first of:

* ``plan.repeat`` iterations;
* a prefill row completing its prefill (or having less than one chunk left);
* a decode row finishing (or, in full-restart catch-up, starting to emit again);
* the first iteration whose KV allocation would not fit;
* the iteration during which the next arrival happens (if the plan is arrival-sensitive), the
  plan's ``wake_at`` passes, or the next time-series sample is due.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray, IntArray, IterationWork
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.table import RequestTable

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine


def build_work(t: RequestTable, ids: IntArray, n: IntArray) -> IterationWork:
    """The runner's view of one iteration of ``{ids: n}`` on the current table."""
    start = t.computed[ids]
    gen = t.generated[ids]
    pend = t.prompt[ids] + gen - start
    is_dec = (pend == 1) & (gen >= 1)
    samples = n == pend
    pre = ~is_dec
    summary = BatchSummary(
        n[pre],
        start[pre],
        int(ids.size - int(pre.sum())),
        int(start[is_dec].sum()),
        int(ids.size),
    )
    return IterationWork(ids, n, start, is_dec, samples, summary)


def _structural_limit(engine: Engine, plan: BatchPlan, work: IterationWork) -> int:
    t = engine.table
    ids = work.ids
    k = plan.repeat
    pre = ~work.is_decode
    if pre.any():
        pend = t.prompt[ids[pre]] + t.generated[ids[pre]] - work.start[pre]
        k = min(k, int((pend // work.n_tokens[pre]).min()))
    dec = ids[work.is_decode]
    if dec.size:
        gen = t.generated[dec]
        k = min(k, int((t.target[dec] - gen).min()))
        behind = t.emitted[dec] - gen
        if behind.max() > 0:
            k = min(k, int(behind[behind > 0].min()))
    return max(k, 1)


def _kv_limit(engine: Engine, ids: IntArray, n: IntArray, k: int) -> int:
    free = engine.pool.free
    if int(engine.blocks_needed(ids, n, k).sum()) <= free:
        return k
    lo, hi = 1, k  # need(lo) fits (validated), need(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if int(engine.blocks_needed(ids, n, mid).sum()) <= free:
            lo = mid
        else:
            hi = mid
    return lo


def _time_limit(ends: FloatArray, deadline: float | None, k: int) -> int:
    if deadline is None or deadline == float("inf"):
        return k
    idx = int(np.searchsorted(ends[:k], deadline, side="left"))
    return min(k, idx + 1)


def iteration_ends(t0: float, durations: FloatArray) -> FloatArray:
    """End times of consecutive iterations, accumulated exactly as a step-by-step loop would."""
    out: FloatArray = np.cumsum(np.concatenate(([t0], durations)))[1:]
    return out


def stretch_length(engine: Engine, plan: BatchPlan, work: IterationWork) -> tuple[int, FloatArray]:
    """How many iterations of ``work`` to commit at once, and their durations."""
    k = _structural_limit(engine, plan, work)
    if k > 1:
        k = _kv_limit(engine, work.ids, work.n_tokens, k)
    if k == 1:
        return 1, np.array([engine.runner.run(work)], dtype=np.float64)
    durations = engine.runner.run_stretch(work, k)
    ends = iteration_ends(engine.now, durations)
    if plan.arrival_sensitive:
        k = _time_limit(ends, engine.next_arrival_time, k)
    k = _time_limit(ends, plan.wake_at, k)
    k = _time_limit(ends, engine.next_sample_time, k)
    return k, durations[:k]
