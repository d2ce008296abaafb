"""The fused engine step: plan check, closed-form cost and commit in one compiled call.

When the runner's cost model has a compiled form (:mod:`llmsched_gym.core.cost_kernels`), one
decision costs a single numba call instead of three calls and the Python glue between them. The
kernel runs exactly the classic path's kernels (:func:`~llmsched_gym.core.kernels.prepare`, the
cost model's ``iteration_time`` or ``stretch_times``, :func:`~llmsched_gym.core.kernels.stretch_ends`
and :func:`~llmsched_gym.core.kernels.commit`) in the same order, so results are identical. A plan
that is invalid or does not fit the free KV blocks leaves the table untouched and is handed back to
the classic path, which raises or repairs it with its usual messages.

:func:`step` is also callable from other compiled code: a scheduler with a compiled policy can run
whole segments of decisions without returning to Python (``baselines/_fused_sarathi.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numba import njit

from llmsched_gym.core import cost_kernels, kernels
from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.commit import CommitOutcome, record_token_times
from llmsched_gym.core.cost_kernels import CompiledCost
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.table import FLOAT_COLUMNS, INT_COLUMNS

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

_I = {name: i for i, name in enumerate(INT_COLUMNS)}
_F = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
_MARK, _PROMPT, _GENERATED, _COMPUTED, _BLOCKS = (_I[c] for c in ("mark", "prompt", "generated", "computed", "blocks"))
_TARGET, _EMITTED, _PROMPT_DONE, _ADMIT_SEQ = (_I[c] for c in ("target", "emitted", "prompt_done", "admit_seq"))
_TBT_N, _TBT_VIOL = _I["tbt_n"], _I["tbt_viol"]
_FIRST_SCHED, _FIRST_TOKEN, _LAST_TOKEN = (_F[c] for c in ("first_sched", "first_token", "last_token"))
_FINISH, _ADMIT_TIME, _TBT_MAX = (_F[c] for c in ("finish", "admit_time", "tbt_max"))
_TBT_SUM, _SLO_TBT, _ARRIVAL = (_F[c] for c in ("tbt_sum", "slo_tbt", "arrival"))

STEP_OK = 0
STEP_SHORT = 5  # the plan's first iteration needs more blocks than are free
_INF = float("inf")


class FusedOutcome(NamedTuple):
    """A stretch the fused step committed: iteration end times, decode rows, tokens per iteration, commit."""

    ends: FloatArray
    n_decodes: int
    tokens: int
    commit: CommitOutcome


def fused_step(engine: Engine, cost: CompiledCost, plan: BatchPlan, repeat: int) -> FusedOutcome | None:
    """Run ``plan`` through :func:`step`; ``None`` (table untouched) when the classic path must handle it."""
    arrival = engine.next_arrival_time if plan.arrival_sensitive else None
    wake = plan.wake_at
    engine.stamp += 1
    t = engine.table
    out = step_packed(
        plan.ids, plan.tokens, repeat, _INF if arrival is None else arrival, _INF if wake is None else wake,
        engine.now, engine.pool.block_size, engine.prompt_allocation, engine.admit_counter, engine.stamp, t.n,
        engine.pool.free, cost.form, cost.coef, t.ints, t.floats, t.state,
    )  # fmt: skip
    if out[0] != STEP_OK:
        return None
    _, n_dec, tokens, new, freed, n_shared_rows, emitted, n_adm, n_fin, n_emit, k, n_gap, ints, floats = out
    ends = floats[:k]
    rec = engine.recorder
    if n_gap:
        rec.add_tbt(floats[k : k + n_gap])
    if n_shared_rows:
        rec.add_tbt(floats[k + n_gap :], n_shared_rows)
    if n_emit and rec.config.token_times:
        rows = ints[n_adm + n_fin :]
        record_token_times(rec, ends, rows[:n_emit], rows[n_emit:])
    commit = CommitOutcome(new, freed, ints[:n_adm], ints[n_adm : n_adm + n_fin], emitted)
    return FusedOutcome(ends, n_dec, tokens, commit)


@njit(cache=True)
def table_columns(ints, floats, state):  # type: ignore[no-untyped-def]
    """The columns :func:`step` reads and writes, as one tuple (the order its unpacking expects)."""
    return (ints[_MARK], state, ints[_PROMPT], ints[_GENERATED], ints[_COMPUTED], ints[_BLOCKS], ints[_TARGET],
            ints[_EMITTED], ints[_PROMPT_DONE], floats[_FIRST_SCHED], floats[_FIRST_TOKEN], floats[_LAST_TOKEN],
            floats[_FINISH], floats[_ADMIT_TIME], ints[_ADMIT_SEQ], floats[_TBT_MAX], floats[_TBT_SUM], ints[_TBT_N],
            ints[_TBT_VIOL], floats[_SLO_TBT], floats[_ARRIVAL])  # fmt: skip


@njit(cache=True)
def step_packed(ids, n, repeat, deadline_a, deadline_b, now, bs, prompt_alloc, admit_seq0, stamp, n_arrived, free,
                form, coef, ints, floats, state):  # type: ignore[no-untyped-def]  # fmt: skip
    """:func:`step` with its arrays packed into one integer and one float array (fewer objects to box).

    Returns ``(status, n_dec, tokens, new_blocks, freed_blocks, n_shared_rows, emitted, n_admitted,
    n_finished, n_emit, k, n_gaps1, ints, floats)``: ``ints`` holds admitted, finished, emit rows and emit
    counts; ``floats`` the ``k`` iteration ends, ``gaps1`` and the shared gaps.
    """
    out = step(ids, n, repeat, deadline_a, deadline_b, now, bs, prompt_alloc, admit_seq0, stamp, n_arrived, free,
               form, coef, table_columns(ints, floats, state))  # fmt: skip
    status, n_dec, tokens, ends, new, freed, admitted, finished, gaps1, shared, n_shared_rows, emitted, rows, counts = (
        out
    )
    ints = np.concatenate((admitted, finished, rows, counts))
    floats = np.concatenate((ends, gaps1, shared))
    return (status, n_dec, tokens, new, freed, n_shared_rows, emitted, admitted.size, finished.size, rows.size,
            ends.size, gaps1.size, ints, floats)  # fmt: skip


@njit(cache=True)
def step(ids, n, repeat, deadline_a, deadline_b, now, bs, prompt_alloc, admit_seq0, stamp, n_arrived, free, form,
         coef, cols):  # type: ignore[no-untyped-def]  # fmt: skip
    """Check, cost and commit ``repeat`` (at most) iterations of ``{ids: n}``.

    ``cols`` is :func:`table_columns`. The stretch is cut after the
    first iteration ending at or after either deadline (``inf`` for none).

    Returns ``(status, n_dec, tokens, ends, new_blocks, freed_blocks, admitted, finished, gaps1, shared,
    n_shared_rows, emitted, emit_rows, emit_counts)``; ``status`` is :data:`STEP_OK`, a
    :mod:`~llmsched_gym.core.kernels` error code, or :data:`STEP_SHORT`. Only :data:`STEP_OK` changes
    the table.
    """
    (mark, state, prompt, generated, computed, blocks, target, emitted, prompt_done, first_sched, first_token,
     last_token, finish, admit_time, admit_seq, tbt_max, tbt_sum, tbt_n, tbt_viol, slo_tbt, _) = cols  # fmt: skip
    err, _row, start, is_dec, _samples, pre_tokens, pre_ctx, n_dec, dec_ctx, need1, k, tokens = kernels.prepare(
        ids, n, mark, stamp, n_arrived, state, prompt, generated, computed, blocks, target, emitted, bs,
        prompt_alloc, repeat, free,
    )  # fmt: skip
    if err == kernels.OK and need1 > free:
        err = STEP_SHORT
    empty_f = np.empty(0, np.float64)
    if err != kernels.OK:
        return err, 0, 0, empty_f, 0, 0, start[:0], start[:0], empty_f, empty_f, 0, 0, start[:0], start[:0]
    s_c, s_cx, s_cc, s_x = cost_kernels.aggregates(pre_tokens, pre_ctx)
    m = ids.size
    if k == 1:
        ends = np.empty(1, np.float64)
        ends[0] = now + cost_kernels.iteration_time(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, m)
    else:
        durations = cost_kernels.stretch_times(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, m, k)
        ends = kernels.stretch_ends(now, durations, deadline_a, deadline_b)
    out = kernels.commit(
        ids, n, is_dec, ends, now, bs, prompt_alloc, admit_seq0, state, prompt, generated, computed, blocks,
        target, emitted, prompt_done, first_sched, first_token, last_token, finish, admit_time, admit_seq,
        tbt_max, tbt_sum, tbt_n, tbt_viol, slo_tbt,
    )  # fmt: skip
    new, freed, admitted, finished, gaps1, shared, n_shared_rows, n_emitted, emit_rows, emit_counts = out
    return (STEP_OK, n_dec, tokens, ends, new, freed, admitted, finished, gaps1, shared, n_shared_rows, n_emitted,
            emit_rows, emit_counts)  # fmt: skip


# ---- segments: many decisions of a compiled policy in one call -----------------------------------------------
SEG_LIMIT = 0  # stopped at the time limit (the staging horizon or a sample due) or the iteration cap
SEG_POLICY = 1  # the policy needs its Python path (a preemption or a rejection to decide)
SEG_IDLE = 2  # the policy's plan is empty
SEG_CLASSIC = 3  # the plan must go through the engine's classic path (invalid or short of KV blocks)
SEG_HEAD = 4  # the policy consumed every queued candidate it was given
SEG_ARRIVAL = 5  # a due arrival can never fit: Python takes it in (and rejects it with its reason)
MAX_ITERATIONS = 4096  # per segment (bounds the iteration log buffer)
STAGE_ROWS = 256  # requests a segment driver stages ahead of the clock


class SegmentState(NamedTuple):
    """The engine scalars a segment kernel starts from (see :func:`segment_state`).

    ``sample_dt`` is the time-series period when the kernel records samples itself (single-client
    runs), else ``inf`` and ``until`` includes the next sample time.
    """

    until: float
    horizon: float
    now: float
    busy: float
    free: int
    total: int
    admit_seq0: int
    stamp: int
    n_arrived: int
    n_rows: int
    n_waiting: int
    next_sample: float
    sample_dt: float


def segment_state(engine: Engine) -> SegmentState:
    """Stage upcoming requests and return the engine's clock, KV and counters for a segment kernel."""
    e = engine
    e.stage(STAGE_ROWS)
    t, pool, rec = e.table, e.pool, e.recorder
    until = e.stage_horizon
    dt = rec.config.sample_dt
    single = e._max_client == 0 and not t.client[t.n : t.rows].any()
    if dt is None or not single:
        until = min(until, rec.next_sample)
        dt = _INF
    return SegmentState(
        until, e.stage_horizon, e.now, e.busy_time, pool.free, pool.total, e.admit_counter, e.stamp, t.n, t.rows,
        e.n_waiting, rec.next_sample, dt,
    )  # fmt: skip


