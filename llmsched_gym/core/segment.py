"""The compiled decision loop: schedule → check → run → commit, decision after decision, in one numba call.

A *plan function* is a policy written as a numba function ``plan(inp: PlanInput, params) -> PlanOutput``: it
sees the request table (read-only), the running and waiting ids, the KV pool and the clock, and returns the batch,
the running requests to preempt first and the plan's fast-forward promise (as :class:`~llmsched_gym.core.plan.
BatchPlan`), or ``PLAN_PYTHON`` to hand the decision to Python. ``params`` is any numba value (numbers, arrays,
tuples of them), passed through untouched.

:func:`specialize` compiles the loop around a plan function. Per decision the loop takes in due staged arrivals,
calls the plan function and runs :func:`_decide`, exactly ``engine.step``'s decision: rule checks
(:mod:`~llmsched_gym.core.check`), the engine's eviction of the victims, the stretch's cost
(:mod:`~llmsched_gym.core.run`) and commit (:mod:`~llmsched_gym.core.commit`), then :func:`_book`: running
set (admission order), waiting queue (arrivals join its back; victims re-enter at its front in the order given,
``REQUEUE_FRONT``, or at their arrival-order place, ``REQUEUE_ARRIVAL``), clock, counters and the record. An empty
plan jumps the clock to the next arrival. The loop stops at a time limit, a decision or iteration cap, an event
of the stop mask (``EV_*``), or where Python must decide (``STOP_*``: nothing of that decision is done).
:meth:`~llmsched_gym.core.engine.Engine.run_segment` books what it did; :func:`hold` is the RL environment's
step. numba cannot cache a function taking another compiled function as an argument, so :func:`specialize`
compiles a copy of the loop per plan function (cached next to this module under the plan function's name and a
hash of its source; editing a function the plan function calls needs ``__pycache__`` cleared, as always).
"""

from __future__ import annotations

import hashlib
import inspect
import types
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit

from llmsched_gym.core import check as chk
from llmsched_gym.core import commit as cmt
from llmsched_gym.core import rules
from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.commit import EV_ADMIT, EV_ARRIVAL, EV_EVICT, EV_FINISH, EV_FIRST_TOKEN, Outcome
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.run import costed_ends
from llmsched_gym.core.table import FloatCol, IntCol

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine

PLAN_OK, PLAN_PYTHON = 0, 1
SEGMENT_DECISIONS = 4096  # default decision cap of one segment call
STOP_LIMIT = 0  # a time limit (staging horizon, a sample due in multi-client runs), a cap, or the record is full
STOP_EVENT = 1  # an event of the stop mask happened (see ``events``)
STOP_PYTHON = 2  # the plan function returned PLAN_PYTHON
STOP_IDLE = 3  # an empty plan the loop cannot idle itself (victims, a wake-up time, no staged arrival)
STOP_INVALID = 4  # the plan breaks a rule or needs more KV blocks than are free: engine.step raises or repairs it
STOP_REJECT = 5  # a due arrival can never fit: Python takes it in and rejects it with its reason
STOP_HEAD = 6  # the plan admitted every queued request it was given while more wait
# Victims return to the queue's front (REQUEUE_FRONT), or the queue is every waiting request in arrival order
# (REQUEUE_ARRIVAL: the kernel builds it; victims return to their place).
REQUEUE_FRONT, REQUEUE_ARRIVAL = 0, 1
CONTINUE = -1
MAX_LOG_ROWS = 4096  # decisions per kernel call (the engine calls again for more)
_INF = float("inf")
_ZERO = np.int64(0)

