"""The compiled decision loop: schedule → check → run → commit, decision after decision, in one numba call.

A *plan function* is a policy written as a numba function ``plan(inp: PlanInput, params) -> PlanOutput``:
it sees the request table, the running and waiting ids, the KV pool and the clock, and returns the batch
(ids and tokens), the running requests to preempt first, and the plan's fast-forward promise
(``repeat``, ``arrival_sensitive``, ``wake_at``, as in :class:`~llmsched_gym.core.plan.BatchPlan`), or
``status=PLAN_PYTHON`` to hand the decision to Python. ``params`` is any numba value the policy needs
(numbers, arrays, tuples of them); the loop passes it through untouched.

:func:`specialize` turns a plan function into a *segment kernel*: the loop below with that plan function
compiled in. Per decision the kernel takes in the staged arrivals that are due, calls the plan function,
checks the plan (:mod:`llmsched_gym.core.check`), evicts its victims (the engine's eviction, recompute or
full restart), times the stretch with the compiled cost model (:mod:`llmsched_gym.core.run`) and commits it
(:mod:`llmsched_gym.core.commit`) exactly as ``engine.step`` would, then updates its running set (admission
order) and waiting queue: admitted requests leave it, arrivals join its back, victims re-enter at its front
in the order the plan returned them (``REQUEUE_FRONT``, the FCFS queues of vLLM and Sarathi-Serve) or at
their arrival-order place (``REQUEUE_ARRIVAL``). It stops at the first of: a time limit (the staging horizon,
a sample due in multi-client runs), the decision or iteration cap, an event of the stop mask (``EV_*``), the
plan asking for Python, an empty plan, a plan the engine would refuse or must repair (nothing is changed:
the classic path raises or repairs it), a due arrival that can never fit, and a queue head exhausted while
more requests wait. The engine books what it did with its one bookkeeping method
(:meth:`~llmsched_gym.core.engine.Engine.run_segment`); results equal the Python path's column for column.

numba cannot cache a function that takes another compiled function as an argument, so :func:`specialize`
compiles a copy of the loop per plan function (cached next to this module, named after the plan function
and a hash of its source: editing the plan function recompiles it; editing a function the plan function
calls needs ``__pycache__`` cleared, as for every numba cache).
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

PLAN_OK = 0
PLAN_PYTHON = 1  # the policy needs its Python path for this decision

STOP_LIMIT = 0  # a time limit, the decision or iteration cap
STOP_EVENT = 1  # an event of the stop mask happened (see ``events``)
STOP_PYTHON = 2  # the plan function returned PLAN_PYTHON
STOP_IDLE = 3  # the plan is empty: Python idles the engine until an arrival or wake-up
STOP_INVALID = 4  # the plan breaks a rule or needs more KV blocks than are free: the classic path handles it
STOP_REJECT = 5  # a due arrival can never fit: Python takes it in and rejects it with its reason
STOP_HEAD = 6  # the plan admitted every queued request it was given while more wait

REQUEUE_FRONT = 0
REQUEUE_ARRIVAL = 1
_INF = float("inf")


class PlanInput(NamedTuple):
    """What a plan function sees (read-only by contract: a plan function never writes the table).

    Attributes:
        ints: The request table's integer columns (rows indexed by :class:`~llmsched_gym.core.table.IntCol`).
        floats: Its float columns (:class:`~llmsched_gym.core.table.FloatCol`).
        state: Its state column (:mod:`llmsched_gym.core.rules` codes).
        running: Ids holding KV, in admission order.
        waiting: Waiting ids in queue order (see the module docstring).
        more_waiting: ``waiting`` is only the head of a longer queue.
        free: Free KV blocks.
        total: KV pool capacity in blocks.
        block_size: Tokens per block.
        prompt_alloc: "prompt" allocation mode (admission reserves the whole prefill's blocks).
        watermark: Blocks a watermark check keeps free.
        now: The clock.
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
    """A plan function's decision: :class:`~llmsched_gym.core.plan.BatchPlan`'s fields plus a status.

    ``victims`` are preempted before the batch runs and re-enter the queue in this order; ``wake_at`` is
    ``inf`` for none.
    """

    status: int
    ids: IntArray
    tokens: IntArray
    victims: IntArray
    repeat: int
    arrival_sensitive: bool
    wake_at: float


class Reg(IntEnum):
    """Slots of the integer registers: the engine's counters a kernel starts from, then what the loop did."""

    FREE = 0
    TOTAL = 1
    BLOCK_SIZE = 2
    PROMPT_ALLOC = 3
    WATERMARK = 4
    ADMIT_SEQ = 5
    STAMP = 6
    N_ARRIVED = 7
    N_ROWS = 8
    N_WAITING = 9
    REPEAT = 10  # the engine's stretch cap: 1 without fast-forward
    FULL_RESTART = 11
    MAX_DECISIONS = 12
    MAX_ITERATIONS = 13
    STOP_MASK = 14
    REQUEUE = 15
    MORE_WAITING = 16
    STATUS = 17  # STOP_* (``CONTINUE`` while running)
    EVENTS = 18  # the EV_* bits of the last decision
    DECISIONS = 19
    ITERATIONS = 20
    EMITTED = 21
    N_RUN = 22
    Q0 = 23
    Q1 = 24
    N_EVENTS = 25
    N_GAPS = 26
    N_SAMPLES = 27
    N_LOG = 28  # iteration-log rows: committed decisions (idle decisions have none)


class Clock(IntEnum):
    """Slots of the float registers: the clock, the time limit, the sampling schedule, busy time."""

    NOW = 0
    UNTIL = 1  # no decision starts at or after it
    HORIZON = 2  # arrival time of the first request not staged (``inf``: none left)
    NEXT_SAMPLE = 3
    SAMPLE_DT = 4  # the kernel records time-series samples itself when finite
    BUSY = 5  # iteration time added
    LAST_DURATION = 6


N_INPUTS = Reg.STATUS  # the engine fills registers ``[0, N_INPUTS)``
CONTINUE = -1
MAX_LOG_ROWS = 4096  # decisions per kernel call (the engine calls again for more)
_ZERO = np.int64(0)


class Ledger(NamedTuple):
    """A kernel's working state: registers, running set, queue and the record of what it did (fixed sizes).

    ``run[:reg[N_RUN]]`` is the running set (admission order), ``queue[reg[Q0]:reg[Q1]]`` the waiting queue;
    ``log`` has an iteration-log row per decision, ``samples`` the time-series rows, ``events`` the event log
    (kinds, ids) and ``tbt`` the TBT gaps and their weights. A decision that might not fit stops the kernel
    before it starts (``STOP_LIMIT``): the engine calls again with fresh buffers, or takes the classic path.
    """

    reg: IntArray
    clock: FloatArray
    run: IntArray
    queue: IntArray
    log: FloatArray
    samples: FloatArray
    events: IntArray
    tbt: FloatArray


class Segment(NamedTuple):
    """What a kernel returns: its final registers, the event log and queue, the log, gaps and samples packed.

    ``ids`` is ``[event kinds | event ids | queue]``, ``floats`` is ``[log rows | gaps | gap weights | samples]``
    (sizes in ``reg``); :func:`unpack` names the parts.
    """

    reg: IntArray
    clock: FloatArray
    ids: IntArray
    floats: FloatArray

    @property
    def decisions(self) -> int:
        """Decisions the kernel committed."""
        return int(self.reg[Reg.DECISIONS])


def _policy(inp: PlanInput, params: Any) -> PlanOutput:
    """The plan function a specialized loop calls (replaced by :func:`specialize`)."""
    raise NotImplementedError("segment kernels are made by specialize(plan_function)")


def _loop(table, view, running, waiting, reg, clock, form, coef, params):  # type: ignore[no-untyped-def]
    """Run decisions of the plan function until a stop condition; see the module docstring.

    ``table`` is the request table's ``(ints, floats, state)``, ``view`` the same arrays read-only (what the
    plan function sees).
    """
    led = _open(running, waiting, reg, clock, reg[Reg.N_ROWS], 4 * reg[Reg.N_ROWS] + 1024, 8 * reg[Reg.N_ROWS] + 8192)
    while _next_decision(led, table[0], table[1]):
        r = led.reg
        inp = PlanInput(
            view[0],
            view[1],
            view[2],
            led.run[: r[Reg.N_RUN]],
            led.queue[r[Reg.Q0] : r[Reg.Q1]],
            r[Reg.MORE_WAITING] != 0,
            r[Reg.FREE],
            r[Reg.TOTAL],
            r[Reg.BLOCK_SIZE],
            r[Reg.PROMPT_ALLOC] != 0,
            r[Reg.WATERMARK],
            led.clock[Clock.NOW],
        )
        out = _policy(inp, params)
        _decide(
            led,
            table,
            form,
            coef,
            out.status,
            out.ids,
            out.tokens,
            out.victims,
            out.repeat,
            out.arrival_sensitive,
            out.wake_at,
        )
    return _close(led)


@njit(cache=True)
def step_kernel(table, running, reg, clock, form, coef, ids, tokens, victims, repeat, sensitive, wake):  # type: ignore[no-untyped-def]
    """One given plan (``engine.step``'s compiled path): the loop's decision, once."""
    led = _open(
        running,
        np.empty(0, np.int64),
        reg,
        clock,
        running.size + ids.size + 1,
        3 * ids.size + victims.size,
        ids.size + 2048,
    )
    _decide(led, table, form, coef, PLAN_OK, ids, tokens, victims, repeat, sensitive, wake)
    return _close(led)


@njit(cache=True, inline="always")
def _decide(led, table, form, coef, status, ids, tokens, victims, repeat, sensitive, wake):  # type: ignore[no-untyped-def]
    """Check, run and commit one plan as ``engine.step`` would (or set ``STATUS`` where the loop must stop first).

    Refusals first (a plan for Python, an empty plan, an exhausted queue head), then the checks of the
    victims and the rows against the free blocks the victims leave; only then the table changes.
    """
    ints, floats, state = table
    r, f = led.reg, led.clock
    n_admit = 0
    for rid in ids:
        n_admit += 0 <= rid < r[Reg.N_ARRIVED] and state[rid] == WAITING
    if status != PLAN_OK:
        r[Reg.STATUS] = STOP_PYTHON
        return
    if ids.size == 0:
        _idle(led, ints, floats, victims, wake)
        return
    if r[Reg.MORE_WAITING] and n_admit > 0 and n_admit == r[Reg.Q1] - r[Reg.Q0]:
        r[Reg.STATUS] = STOP_HEAD  # later candidates were not given: Python refills the head first
        return
    r[Reg.STAMP] += 2
    freed = 0
    valid = victims.size == 0 or chk.valid_victims(
        victims, ids, r[Reg.N_ARRIVED], ints[IntCol.MARK], r[Reg.STAMP] - 1, state
    )
    for v in victims:
        freed += ints[IntCol.BLOCKS, v]
    k = min(repeat, r[Reg.REPEAT], r[Reg.MAX_ITERATIONS] - r[Reg.ITERATIONS])
    bs, alloc = r[Reg.BLOCK_SIZE], r[Reg.PROMPT_ALLOC] != 0
    c = chk.check(ids, tokens, k, ints, state, r[Reg.N_ARRIVED], r[Reg.STAMP], bs, alloc, r[Reg.FREE] + freed)
    if not valid or c.err != chk.OK:
        r[Reg.STATUS] = STOP_INVALID
        return
    if (
        r[Reg.N_EVENTS] + 3 * ids.size + victims.size > led.events.shape[1]
        or r[Reg.N_GAPS] + ids.size + c.k > led.tbt.shape[1]
    ):
        r[Reg.STATUS] = STOP_LIMIT  # the record is full
        return
    if victims.size:
        _evict(led, victims, ints, state)
    arrive_by = _INF
    if sensitive or r[Reg.STOP_MASK] & EV_ARRIVAL:
        n = r[Reg.N_ARRIVED]
        arrive_by = floats[FloatCol.ARRIVAL, n] if n < r[Reg.N_ROWS] else f[Clock.HORIZON]
    ends = costed_ends(form, coef, c, ids.size, f[Clock.NOW], arrive_by, wake)
    done = cmt.commit(ids, tokens, c.is_dec, ends, f[Clock.NOW], bs, alloc, r[Reg.ADMIT_SEQ], ints, floats, state)
    _book(led, c, ends, done, ints, floats, state, victims.size)


@njit(cache=True)
def _book(led, c, ends, done, ints, floats, state, n_victims):  # type: ignore[no-untyped-def]
    """Book a committed decision: KV, clock, counters, running set, queue, the record; check the stop mask."""
    r, f, ev = led.reg, led.clock, led.events
    k, now, t_end = ends.size, f[Clock.NOW], ends[ends.size - 1]
    r[Reg.FREE] += done.freed_blocks - done.new_blocks
    cmt.log_row(led.log[r[Reg.N_LOG]], now, ends, c.tokens, c.n_dec, r[Reg.TOTAL] - r[Reg.FREE])
    r[Reg.N_LOG] += 1
    f[Clock.LAST_DURATION] = t_end - (ends[k - 2] if k > 1 else now)
    f[Clock.BUSY] += t_end - now
    f[Clock.NOW] = t_end
    r[Reg.DECISIONS] += 1
    r[Reg.ITERATIONS] += k
    r[Reg.EMITTED] += done.emitted
    n_adm, n_ev, n_first = done.admitted.size, r[Reg.N_EVENTS], 0
    r[Reg.ADMIT_SEQ] += n_adm
    r[Reg.N_WAITING] -= n_adm
    _put(led.run, r[Reg.N_RUN], done.admitted)
    r[Reg.N_RUN] = _drop(led.run, r[Reg.N_RUN] + n_adm, done.finished)
    for rid in done.admitted:
        ev[0, n_ev], ev[1, n_ev], n_ev = EV_ADMIT, rid, n_ev + 1
    for rid in done.finished:
        ev[0, n_ev], ev[1, n_ev], n_ev = EV_FINISH, rid, n_ev + 1
    for j in range(done.emit_rows.size):
        if ints[IntCol.EMITTED, done.emit_rows[j]] == done.emit_counts[j]:
            ev[0, n_ev], ev[1, n_ev], n_ev, n_first = EV_FIRST_TOKEN, done.emit_rows[j], n_ev + 1, n_first + 1
    r[Reg.N_EVENTS] = n_ev
    q, left = led.queue, n_adm  # admitted requests leave the queue: from its head (FCFS), else by compaction
    while left and r[Reg.Q0] < r[Reg.Q1] and state[q[r[Reg.Q0]]] != WAITING:
        r[Reg.Q0], left = r[Reg.Q0] + 1, left - 1
    if left:
        j = r[Reg.Q0]
        for i in range(r[Reg.Q0], r[Reg.Q1]):
            if state[q[i]] == WAITING:
                q[j], j = q[i], j + 1
        r[Reg.Q1] = j
    n, m1 = r[Reg.N_GAPS], done.gaps1.size
    m = m1 + (done.shared.size if done.n_shared_rows else 0)
    for i in range(m):
        led.tbt[0, n + i] = done.gaps1[i] if i < m1 else done.shared[i - m1]
        led.tbt[1, n + i] = 1.0 if i < m1 else done.n_shared_rows
    r[Reg.N_GAPS] = n + m
    _sample(led)
    n_arr = r[Reg.N_ARRIVED]
    arrived = (n_arr < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, n_arr] <= t_end) or f[Clock.HORIZON] <= t_end
    events = (EV_ARRIVAL if arrived else 0) | (EV_FINISH if done.finished.size else 0) | (EV_ADMIT if n_adm else 0)
    r[Reg.EVENTS] = events | (EV_FIRST_TOKEN if n_first else 0) | (EV_EVICT if n_victims else 0)
    if r[Reg.EVENTS] & r[Reg.STOP_MASK]:
        r[Reg.STATUS] = STOP_EVENT


