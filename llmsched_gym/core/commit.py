"""Committing decisions (the commit phase): the table writes of a stretch or an eviction, and what else changed.

:func:`commit` applies ``k`` identical iterations to the request table in one compiled loop. For each row:
blocks grow to cover the new tokens (plus the admission reservation in "prompt" allocation mode); a waiting
row is admitted; ``computed`` advances by ``k·n``; a decode row generates ``k`` tokens, a prefill row one
token if it completes its pending tokens. Tokens beyond those already emitted are emitted (full-restart
catch-up emits nothing until it passes the old count): a decode row's first token in the stretch has its own
gap since its previous token, the following ``k - 1`` gaps are the iteration gaps shared by every decode row.
A row whose generated count reaches its target finishes and frees its blocks. :func:`evict` returns running
requests to waiting (recompute or full restart).

:class:`Outcome` is what one or more committed decisions changed outside the table, in one record whichever
path produced it; :meth:`~llmsched_gym.core.engine.Engine._book` is the one method that books it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from llmsched_gym.core import rules
from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.recorder import Recorder
from llmsched_gym.core.rules import FINISHED, RUNNING, WAITING
from llmsched_gym.core.table import FloatCol, IntCol

# Event bits, as int64 scalars: numba compiles a function once per literal int argument, not per int64 value.
EV_ARRIVAL = np.int64(1)  # a request arrived
EV_FINISH = np.int64(2)  # a request finished
EV_FIRST_TOKEN = np.int64(4)  # a request emitted its first token
EV_EVICT = np.int64(8)  # a plan preempted a request (KV pressure)
EV_ADMIT = np.int64(16)  # a waiting request was admitted
_NO_SAMPLES = np.zeros((0, 4), np.float64)
_NO_IDS = np.zeros(0, np.int64)


class Committed(NamedTuple):
    """What :func:`commit` changed: KV blocks, admissions, finishes, TBT gaps and emitted tokens.

    ``gaps1`` are the gaps before each emitting decode row's first token of the stretch; ``shared`` the ``k - 1``
    iteration gaps every one of the ``n_shared_rows`` multi-token decode rows shares. ``emit_rows`` emitted
    ``emit_counts`` tokens each (at the last ``count`` iteration ends).
    """

    new_blocks: int
    freed_blocks: int
    admitted: IntArray
    finished: IntArray
    gaps1: FloatArray
    shared: FloatArray
    n_shared_rows: int
    emitted: int
    emit_rows: IntArray
    emit_counts: IntArray


@njit(cache=True)
def commit(ids, n, is_dec, ends, t0, bs, prompt_alloc, admit_seq0, ints, floats, state):  # type: ignore[no-untyped-def]
    """Apply ``ends.size`` iterations of ``{ids: n}`` (``is_dec``: decode rows) started at ``t0``; see above."""
    m, k = ids.size, ends.size
    t_end = ends[k - 1]
    shared = np.empty(k - 1)
    for j in range(k - 1):
        shared[j] = ends[j + 1] - ends[j]
    ascending = _sorted(shared)
    shared_sum, shared_max = 0.0, ascending[k - 2] if k > 1 else 0.0
    for gap in ascending:
        shared_sum += gap
    admitted, finished = np.empty(m, np.int64), np.empty(m, np.int64)
    emit_rows, emit_counts = np.empty(m, np.int64), np.empty(m, np.int64)
    gaps1 = np.empty(m, np.float64)
    n_adm = n_fin = n_gap = n_emit = n_shared_rows = emitted_total = new_blocks = freed = 0
    prompt, generated, computed = ints[IntCol.PROMPT], ints[IntCol.GENERATED], ints[IntCol.COMPUTED]
    blocks, emitted, tbt_n, tbt_viol = (
        ints[IntCol.BLOCKS],
        ints[IntCol.EMITTED],
        ints[IntCol.TBT_N],
        ints[IntCol.TBT_VIOL],
    )
    last_token, tbt_max, tbt_sum = floats[FloatCol.LAST_TOKEN], floats[FloatCol.TBT_MAX], floats[FloatCol.TBT_SUM]
    slo_tbt = floats[FloatCol.SLO_TBT]
    for i in range(m):
        r, x = ids[i], n[i]
        p, g0 = prompt[r], generated[r]
        add = rules.new_blocks(computed[r], x, k, p, g0, blocks[r], bs, prompt_alloc and state[r] == WAITING)
        blocks[r] += add
        new_blocks += add
        if state[r] == WAITING:
            state[r] = RUNNING
            floats[FloatCol.ADMIT_TIME, r] = t0
            ints[IntCol.ADMIT_SEQ, r] = admit_seq0 + n_adm
            admitted[n_adm] = r
            n_adm += 1
        if np.isnan(floats[FloatCol.FIRST_SCHED, r]):
            floats[FloatCol.FIRST_SCHED, r] = t0
        c1 = computed[r] + k * x
        computed[r] = c1
        ints[IntCol.PROMPT_DONE, r] = max(ints[IntCol.PROMPT_DONE, r], min(c1, p))
        g1 = g0 + k if is_dec[i] else (g0 + 1 if c1 == p + g0 else g0)
        generated[r] = g1
        e0 = emitted[r]
        if g1 > e0:
            count = g1 - max(g0, e0)
            t_first = ends[k - count]
            if e0 == 0:
                floats[FloatCol.FIRST_TOKEN, r] = t_first
            else:
                gap = t_first - last_token[r]
                gaps1[n_gap] = gap
                n_gap += 1
                tbt_max[r] = max(tbt_max[r], gap)
                tbt_sum[r] += gap
                tbt_n[r] += 1
                if gap > slo_tbt[r]:
                    tbt_viol[r] += 1
            if is_dec[i] and count > 1:
                n_shared_rows += 1
                tbt_max[r] = max(tbt_max[r], shared_max)
                tbt_sum[r] += shared_sum
                tbt_n[r] += k - 1
                if slo_tbt[r] < np.inf:
                    tbt_viol[r] += _count_above(ascending, slo_tbt[r])
            last_token[r] = t_end
            emitted[r] = e0 + count
            emit_rows[n_emit] = r
            emit_counts[n_emit] = count
            n_emit += 1
            emitted_total += count
        if g1 >= ints[IntCol.TARGET, r]:
            floats[FloatCol.FINISH, r] = t_end
            state[r] = FINISHED
            freed += blocks[r]
            blocks[r] = 0
            finished[n_fin] = r
            n_fin += 1
    return Committed(
        new_blocks,
        freed,
        admitted[:n_adm],
        finished[:n_fin],
        gaps1[:n_gap],
        shared,
        n_shared_rows,
        emitted_total,
        emit_rows[:n_emit],
        emit_counts[:n_emit],
    )


@njit(cache=True)
def _sorted(x):  # type: ignore[no-untyped-def]
    """``x`` in ascending order (a merge sort: much cheaper to compile than ``np.sort``)."""
    a, b = x.copy(), np.empty(x.size)
    width = 1
    while width < x.size:
        for lo in range(0, x.size, 2 * width):
            mid, hi = min(lo + width, x.size), min(lo + 2 * width, x.size)
            i, j = lo, mid
            for t in range(lo, hi):
                if i < mid and (j >= hi or a[i] <= a[j]):
                    b[t], i = a[i], i + 1
                else:
                    b[t], j = a[j], j + 1
        a, b = b, a
        width *= 2
    return a


@njit(cache=True)
def _count_above(ascending, value):  # type: ignore[no-untyped-def]
    """How many of the ascending values exceed ``value`` (a binary search)."""
    lo, hi = 0, ascending.size
    while lo < hi:
        mid = (lo + hi) // 2
        if ascending[mid] <= value:
            lo = mid + 1
        else:
            hi = mid
    return ascending.size - lo


@njit(cache=True)
def evict(victims, full, ints, state):  # type: ignore[no-untyped-def]
    """Free the KV of running ``victims`` and return them to waiting (``full``: restart from scratch).

    Returns the number of blocks freed.
    """
    freed = 0
    for r in victims:
        freed += ints[IntCol.BLOCKS, r]
        ints[IntCol.BLOCKS, r] = 0
        ints[IntCol.WASTED, r] += ints[IntCol.COMPUTED, r]
        ints[IntCol.COMPUTED, r] = 0
        if full:
            ints[IntCol.GENERATED, r] = 0
        ints[IntCol.PREEMPTIONS, r] += 1
        state[r] = WAITING
    return freed


@njit(cache=True)
def log_row(row, t0, ends, tokens, n_dec, used):  # type: ignore[no-untyped-def]
    """Write a stretch's iteration-log row: ``(start, duration, iterations, prefill tokens, decodes, KV used)``."""
    k = ends.size
    row[0], row[1], row[2] = t0, ends[k - 1] - t0, k
    row[3], row[4], row[5] = (tokens - n_dec) * k, n_dec * k, used