# Integer registers a kernel starts from (the engine fills the first N_INPUTS) and ends with. REPEAT is the
# engine's stretch cap (1 without fast-forward); STATUS a STOP_* code (CONTINUE while running); EVENTS the EV_*
# bits of the last decision; N_LOG the committed decisions (idle jumps have no log row); Q0:Q1 the queue; N_ADMITTED
# .. N_FIRST count the ids the kernel admitted, finished, evicted and saw emit a first token (its ``ids`` rows).
Reg = IntEnum(
    "Reg",
    "FREE TOTAL BLOCK_SIZE PROMPT_ALLOC WATERMARK ADMIT_SEQ STAMP N_ARRIVED N_ROWS N_WAITING REPEAT FULL_RESTART "
    "MAX_DECISIONS MAX_ITERATIONS STOP_MASK REQUEUE MORE_WAITING STATUS EVENTS DECISIONS ITERATIONS EMITTED N_RUN "
    "Q0 Q1 N_ADMITTED N_FINISHED N_EVICTED N_FIRST N_GAPS N_SAMPLES N_LOG",
    start=0,
)
N_INPUTS = Reg.STATUS
_N_REG = len(Reg)
# Float registers: UNTIL (no decision starts at or after it), HORIZON (arrival of the first request not staged),
# SAMPLE_DT (finite: the kernel records time-series samples itself), BUSY (iteration time added).
Clock = IntEnum("Clock", "NOW UNTIL HORIZON NEXT_SAMPLE SAMPLE_DT BUSY LAST_DURATION", start=0)
_N_CLOCK = len(Clock)
_NO_SAMPLES = np.zeros((0, 4))


class PlanInput(NamedTuple):
    """What a plan function sees (read-only: a plan function never writes the table).

    ``ints`` / ``floats`` / ``state`` are the request table (rows :class:`~llmsched_gym.core.table.IntCol`,
    :class:`~llmsched_gym.core.table.FloatCol`); ``running`` holds KV (admission order); ``waiting`` is the
    queue (``more_waiting``: only its head); ``free`` / ``total`` / ``block_size`` / ``watermark`` describe the
    KV pool, ``prompt_alloc`` its "prompt" allocation mode; ``now`` is the clock.
    """

    ints: IntArray
    floats: FloatArray
    state: np.ndarray
    running: IntArray
    waiting: IntArray
    more_waiting: bool
    free: int
    total: int
    block_size: int
    prompt_alloc: bool
    watermark: int
    now: float


class PlanOutput(NamedTuple):
    """A plan function's decision: a ``PLAN_*`` status and :class:`~llmsched_gym.core.plan.BatchPlan`'s fields.

    ``victims`` are preempted before the batch runs and re-enter the queue in this order; ``wake_at`` is ``inf``
    for none.
    """

    status: int
    ids: IntArray
    tokens: IntArray
    victims: IntArray
    repeat: int
    arrival_sensitive: bool
    wake_at: float


class Ledger(NamedTuple):
    """A kernel's state: registers, running set ``run[:N_RUN]``, queue ``queue[Q0:Q1]``, and its record.

    The record: ``log`` (iteration-log rows), ``samples`` (time series), ``ids`` (admitted, finished, evicted,
    first-token ids: one row each) and ``tbt`` (gaps, weights), all of fixed size: a decision that might not fit
    stops the kernel before it starts.
    """

    reg: IntArray
    clock: FloatArray
    run: IntArray
    queue: IntArray
    log: FloatArray
    samples: FloatArray
    ids: IntArray
    tbt: FloatArray


class Segment(NamedTuple):
    """A kernel's result: its final counters and clock, and its record packed into two arrays (see :func:`unpack`).

    ``ints = [admitted | finished | evicted | first token | queue | running]`` (``n_*`` long each) and
    ``floats = [log rows | gaps | gap weights | samples]``.
    """

    status: int
    events: int
    decisions: int
    iterations: int
    free: int
    emitted: int
    n_arrived: int
    stamp: int
    now: float
    busy: float
    last_duration: float
    next_sample: float
    n_admitted: int
    n_finished: int
    n_evicted: int
    n_first: int
    n_queue: int
    n_log: int
    n_gaps: int
    n_samples: int
    ints: IntArray
    floats: FloatArray


def _policy(inp: PlanInput, params: Any) -> PlanOutput:
    """The plan function a specialized loop calls (replaced by :func:`specialize`)."""
    raise NotImplementedError("segment kernels are made by specialize(plan_function)")