@njit(cache=True)
def _evict(led, victims, ints, state):  # type: ignore[no-untyped-def]
    """The engine's eviction of the plan's victims; they re-enter the queue (front, or arrival order)."""
    r, q, ev = led.reg, led.queue, led.events
    r[Reg.FREE] += cmt.evict(victims, r[Reg.FULL_RESTART] != 0, ints, state)
    r[Reg.N_RUN] = _drop(led.run, r[Reg.N_RUN], victims)
    r[Reg.N_WAITING] += victims.size
    for v in victims:
        ev[0, r[Reg.N_EVENTS]], ev[1, r[Reg.N_EVENTS]] = EV_EVICT, v
        r[Reg.N_EVENTS] += 1
    if r[Reg.Q0] < victims.size or r[Reg.Q1] + victims.size > q.size:
        _recentre(led)
    if r[Reg.REQUEUE] == REQUEUE_FRONT:
        r[Reg.Q0] -= victims.size
        _put(q, r[Reg.Q0], victims)
        return
    for v in victims:
        i = r[Reg.Q1]
        while i > r[Reg.Q0] and q[i - 1] > v:
            q[i] = q[i - 1]
            i -= 1
        q[i] = v
        r[Reg.Q1] += 1


@njit(cache=True)
def _next_decision(led, ints, floats):  # type: ignore[no-untyped-def]
    """Whether another decision starts: limits, an arrival that stops the segment, due arrivals taken in."""
    r, f = led.reg, led.clock
    n, now = r[Reg.N_ARRIVED], f[Clock.NOW]
    if r[Reg.STATUS] != CONTINUE:
        return False
    full = r[Reg.DECISIONS] >= min(r[Reg.MAX_DECISIONS], led.log.shape[0])  # the decision cap, or the log is full
    if full or r[Reg.ITERATIONS] >= r[Reg.MAX_ITERATIONS] or now >= f[Clock.UNTIL]:
        r[Reg.STATUS] = STOP_LIMIT
        return False
    due = (n < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, n] <= now) or f[Clock.HORIZON] <= now
    if due and r[Reg.STOP_MASK] & EV_ARRIVAL:
        r[Reg.STATUS], r[Reg.EVENTS] = STOP_EVENT, EV_ARRIVAL
        return False
    if not _fits_until(led, ints, floats, now):
        r[Reg.STATUS] = STOP_REJECT  # Python takes it in and rejects it with its reason
        return False
    _take_arrivals(led, floats)
    return True