@njit(cache=True)
def take_arrivals(n_arrived, n_rows, now, arrival, prompt, target, bs, total, usable):  # type: ignore[no-untyped-def]
    """Take in staged rows whose arrival is due; returns ``(n_arrived, blocked)``.

    ``blocked`` is True when the next due row can never run (:func:`~llmsched_gym.core.kernels.arrival_fit`,
    the engine's own check): the segment must stop so that Python takes it in and rejects it with its reason.
    """
    while n_arrived < n_rows and arrival[n_arrived] <= now:
        r = n_arrived
        if kernels.arrival_fit(prompt[r], target[r], bs, total, usable)[0] != kernels.FITS:
            return n_arrived, True
        n_arrived += 1
    return n_arrived, False


class SegmentOutcome(NamedTuple):
    """What a segment kernel did: ``decisions`` engine steps of ``iterations`` iterations in all.

    ``log`` rows are the iteration log's ``(start, duration, iterations, prefill tokens, decode tokens,
    blocks used)`` per decision; ``samples`` rows are ``(time, blocks used, waiting, running)``;
    ``gaps`` are TBT samples with ``gap_weights``.
    """

    status: int
    decisions: int
    iterations: int
    now: float
    busy: float
    last_duration: float
    stamp: int
    n_arrived: int
    admitted: IntArray
    finished: IntArray
    gaps: FloatArray
    gap_weights: FloatArray
    log: FloatArray
    samples: FloatArray
    next_sample: float