def _loop(table, view, running, waiting, reg, clock, form, coef, params):  # type: ignore[no-untyped-def]
    """Run decisions of the plan function until a stop condition (``table``, ``view``: writable and read-only)."""
    n = reg[Reg.N_ROWS]
    if reg[Reg.REQUEUE] == REQUEUE_ARRIVAL:  # the queue is every waiting request, in arrival order
        waiting = _waiting_ids(table[2], reg[Reg.N_ARRIVED])
    led = _open(running, waiting, reg, clock, n, 4 * n + 1024, 8 * n + 8192)
    while _next_decision(led, table[0], table[1]):
        r = led.reg
        sets = (led.run[: r[Reg.N_RUN]], led.queue[r[Reg.Q0] : r[Reg.Q1]], r[Reg.MORE_WAITING] != 0)
        kv = (r[Reg.FREE], r[Reg.TOTAL], r[Reg.BLOCK_SIZE], r[Reg.PROMPT_ALLOC] != 0, r[Reg.WATERMARK])
        inp = PlanInput(view[0], view[1], view[2], *sets, *kv, led.clock[Clock.NOW])
        _decide(led, table, form, coef, _policy(inp, params))
    return _close(led)


@njit(cache=True)
def step_kernel(table, running, reg, clock, form, coef, plan):  # type: ignore[no-untyped-def]
    """``engine.step``'s compiled path: one given plan ``(ids, tokens, victims, repeat, sensitive, wake)``."""
    m = plan[0].size
    led = _open(running, running[:0].copy(), reg, clock, running.size + m + 1, m + plan[2].size, m + 256)
    _decide(led, table, form, coef, PlanOutput(PLAN_OK, *plan))
    return _close(led)


@njit(cache=True, inline="always")
def _decide(led, table, form, coef, out):  # type: ignore[no-untyped-def]
    """Check, run and commit one plan as ``engine.step`` would, or set ``STATUS`` where Python must decide.

    Refusals come first (a plan for Python, an exhausted queue head, the victims' and the rows' checks against the
    blocks the victims leave, a full record): the table changes only for a plan the engine accepts as it is.
    """
    ints, floats, state = table
    r, ids, victims = led.reg, out.ids, out.victims
    n_admit = 0
    for rid in ids:
        n_admit += 0 <= rid < r[Reg.N_ARRIVED] and state[rid] == WAITING
    if out.status != PLAN_OK:
        r[Reg.STATUS] = STOP_PYTHON
        return
    if ids.size == 0:
        _idle(led, ints, floats, out)
        return
    if r[Reg.MORE_WAITING] and n_admit > 0 and n_admit == r[Reg.Q1] - r[Reg.Q0]:
        r[Reg.STATUS] = STOP_HEAD  # later candidates were not given: Python refills the head first
        return
    r[Reg.STAMP] += 2
    mark, n_arrived = ints[IntCol.MARK], r[Reg.N_ARRIVED]
    valid = victims.size == 0 or chk.valid_victims(victims, ids, n_arrived, mark, r[Reg.STAMP] - 1, state)
    freed = 0
    for v in victims:
        freed += ints[IntCol.BLOCKS, v]
    k = min(out.repeat, r[Reg.REPEAT], r[Reg.MAX_ITERATIONS] - r[Reg.ITERATIONS])
    bs, alloc, now = r[Reg.BLOCK_SIZE], r[Reg.PROMPT_ALLOC] != 0, led.clock[Clock.NOW]
    c = chk.check(ids, out.tokens, k, ints, state, n_arrived, r[Reg.STAMP], bs, alloc, r[Reg.FREE] + freed)
    full = (
        max(r[Reg.N_ADMITTED], r[Reg.N_FINISHED], r[Reg.N_EVICTED], r[Reg.N_FIRST]) + ids.size + victims.size
        > led.ids.shape[1]
    )
    full |= r[Reg.N_GAPS] + ids.size + c.k > led.tbt.shape[1]
    if not valid or c.err != chk.OK or full:
        r[Reg.STATUS] = STOP_LIMIT if valid and c.err == chk.OK else STOP_INVALID
        return
    if victims.size:
        _evict(led, victims, ints, state)
    arrive_by = _INF
    if out.arrival_sensitive or r[Reg.STOP_MASK] & EV_ARRIVAL:
        arrive_by = floats[FloatCol.ARRIVAL, n_arrived] if n_arrived < r[Reg.N_ROWS] else led.clock[Clock.HORIZON]
    ends = costed_ends(form, coef, c, ids.size, now, arrive_by, out.wake_at)
    done = cmt.commit(ids, out.tokens, c.is_dec, ends, now, bs, alloc, r[Reg.ADMIT_SEQ], ints, floats, state)
    _book(led, c, ends, done, ints, floats, state, victims.size)