@njit(cache=True)
def _fits_until(led, ints, floats, t):  # type: ignore[no-untyped-def]
    """Whether every staged row arriving by ``t`` passes the engine's arrival check (it can ever run)."""
    r = led.reg
    n, usable = r[Reg.N_ARRIVED], r[Reg.TOTAL] - r[Reg.WATERMARK]
    while n < r[Reg.N_ROWS] and floats[FloatCol.ARRIVAL, n] <= t:
        if rules.arrival_fit(ints[IntCol.PROMPT, n], ints[IntCol.TARGET, n], r[Reg.BLOCK_SIZE], r[Reg.TOTAL], usable)[
            0
        ]:
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
            q[r[Reg.Q1]] = r[Reg.N_ARRIVED]
            r[Reg.Q1] += 1
        r[Reg.N_ARRIVED] += 1
        r[Reg.N_WAITING] += 1


@njit(cache=True)
def _idle(led, ints, floats, victims, wake):  # type: ignore[no-untyped-def]
    """An empty plan: the clock jumps to the next staged arrival, which is taken in (``engine.step``'s idling).

    Python idles the engine instead (``STOP_IDLE``) for a plan with victims, a wake-up time before the arrival,
    no staged arrival left, or an arrival that can never fit.
    """
    r, f = led.reg, led.clock
    n = r[Reg.N_ARRIVED]
    target = floats[FloatCol.ARRIVAL, n] if n < r[Reg.N_ROWS] else _INF
    if victims.size or target == _INF or wake < target or not _fits_until(led, ints, floats, target):
        r[Reg.STATUS] = STOP_IDLE
        return
    f[Clock.NOW] = max(f[Clock.NOW], target)
    _take_arrivals(led, floats)
    r[Reg.DECISIONS] += 1
    _sample(led)
    r[Reg.EVENTS] = EV_ARRIVAL
    if r[Reg.STOP_MASK] & EV_ARRIVAL:
        r[Reg.STATUS] = STOP_EVENT


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


