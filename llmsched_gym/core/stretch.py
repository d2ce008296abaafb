"""Checking a plan, building its work and sizing fast-forward stretches.

A stretch is ``k`` consecutive iterations of one plan: decode rows decode again, prefill rows
process another chunk of the same size. The engine commits it at once when nothing that could
change the scheduler's decision happens inside it. The stretch ends at the first of:

* ``plan.repeat`` iterations;
* a prefill row completing its prefill (or having less than one chunk left);
* a decode row finishing (or, in full-restart catch-up, starting to emit again);
* the first iteration whose KV allocation would not fit;
* the iteration during which the next arrival happens (if the plan is arrival-sensitive) or the
  plan's ``wake_at`` passes.

Time-series samples are taken at the first decision point at or after each sample time (with that
point's actual time), so sampling never shortens a stretch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from llmsched_gym.core import kernels
from llmsched_gym.core.batch import BatchSummary, FloatArray, IntArray, IterationWork
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.table import STATE_NAMES, RequestTable
from llmsched_gym.errors import InvalidPlanError

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_INF = float("inf")


class Prepared(NamedTuple):
    """A checked plan: the runner's work, new blocks for one iteration, the stretch bound, total tokens."""

    work: IterationWork
    need1: int
    k: int
    tokens: int


def prepare(engine: Engine, ids: IntArray, n: IntArray, repeat: int) -> Prepared:
    """Check ``{ids: n}`` against the table (raising :class:`InvalidPlanError`) and build its work."""
    t = engine.table
    engine.stamp += 1
    out = kernels.prepare(
        ids, n, t.mark, engine.stamp, t.n, t.state, t.prompt, t.generated, t.computed, t.blocks, t.target,
        t.emitted, engine.pool.block_size, engine.prompt_allocation, repeat, engine.pool.free,
    )  # fmt: skip
    err, row, start, is_dec, samples, pre_tokens, pre_ctx, n_dec, dec_ctx, need1, k, tokens = out
    if err != kernels.OK:
        raise _plan_error(t, err, int(ids[row]), int(n[row]))
    summary = BatchSummary(pre_tokens, pre_ctx, int(n_dec), int(dec_ctx), int(ids.size))
    return Prepared(IterationWork(ids, n, start, is_dec, samples, summary), int(need1), int(k), int(tokens))


def _plan_error(t: RequestTable, err: int, rid: int, tokens: int) -> InvalidPlanError:
    if err == kernels.ERR_UNKNOWN:
        return InvalidPlanError(f"rule 'schedule known requests': id {rid} has not arrived (0..{t.n - 1})")
    if err == kernels.ERR_STATE:
        state = STATE_NAMES[int(t.state[rid])]
        return InvalidPlanError(f"rule 'schedule only waiting or running requests': request {rid} is {state}")
    if err == kernels.ERR_DUPLICATE:
        return InvalidPlanError(f"rule 'each request at most once per plan': request {rid} appears twice")
    pend = int(t.prompt[rid] + t.generated[rid] - t.computed[rid])
    return InvalidPlanError(f"rule 'tokens available (1 <= n <= pending)': request {rid} asks {tokens} of {pend}")


def run_iterations(engine: Engine, plan: BatchPlan, prep: Prepared) -> FloatArray:
    """Run one iteration, or a fast-forward stretch; return the end time of each iteration.

    ``prep.k`` is already bounded by the plan's repeat, the structure of the rows and KV capacity;
    the stretch is further cut after the iteration during which an arrival (if the plan is
    arrival-sensitive) or the plan's wake-up time falls.
    """
    work = prep.work
    if prep.k == 1:
        return np.array([engine.now + engine.runner.run(work)], dtype=np.float64)
    arrival = engine.next_arrival_time if plan.arrival_sensitive else None
    wake = plan.wake_at
    ends: FloatArray = kernels.stretch_ends(
        engine.now,
        engine.runner.run_stretch(work, prep.k),
        _INF if arrival is None else arrival,
        _INF if wake is None else wake,
    )
    return ends