@njit(cache=True)
def _book(led, c, ends, done, ints, floats, state, n_victims):  # type: ignore[no-untyped-def]
    """Book a committed decision: KV, clock, counters, running set, queue, the record; check the stop mask."""
    r, f = led.reg, led.clock
    k, now, t_end = ends.size, f[Clock.NOW], ends[ends.size - 1]
    r[Reg.FREE] += done.freed_blocks - done.new_blocks
    cmt.log_row(led.log[r[Reg.N_LOG]], now, ends, c.tokens, c.n_dec, r[Reg.TOTAL] - r[Reg.FREE])
    f[Clock.LAST_DURATION] = t_end - (ends[k - 2] if k > 1 else now)
    f[Clock.BUSY], f[Clock.NOW] = f[Clock.BUSY] + t_end - now, t_end
    n_adm, n_first = done.admitted.size, r[Reg.N_FIRST]
    r[Reg.N_LOG] += 1
    r[Reg.DECISIONS] += 1
    r[Reg.ITERATIONS] += k
    r[Reg.EMITTED] += done.emitted
    r[Reg.ADMIT_SEQ] += n_adm
    r[Reg.N_WAITING] -= n_adm
    _put(led.run, r[Reg.N_RUN], done.admitted)
    r[Reg.N_RUN] = _drop(led.run, r[Reg.N_RUN] + n_adm, done.finished)
    _note(led, Reg.N_ADMITTED, done.admitted)
    _note(led, Reg.N_FINISHED, done.finished)
    for j in range(done.emit_rows.size):
        if ints[IntCol.EMITTED, done.emit_rows[j]] == done.emit_counts[j]:
            led.ids[3, r[Reg.N_FIRST]], r[Reg.N_FIRST] = done.emit_rows[j], r[Reg.N_FIRST] + 1
    q, left = led.queue, n_adm  # admitted requests leave the queue: from its head (FCFS), else by compaction
    while left and r[Reg.Q0] < r[Reg.Q1] and state[q[r[Reg.Q0]]] != WAITING:
        r[Reg.Q0], left = r[Reg.Q0] + 1, left - 1
    if left:
        r[Reg.Q1] = r[Reg.Q0] + _keep_waiting(q[r[Reg.Q0] : r[Reg.Q1]], state)
    n, m1 = r[Reg.N_GAPS], done.gaps1.size
    m = m1 + (done.shared.size if done.n_shared_rows else 0)
    for i in range(m):
        led.tbt[0, n + i] = done.gaps1[i] if i < m1 else done.shared[i - m1]
        led.tbt[1, n + i] = 1.0 if i < m1 else done.n_shared_rows
    r[Reg.N_GAPS] = n + m
    _sample(led)
    events = (EV_ARRIVAL if _arrival_due(led, floats) else 0) | (EV_FINISH if done.finished.size else 0)
    events |= (EV_ADMIT if n_adm else 0) | (EV_FIRST_TOKEN if r[Reg.N_FIRST] > n_first else 0)
    r[Reg.EVENTS] = events | (EV_EVICT if n_victims else 0)
    if r[Reg.EVENTS] & r[Reg.STOP_MASK]:
        r[Reg.STATUS] = STOP_EVENT