@njit(cache=True)
def _open(running, waiting, reg, clock, n_ids, n_events, n_gaps):  # type: ignore[no-untyped-def]
    """A fresh ledger for ``n_ids`` distinct ids, ``n_events`` events and ``n_gaps`` TBT gaps (registers copied)."""
    reg, clock = reg.copy(), clock.copy()
    n_ids = max(n_ids, running.size + waiting.size)
    run, queue = np.empty(n_ids + 1, np.int64), np.empty(3 * n_ids + 8, np.int64)
    _put(run, _ZERO, running)
    _put(queue, n_ids + 4, waiting)  # the queue never holds more than n_ids: room on both sides
    reg[Reg.STATUS], reg[Reg.N_RUN], reg[Reg.Q0], reg[Reg.Q1] = (
        CONTINUE,
        running.size,
        n_ids + 4,
        n_ids + 4 + waiting.size,
    )
    max_dec = min(max(reg[Reg.MAX_DECISIONS], 1), MAX_LOG_ROWS)
    log, samples = np.empty((max_dec, 6)), np.empty((max_dec, 4))
    return Ledger(reg, clock, run, queue, log, samples, np.empty((2, n_events), np.int64), np.empty((2, n_gaps)))


@njit(cache=True)
def _close(led):  # type: ignore[no-untyped-def]
    """The kernel's result: registers and the record packed into one integer and one float array."""
    r = led.reg
    n_ev, q0, q1, n_run = r[Reg.N_EVENTS], r[Reg.Q0], r[Reg.Q1], r[Reg.N_RUN]
    d, g, s = r[Reg.N_LOG], r[Reg.N_GAPS], r[Reg.N_SAMPLES]
    ids = np.empty(2 * n_ev + q1 - q0 + n_run, np.int64)
    _put(ids, _ZERO, led.events[0, :n_ev])
    _put(ids, n_ev, led.events[1, :n_ev])
    _put(ids, 2 * n_ev, led.queue[q0:q1])
    _put(ids, 2 * n_ev + q1 - q0, led.run[:n_run])
    out = np.empty(6 * d + 2 * g + 4 * s)
    _put(out, _ZERO, led.log[:d].ravel())
    _put(out, 6 * d, led.tbt[0, :g])
    _put(out, 6 * d + g, led.tbt[1, :g])
    _put(out, 6 * d + 2 * g, led.samples[:s].ravel())
    return Segment(r, led.clock, ids, out)


