"""Sarathi-Serve's default configuration as a compiled segment: many decisions in one numba call.

Between two events that need Python (an arrival to ingest, a time-series sample, a preemption or a
rejection to decide) every Sarathi-Serve decision is :func:`~baselines._kernels.fcfs_chunked_plan`
followed by the engine's fused step (:func:`llmsched_gym.core.fused.step`). :func:`segment` loops over
both without leaving compiled code, one iteration per decision, exactly as ``engine.step(sarathi.schedule(
engine.view()))`` would with fast-forward off; a test compares every per-request column with the
Python path. :func:`run_segment` is the driver ``llmsched_gym.simulate.run_engine`` uses.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from baselines._kernels import FAST_OK, fcfs_chunked_plan_sorted
from baselines._queue import UNBOUNDED_REPEAT
from llmsched_gym.core.fused import (
    MAX_ITERATIONS,
    SEG_ARRIVAL,
    SEG_CLASSIC,
    SEG_HEAD,
    SEG_IDLE,
    SEG_LIMIT,
    SEG_POLICY,
    STEP_OK,
    SegmentOutcome,
    absorb_segment,
    segment_state,
    step,
    table_columns,
    take_arrivals,
)

if TYPE_CHECKING:
    from baselines.sarathi import SarathiServe
    from llmsched_gym.core.cost_kernels import CompiledCost
    from llmsched_gym.core.engine import Engine

_INF = float("inf")


@njit(cache=True)
def segment(running, head, n_queued, more, st, repeat, bs, prompt_alloc, watermark, budget, max_seqs, form, coef,
            ints, floats, state):  # type: ignore[no-untyped-def]  # fmt: skip
    """Run Sarathi-Serve decisions until ``st.until`` is reached or Python must decide.

    ``head`` is the front of the waiting queue (``n_queued`` ids; ``more``: the queue holds further
    ones) followed, when the whole queue fits, by the staged rows in arrival order; admissions consume
    it in order, staged rows only once arrived. ``st`` is a :class:`~llmsched_gym.core.fused.SegmentState`.
    Each decision's plan runs as a fast-forward stretch of up to ``repeat`` iterations, cut at the next
    arrival when the plan is arrival-sensitive, exactly as the Python path's plans declare.
    Returns ``(status, decisions, iterations, now, busy, last_duration, stamp, n_arrived, n_admitted,
    finished, gaps, gap_weights, log, samples, next_sample, overruns)``; the admitted requests are
    ``head[:n_admitted]`` and ``overruns`` counts plans whose decodes alone exceed the budget.
    """
    until, horizon, now, busy, free, total, admit_seq0, stamp, n_arr, n_rows, n_wait, next_sample, dt = st
    cols = table_columns(ints, floats, state)
    n0 = n_arr
    run = np.empty(running.size + head.size, np.int64)
    run[: running.size] = np.sort(running)  # kept sorted: the plan walks running requests oldest first
    n_run = running.size
    finished = np.empty(run.size, np.int64)
    n_fin = 0
    gaps = np.empty(1024, np.float64)
    weights = np.empty(1024, np.float64)
    n_gaps = 0
    log = np.empty((MAX_ITERATIONS, 6), np.float64)
    samples = np.empty((MAX_ITERATIONS, 4), np.float64)
    n_samples = 0
    h = it = n_iter = overruns = 0
    last = 0.0
    usable = total - watermark
    status = SEG_LIMIT
    while it < MAX_ITERATIONS and now < until:
        n_arr, blocked = take_arrivals(n_arr, n_rows, now, cols[20], cols[2], cols[6], bs, total, usable)
        if blocked:
            status = SEG_ARRIVAL
            break
        end = head.size if head.size == n_queued else n_queued + (n_arr - n0)
        plan = fcfs_chunked_plan_sorted(
            run[:n_run], head[h:end], cols[2], cols[3], cols[4], cols[5], bs, free, usable, watermark, budget, max_seqs
        )
        code, ids, tokens, n_dec, admitted, used = plan
        if code != FAST_OK:
            status = SEG_POLICY
            break
        if ids.size == 0:
            status = SEG_IDLE
            break
        if more and admitted > 0 and h + admitted == head.size:
            status = SEG_HEAD  # later candidates were not given: let Python refill the head first
            break
        stamp += 1
        queue_left = more or h + admitted < end
        deadline = _INF
        if not queue_left and used < budget:  # arrival-sensitive: stop the stretch at the next arrival
            deadline = cols[20][n_arr] if n_arr < n_rows else horizon
        out = step(ids, tokens, repeat, deadline, _INF, now, bs, prompt_alloc, admit_seq0 + h, stamp, n_arr, free,
                   form, coef, cols)  # fmt: skip
        if out[0] != STEP_OK:
            status = SEG_CLASSIC
            break
        overruns += n_dec > budget
        ends = out[3]
        k = ends.size
        t_end = ends[k - 1]
        free += out[5] - out[4]
        log[it, 0] = now
        log[it, 1] = t_end - now
        log[it, 2] = k
        log[it, 3] = (out[2] - out[1]) * k
        log[it, 4] = out[1] * k
        log[it, 5] = total - free
        last = t_end - (ends[k - 2] if k > 1 else now)
        busy += t_end - now
        now = t_end
        it += 1
        n_iter += k
        for j in range(admitted):
            n_run = _insert(run, n_run, head[h + j])
        h += admitted
        fin = out[7]
        if fin.size:
            n_run = _drop(run, n_run, fin)
            finished[n_fin : n_fin + fin.size] = fin
            n_fin += fin.size
        n0_gaps = n_gaps
        gaps, n_gaps = _append(gaps, n_gaps, out[8])
        if out[10]:
            gaps, n_gaps = _append(gaps, n_gaps, out[9])
        weights = _fill(weights, n0_gaps, n_gaps, out[8].size, out[10])
        if now >= next_sample and dt < _INF:  # single-client runs: the kernel records samples itself
            samples[n_samples, 0] = now
            samples[n_samples, 1] = total - free
            samples[n_samples, 2] = n_wait + (n_arr - n0) - h
            samples[n_samples, 3] = n_run
            n_samples += 1
            next_sample = (np.floor(now / dt) + 1.0) * dt
    return (status, it, n_iter, now, busy, last, stamp, n_arr, h, finished[:n_fin], gaps[:n_gaps],
            weights[:n_gaps], log[:it], samples[:n_samples], next_sample, overruns)  # fmt: skip


@njit(cache=True)
def _drop(run, n_run, fin):  # type: ignore[no-untyped-def]
    """Remove the ids in ``fin`` from ``run[:n_run]`` (order kept); returns the new length."""
    j = 0
    for i in range(n_run):
        r = run[i]
        keep = True
        for f in fin:
            if f == r:
                keep = False
                break
        if keep:
            run[j] = r
            j += 1
    return j


@njit(cache=True)
def _insert(run, n_run, rid):  # type: ignore[no-untyped-def]
    """Insert ``rid`` into the sorted ``run[:n_run]``; returns the new length."""
    i = n_run
    while i > 0 and run[i - 1] > rid:
        run[i] = run[i - 1]
        i -= 1
    run[i] = rid
    return n_run + 1


@njit(cache=True)
def _fill(weights, start, stop, n_single, shared_weight):  # type: ignore[no-untyped-def]
    """Weights of the gaps ``[start, stop)``: 1 for the first ``n_single``, ``shared_weight`` for the rest."""
    if stop > weights.size:
        grown = np.empty(max(2 * weights.size, stop), weights.dtype)
        grown[:start] = weights[:start]
        weights = grown
    weights[start : start + n_single] = 1.0
    weights[start + n_single : stop] = shared_weight
    return weights


@njit(cache=True)
def _append(buf, n, values):  # type: ignore[no-untyped-def]
    """Append ``values`` to ``buf[:n]`` (doubling it when full); returns ``(buf, n)``."""
    if n + values.size > buf.size:
        grown = np.empty(max(2 * buf.size, n + values.size), buf.dtype)
        grown[:n] = buf[:n]
        buf = grown
    buf[n : n + values.size] = values
    return buf, n + values.size


def run_segment(sched: SarathiServe, engine: Engine, cost: CompiledCost) -> None:
    """Advance ``engine`` by at least one decision of ``sched``: a compiled segment, else one Python decision."""
    view = engine.view()
    sched.queue.sync(view)
    q = sched.queue.items
    cfg = sched.config
    st = segment_state(engine)
    room = 2 * cfg.max_num_seqs + 1
    n_queued = min(room, len(q))
    staged = np.arange(st.n_arrived, st.n_rows, dtype=np.int64) if len(q) <= room else np.empty(0, np.int64)
    head = np.concatenate((np.fromiter(islice(q, room), dtype=np.int64, count=n_queued), staged))
    out = segment(
        engine.running_ids(), head, n_queued, len(q) > room, st, UNBOUNDED_REPEAT if engine.config.fast_forward else 1,
        engine.pool.block_size, engine.prompt_allocation,
        engine.pool.watermark_blocks, cfg.chunk_size, cfg.max_num_seqs, cost.form, cost.coef,
        engine.table.ints, engine.table.floats, engine.table.state,
    )  # fmt: skip
    *fields, overruns = out  # SegmentOutcome's fields, with the number admitted where the admitted ids go
    n_adm = fields[8]
    fields[8] = head[:n_adm]
    seg = SegmentOutcome(*fields)
    sched.budget_overruns += overruns
    for _ in range(min(n_adm, n_queued)):
        q.popleft()
    q.extend(range(st.n_arrived + max(n_adm - n_queued, 0), seg.n_arrived))
    absorb_segment(engine, seg)
    if seg.decisions == 0:
        engine.step(sched.plan(view))