@njit(cache=True)
def _evict(led, victims, ints, state):  # type: ignore[no-untyped-def]
    """The engine's eviction of the plan's victims; they re-enter the queue (front, or arrival order)."""
    r, q = led.reg, led.queue
    r[Reg.FREE] += cmt.evict(victims, r[Reg.FULL_RESTART] != 0, ints, state)
    r[Reg.N_RUN] = _drop(led.run, r[Reg.N_RUN], victims)
    r[Reg.N_WAITING] += victims.size
    _note(led, Reg.N_EVICTED, victims)
    if r[Reg.Q0] < victims.size or r[Reg.Q1] + victims.size > q.size:
        _recentre(led)
    if r[Reg.REQUEUE] == REQUEUE_FRONT:
        r[Reg.Q0] -= victims.size
        _put(q, r[Reg.Q0], victims)
        return
    for v in victims:
        i = r[Reg.Q1]
        while i > r[Reg.Q0] and q[i - 1] > v:
            q[i], i = q[i - 1], i - 1
        q[i] = v
        r[Reg.Q1] += 1


@njit(cache=True)
def _idle(led, ints, floats, out):  # type: ignore[no-untyped-def]
    """An empty plan: the clock jumps to the next staged arrival, which is taken in, as ``engine.step`` idles.

    Python idles the engine instead (``STOP_IDLE``) for victims, a wake-up time before that arrival, no staged
    arrival left or an arrival that can never fit.
    """
    r, f = led.reg, led.clock
    n = r[Reg.N_ARRIVED]
    target = floats[FloatCol.ARRIVAL, n] if n < r[Reg.N_ROWS] else _INF
    if out.victims.size or target == _INF or out.wake_at < target or not _fits_until(led, ints, floats, target):
        r[Reg.STATUS] = STOP_IDLE
        return
    f[Clock.NOW] = max(f[Clock.NOW], target)
    _take_arrivals(led, floats)
    r[Reg.DECISIONS] += 1
    _sample(led)
    r[Reg.EVENTS] = EV_ARRIVAL
    if r[Reg.STOP_MASK] & EV_ARRIVAL:
        r[Reg.STATUS] = STOP_EVENT


# ---- between decisions: limits and arrivals ------------------------------------------------------------------
@njit(cache=True)
def _next_decision(led, ints, floats):  # type: ignore[no-untyped-def]
    """Whether another decision starts: limits, an arrival that stops the segment, due arrivals taken in."""
    r, now = led.reg, led.clock[Clock.NOW]
    if r[Reg.STATUS] != CONTINUE:
        return False
    capped = r[Reg.DECISIONS] >= min(r[Reg.MAX_DECISIONS], led.log.shape[0])
    if capped or r[Reg.ITERATIONS] >= r[Reg.MAX_ITERATIONS] or now >= led.clock[Clock.UNTIL]:
        r[Reg.STATUS] = STOP_LIMIT
    elif r[Reg.STOP_MASK] & EV_ARRIVAL and _arrival_due(led, floats):
        r[Reg.STATUS], r[Reg.EVENTS] = STOP_EVENT, EV_ARRIVAL
    elif not _fits_until(led, ints, floats, now):
        r[Reg.STATUS] = STOP_REJECT
    else:
        _take_arrivals(led, floats)
    return r[Reg.STATUS] == CONTINUE


@njit(cache=True)
def _arrival_due(led, floats):  # type: ignore[no-untyped-def]
    """Whether a request not taken in has arrived by now (staged, or beyond the staging horizon)."""
    r, now, n = led.reg, led.clock[Clock.NOW], led.reg[Reg.N_ARRIVED]
    return (n < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, n] <= now) or led.clock[Clock.HORIZON] <= now


@njit(cache=True)
def _fits_until(led, ints, floats, t):  # type: ignore[no-untyped-def]
    """Whether every staged row arriving by ``t`` passes the engine's arrival check (it can ever run)."""
    r = led.reg
    n, bs, total = r[Reg.N_ARRIVED], r[Reg.BLOCK_SIZE], r[Reg.TOTAL]
    while n < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, n] <= t:
        if rules.arrival_fit(ints[IntCol.PROMPT, n], ints[IntCol.TARGET, n], bs, total, total - r[Reg.WATERMARK])[0]:
            return False
        n += 1
    return True