@njit(cache=True)
def _put(dst, at, src):  # type: ignore[no-untyped-def]
    """``dst[at : at + src.size] = src`` (a plain loop: cheaper to compile than numpy's slice assignment)."""
    for i in range(src.size):
        dst[at + i] = src[i]


@njit(cache=True)
def _drop(ids, n, gone):  # type: ignore[no-untyped-def]
    """Remove ``gone`` from ``ids[:n]`` keeping the order; returns the new length."""
    j = 0
    for i in range(n):
        keep = True
        for g in gone:
            keep &= g != ids[i]
        if keep:
            ids[j] = ids[i]
            j += 1
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
    """A segment kernel running ``plan_function`` (a numba function; see the module docstring).

    Create it once, at module level (creating is cheap; the first call compiles, later runs load it from
    the cache). Call it through :meth:`~llmsched_gym.core.engine.Engine.run_segment`.
    """
    py = plan_function.py_func  # type: ignore[attr-defined]
    tag = hashlib.sha1(inspect.getsource(py).encode()).hexdigest()[:10]
    scope = dict(_loop.__globals__)
    scope["_policy"] = plan_function
    loop = types.FunctionType(_loop.__code__, scope, _loop.__name__)
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
    r, c = seg.reg.tolist(), seg.clock.tolist()
    n, d, g, s = r[Reg.N_EVENTS], r[Reg.N_LOG], r[Reg.N_GAPS], r[Reg.N_SAMPLES]
    q1 = 2 * n + r[Reg.Q1] - r[Reg.Q0]
    ids, f = seg.ids, seg.floats
    outcome = Outcome(
        r[Reg.DECISIONS],
        r[Reg.ITERATIONS],
        c[Clock.NOW],
        c[Clock.BUSY],
        c[Clock.LAST_DURATION],
        r[Reg.FREE],
        r[Reg.EMITTED],
        ids[:n],
        ids[n : 2 * n],
        None if single else ids[q1:],
        f[6 * d : 6 * d + g],
        f[6 * d + g : 6 * d + 2 * g],
        f[: 6 * d].reshape(d, 6),
        f[6 * d + 2 * g :].reshape(s, 4),
        c[Clock.NEXT_SAMPLE],
    )
    return Unpacked(outcome, r[Reg.STATUS], r[Reg.EVENTS], ids[2 * n : q1], r[Reg.N_ARRIVED], r[Reg.STAMP])