class Outcome(NamedTuple):
    """What ``decisions`` committed decisions changed outside the request table: what the engine books.

    ``free`` is the free KV block count after them, ``emitted`` the tokens they delivered; ``admitted``,
    ``finished``, ``evicted`` (by plans run in compiled code) and ``first_token`` list ids in order; ``running`` is
    the running set afterwards (``None``: one decision, whose victims left before its rows were admitted); ``gaps`` are
    TBT samples with ``gap_weights``; ``log`` has an iteration-log row per committed stretch (:func:`log_row`),
    ``samples`` the time-series rows ``(time, blocks used, waiting, running)`` recorded in compiled code (then
    ``next_sample`` is the next sample time).
    """

    decisions: int
    iterations: int
    now: float
    busy: float
    last_duration: float
    free: int
    emitted: int
    admitted: IntArray
    finished: IntArray
    evicted: IntArray
    first_token: IntArray
    running: IntArray | None
    gaps: FloatArray
    gap_weights: FloatArray
    log: FloatArray
    samples: FloatArray
    next_sample: float


def outcome_of(c: Committed, t0: float, ends: FloatArray, tokens: int, n_dec: int, free: int, total: int) -> Outcome:
    """The :class:`Outcome` of one decision committed by the Python path (``free``: before it)."""
    free += c.freed_blocks - c.new_blocks
    now, k = float(ends[-1]), ends.size
    gaps = np.concatenate((c.gaps1, c.shared)) if c.n_shared_rows else c.gaps1
    weights = np.ones(gaps.size)
    weights[c.gaps1.size :] = c.n_shared_rows
    log = np.empty((1, 6))
    log_row.py_func(log[0], t0, ends, tokens, n_dec, total - free)
    last = now - (float(ends[-2]) if k > 1 else t0)
    ids = (c.admitted, c.finished, _NO_IDS, _NO_IDS)
    return Outcome(1, k, now, now - t0, last, free, c.emitted, *ids, None, gaps, weights, log, _NO_SAMPLES, 0.0)


def record_token_times(rec: Recorder, ends: FloatArray, emit_rows: IntArray, emit_counts: IntArray) -> None:
    """Append each emitting row's token times: its ``count`` tokens came at the last ``count`` iteration ends."""
    k = ends.size
    for rid, c in zip(emit_rows.tolist(), emit_counts.tolist(), strict=True):
        rec.token_times.setdefault(rid, []).extend(ends[k - c :].tolist())