def absorb_segment(engine: Engine, seg: SegmentOutcome) -> None:
    """Book a segment's arrivals and decisions into the engine, as the classic path would have."""
    e = engine
    t = e.table
    e.stamp = seg.stamp
    arrived = seg.n_arrived - t.n
    if arrived:
        e._max_client = max(e._max_client, int(t.client[t.n : seg.n_arrived].max()))
        t.n = seg.n_arrived
        e._unfinished += arrived
        e.n_waiting += arrived
    k = seg.decisions
    if k == 0:
        return
    e.events_finished.clear()
    e.events_evicted.clear()
    e.arrival_mark = t.n
    e.decisions += k
    e.iterations += seg.iterations
    e.now, e.busy_time, e.last_duration = seg.now, seg.busy, seg.last_duration
    e._idle_streak = 0
    e.pool.free = e.pool.total - int(seg.log[k - 1, 5])
    e._book_running(seg.admitted, seg.finished)
    rec = e.recorder
    rec.add_tbt_weighted(seg.gaps, seg.gap_weights)
    if rec.config.iterations:
        ints = seg.log[:, 2:].astype(np.int64).tolist()
        rec.iterations.extend((a, d, *rest) for (a, d), rest in zip(seg.log[:, :2].tolist(), ints, strict=True))
    if seg.samples.size:
        ints = seg.samples[:, 1:].astype(np.int64).tolist()
        rec.samples.extend((s, u, w, r) for s, (u, w, r) in zip(seg.samples[:, 0].tolist(), ints, strict=True))
        rec.next_sample = seg.next_sample
    if e.now >= rec.next_sample:
        e._sample_until(e.now)