class Held(NamedTuple):
    """What :func:`hold` did: why it stopped, how much it ran and which requests it touched.

    Attributes:
        reason: ``STOP_EVENT`` (see ``events``), ``STOP_LIMIT`` (the iteration or decision cap), or why the
            plan function's decision needs Python: ``STOP_PYTHON``, ``STOP_IDLE`` (an empty plan with no
            staged arrival to jump to), ``STOP_INVALID`` (the plan breaks a rule or does not fit the free
            blocks; ``engine.step`` raises or repairs it), ``STOP_REJECT`` (an arrival that can never fit).
        events: ``EV_*`` bits of the last decision (``EV_ARRIVAL`` alone: an arrival ended the hold before
            any decision).
        decisions: Decisions committed.
        iterations: Iterations run.
        admitted: Ids admitted, in order.
        finished: Ids finished.
        evicted: Ids the plan function preempted.
        first_token: Ids that emitted their first token.
        arrived: Ids taken in during the hold (an arrival ends it before it is taken in when ``EV_ARRIVAL``
            is in the stop mask).
        now: The clock afterwards.
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


def hold(
    engine: Engine,
    kernel: Callable[..., Segment],
    params: Any,
    *,
    stop: int,
    max_iterations: int,
    max_decisions: int = 1 << 30,
) -> Held:
    """Hold one decision of a plan function until a decision event: the RL environment's step in compiled code.

    The plan function (``kernel = specialize(plan)``) is evaluated on the current state before every iteration
    batch; waiting requests are in arrival order (victims return to their place). The hold ends after the first
    decision during which an event of ``stop`` (``EV_*`` bits) happens, when ``max_iterations`` iterations or
    ``max_decisions`` decisions have run (a stretch is cut to the iteration cap; with ``EV_ARRIVAL`` in
    ``stop`` it is cut at the next arrival), or when the decision needs Python (see :class:`Held`). The result
    equals repeating ``engine.step(plan)`` with the plan function's plans, stopping at the same events
    (tested). Needs a runner with a compiled cost model.
    """
    engine.view()
    n0 = engine.table.n
    parts: list[Outcome] = []
    decisions = iterations = 0
    while True:
        t = engine.table
        waiting = np.flatnonzero(t.state[: t.n] == WAITING)
        res = engine.run_segment(
            kernel, params, waiting=waiting, stop=stop, max_decisions=max_decisions - decisions,
            max_iterations=max_iterations - iterations, requeue=REQUEUE_ARRIVAL,
        )  # fmt: skip
        parts.append(res.outcome)
        decisions += res.outcome.decisions
        iterations += res.outcome.iterations
        if res.status == STOP_REJECT:  # the engine takes the arrival in and rejects it; the hold goes on
            engine.view()
        elif res.status != STOP_LIMIT or decisions >= max_decisions or iterations >= max_iterations:
            break
    kinds = np.concatenate([p.event_kinds for p in parts])
    ids = np.concatenate([p.event_ids for p in parts])
    of = {k: ids[kinds == k] for k in (EV_ADMIT, EV_FINISH, EV_EVICT, EV_FIRST_TOKEN)}
    return Held(
        res.status, res.events, decisions, iterations, of[EV_ADMIT], of[EV_FINISH], of[EV_EVICT],
        of[EV_FIRST_TOKEN], range(n0, engine.table.n), engine.now,
    )  # fmt: skip