@njit(cache=True)
def _take_arrivals(led, floats):  # type: ignore[no-untyped-def]
    """Take in the staged rows that have arrived: they join the queue's back (unless it is only a head)."""
    r, q = led.reg, led.queue
    while r[Reg.N_ARRIVED] < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, r[Reg.N_ARRIVED]] <= led.clock[Clock.NOW]:
        if not r[Reg.MORE_WAITING]:
            if r[Reg.Q1] == q.size:
                _recentre(led)
            q[r[Reg.Q1]], r[Reg.Q1] = r[Reg.N_ARRIVED], r[Reg.Q1] + 1
        r[Reg.N_ARRIVED] += 1
        r[Reg.N_WAITING] += 1


@njit(cache=True)
def _sample(led):  # type: ignore[no-untyped-def]
    """Record a time-series sample when one is due (single-client runs, where ``SAMPLE_DT`` is finite)."""
    r, f = led.reg, led.clock
    now = f[Clock.NOW]
    if now >= f[Clock.NEXT_SAMPLE] and f[Clock.SAMPLE_DT] < _INF:
        row = led.samples[r[Reg.N_SAMPLES]]
        row[0], row[1], row[2], row[3] = now, r[Reg.TOTAL] - r[Reg.FREE], r[Reg.N_WAITING], r[Reg.N_RUN]
        r[Reg.N_SAMPLES] += 1
        f[Clock.NEXT_SAMPLE] = (np.floor(now / f[Clock.SAMPLE_DT]) + 1.0) * f[Clock.SAMPLE_DT]


# ---- the ledger's buffers ------------------------------------------------------------------------------------
@njit(cache=True)
def _open(running, waiting, reg, clock, n_ids, n_events, n_gaps):  # type: ignore[no-untyped-def]
    """A fresh ledger for ``n_ids`` distinct ids, ``n_events`` events and ``n_gaps`` TBT gaps (registers copied)."""
    reg, clock = reg.copy(), clock.copy()
    n_ids = max(n_ids, running.size + waiting.size)
    run, queue = np.empty(n_ids + 1, np.int64), np.empty(3 * n_ids + 8, np.int64)
    _put(run, _ZERO, running)
    _put(queue, n_ids + 4, waiting)  # the queue never holds more than n_ids ids: room on both sides
    reg[Reg.STATUS], reg[Reg.N_RUN], reg[Reg.Q0], reg[Reg.Q1] = CONTINUE, running.size, n_ids + 4, n_ids + 4
    reg[Reg.Q1] += waiting.size
    rows = min(max(reg[Reg.MAX_DECISIONS], 1), MAX_LOG_ROWS)
    record = (np.empty((rows, 6)), np.empty((rows, 4)), np.empty((4, n_events), np.int64), np.empty((2, n_gaps)))
    return Ledger(reg, clock, run, queue, *record)


@njit(cache=True)
def _close(led):  # type: ignore[no-untyped-def]
    """The kernel's result: its counters, and its ids and record packed into one integer and one float array."""
    r, c = led.reg, led.clock
    counts = (r[Reg.N_ADMITTED], r[Reg.N_FINISHED], r[Reg.N_EVICTED], r[Reg.N_FIRST])
    q0, q1, n_run, d, g, s = r[Reg.Q0], r[Reg.Q1], r[Reg.N_RUN], r[Reg.N_LOG], r[Reg.N_GAPS], r[Reg.N_SAMPLES]
    ints, out = (
        np.empty(counts[0] + counts[1] + counts[2] + counts[3] + q1 - q0 + n_run, np.int64),
        np.empty(6 * d + 2 * g + 4 * s),
    )
    at = _ZERO
    for i in range(4):
        at = _put(ints, at, led.ids[i, : counts[i]])
    _put(ints, _put(ints, at, led.queue[q0:q1]), led.run[:n_run])
    at = _put(out, _ZERO, led.log[:d].ravel())
    at = _put(out, at, led.tbt[0, :g])
    _put(out, _put(out, at, led.tbt[1, :g]), led.samples[:s].ravel())
    return Segment(
        status=r[Reg.STATUS],
        events=r[Reg.EVENTS],
        decisions=r[Reg.DECISIONS],
        iterations=r[Reg.ITERATIONS],
        free=r[Reg.FREE],
        emitted=r[Reg.EMITTED],
        n_arrived=r[Reg.N_ARRIVED],
        stamp=r[Reg.STAMP],
        now=c[Clock.NOW],
        busy=c[Clock.BUSY],
        last_duration=c[Clock.LAST_DURATION],
        next_sample=c[Clock.NEXT_SAMPLE],
        n_admitted=counts[0],
        n_finished=counts[1],
        n_evicted=counts[2],
        n_first=counts[3],
        n_queue=q1 - q0,
        n_log=d,
        n_gaps=g,
        n_samples=s,
        ints=ints,
        floats=out,
    )


@njit(cache=True)
def _note(led, count, ids):  # type: ignore[no-untyped-def]
    """Append ``ids`` to the ids row counted by register ``count`` (``N_ADMITTED`` .. ``N_FIRST``)."""
    r = led.reg
    _put(led.ids[count - Reg.N_ADMITTED], r[count], ids)
    r[count] += ids.size


@njit(cache=True)
def _put(dst, at, src):  # type: ignore[no-untyped-def]
    """``dst[at : at + src.size] = src``, returning ``at + src.size`` (a loop: cheaper to compile than numpy's)."""
    for i in range(src.size):
        dst[at + i] = src[i]
    return at + src.size


@njit(cache=True)
def _drop(ids, n, gone):  # type: ignore[no-untyped-def]
    """Remove ``gone`` from ``ids[:n]`` keeping the order; returns the new length."""
    j = 0
    for i in range(n):
        keep = True
        for g in gone:
            keep &= g != ids[i]
        if keep:
            ids[j], j = ids[i], j + 1
    return j


@njit(cache=True)
def _waiting_ids(state, n_arrived):  # type: ignore[no-untyped-def]
    """The waiting ids among the first ``n_arrived``, in arrival order."""
    out = np.empty(n_arrived, np.int64)
    j = 0
    for r in range(n_arrived):
        if state[r] == WAITING:
            out[j], j = r, j + 1
    return out[:j]


@njit(cache=True)
def _keep_waiting(ids, state):  # type: ignore[no-untyped-def]
    """Keep the waiting ones of ``ids`` (order kept); returns how many."""
    j = 0
    for i in range(ids.size):
        if state[ids[i]] == WAITING:
            ids[j], j = ids[i], j + 1
    return j


@njit(cache=True)
def _recentre(led):  # type: ignore[no-untyped-def]
    """Move the queue to the middle third of its buffer (it never holds more than a third)."""
    r, q = led.reg, led.queue
    items = q[r[Reg.Q0] : r[Reg.Q1]].copy()
    r[Reg.Q0] = (q.size - 8) // 3 + 4
    _put(q, r[Reg.Q0], items)
    r[Reg.Q1] = r[Reg.Q0] + items.size


def specialize(plan_function: Callable[..., Any]) -> Callable[..., Segment]:
    """The segment kernel of ``plan_function`` (see the module docstring); create it once, at module level.

    Creating is cheap; the first call compiles, later runs load the kernel from the cache. Run it with
    :meth:`~llmsched_gym.core.engine.Engine.run_segment` or :func:`hold`.
    """
    py = plan_function.py_func  # type: ignore[attr-defined]
    tag = hashlib.sha1(inspect.getsource(py).encode()).hexdigest()[:10]
    loop = types.FunctionType(_loop.__code__, {**_loop.__globals__, "_policy": plan_function}, _loop.__name__)
    loop.__qualname__ = f"loop_{py.__module__.replace('.', '_')}_{py.__name__}_{tag}"
    loop.__doc__ = f"The segment loop running {py.__module__}.{py.__name__}."
    kernel: Callable[..., Segment] = njit(cache=True)(loop)
    return kernel


class Unpacked(NamedTuple):
    """A kernel's :class:`~llmsched_gym.core.commit.Outcome` and the rest of what it reports."""

    outcome: Outcome
    status: int
    events: int
    queue: IntArray
    n_arrived: int
    stamp: int


def unpack(seg: Segment, single: bool = False) -> Unpacked:
    """Name the parts of a kernel's packed result (``single``: one decision, booked without the running set)."""
    ints, f, d, g = seg.ints, seg.floats, seg.n_log, seg.n_gaps
    b = seg.n_admitted
    e = b + seg.n_finished
    v = e + seg.n_evicted
    w = v + seg.n_first
    end = w + seg.n_queue
    ids = (ints[:b], ints[b:e], ints[e:v], ints[v:w], None if single else ints[end:])
    gaps = (f[6 * d : 6 * d + g], f[6 * d + g : 6 * d + 2 * g])
    log, samples = f[: 6 * d].reshape(d, 6), _NO_SAMPLES if single else f[6 * d + 2 * g :].reshape(seg.n_samples, 4)
    head = (seg.decisions, seg.iterations, seg.now, seg.busy, seg.last_duration, seg.free, seg.emitted)
    out = Outcome(*head, *ids, *gaps, log, samples, seg.next_sample)
    return Unpacked(out, seg.status, seg.events, ints[w:end], seg.n_arrived, seg.stamp)


class Held(NamedTuple):
    """What :func:`hold` did.

    ``reason`` is ``STOP_EVENT`` (``events`` has the last decision's ``EV_*`` bits; ``EV_ARRIVAL`` alone before
    any decision: an arrival ended the hold), ``STOP_LIMIT`` (the iteration or decision cap), or why the decision
    needs Python: ``STOP_PYTHON``, ``STOP_IDLE``, ``STOP_INVALID`` (``engine.step`` raises or repairs the plan).
    The ids the hold admitted, finished, evicted (the plan function's victims) and saw emit a first token are in
    order; ``arrived`` are the ids taken in during the hold; ``now`` is the clock afterwards.
    """

    reason: int
    events: int
    decisions: int
    iterations: int
    admitted: IntArray
    finished: IntArray
    evicted: IntArray
    first_token: IntArray
    arrived: range
    now: float


def hold(engine: Engine, kernel: Callable[..., Segment], params: Any, *, stop: int, max_iterations: int) -> Held:
    """Hold one decision of a plan function until a decision event: the RL environment's step in compiled code.

    ``kernel = specialize(plan)`` is evaluated before every batch, waiting requests in arrival order (victims
    return to their place). The hold ends after the first decision during which an event of ``stop`` (``EV_*``
    bits) happens, after ``max_iterations`` iterations (a stretch is cut to the cap; with ``EV_ARRIVAL`` in
    ``stop`` it is cut at the next arrival), or where the decision needs Python (:class:`Held`). It equals
    repeating ``engine.step`` with the plan function's plans and stopping at the same events (tested). Needs a
    runner with a compiled cost model.
    """
    engine.view()
    n0, parts, iterations = engine.table.n, [], 0
    single = False  # a per-client sample is due before the next decision: run that decision alone
    while True:
        left, cap = max_iterations - iterations, 1 if single else SEGMENT_DECISIONS
        res = engine.run_segment(
            kernel, params, stop=stop, max_decisions=cap, max_iterations=left, requeue=REQUEUE_ARRIVAL
        )
        parts.append(res.outcome)
        iterations += res.outcome.iterations
        if res.status == STOP_REJECT:  # the engine takes the arrival in and rejects it; the hold goes on
            engine.view()
        elif res.status != STOP_LIMIT or iterations >= max_iterations or (single and not res.outcome.decisions):
            break
        single = not res.outcome.decisions
    kinds = ("admitted", "finished", "evicted", "first_token")
    admitted, finished, evicted, first = (np.concatenate([getattr(p, k) for p in parts]) for k in kinds)
    decisions, arrived = sum(p.decisions for p in parts), range(n0, engine.table.n)
    return Held(res.status, res.events, decisions, iterations, admitted, finished, evicted, first, arrived, engine.now)
