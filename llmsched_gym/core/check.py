"""Accepting a plan (the engine's half of the schedule phase): rule checks, decode rows, stretch bound, KV fit.

:func:`check` loops once over the plan's rows in compiled code: it validates each row (arrived, waiting or
running, listed once, ``1 <= tokens <= pending``), classifies decode rows, sums the new KV blocks of one
iteration and bounds the fast-forward stretch. A stretch of ``k`` iterations of one plan (decode rows decode
again, prefill rows process another chunk of the same size) ends at the first of:

* ``plan.repeat`` iterations;
* a prefill row completing its prefill (or having less than one chunk left);
* a decode row finishing (or, in full-restart catch-up, starting to emit again);
* the first iteration whose KV allocation would not fit;
* (cut later, by :mod:`llmsched_gym.core.run`) the iteration during which the next arrival happens (if the
  plan is arrival-sensitive) or the plan's ``wake_at`` passes.

Error codes become :class:`~llmsched_gym.errors.InvalidPlanError` messages in :func:`plan_error`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from llmsched_gym.core import rules
from llmsched_gym.core.batch import BoolArray, IntArray
from llmsched_gym.core.rules import RUNNING, STATE_NAMES, WAITING
from llmsched_gym.core.table import IntCol, RequestTable
from llmsched_gym.errors import InvalidPlanError

OK = 0
ERR_UNKNOWN = 1
ERR_STATE = 2
ERR_TOKENS = 3
ERR_DUPLICATE = 4
ERR_SHORT = 5  # the plan's first iteration needs more KV blocks than are free (not a rule: repairable)


class Checked(NamedTuple):
    """A checked plan: the runner's per-row data, the cost model's aggregates and the stretch bound.

    ``err`` is :data:`OK` or an error code with the offending ``row``; ``pre_tokens`` / ``pre_ctx`` are the
    prefill chunks and their cached context, ``need1`` the new blocks of one iteration, ``k`` the stretch
    bound and ``tokens`` the iteration's token count.
    """

    err: int
    row: int
    start: IntArray
    is_dec: BoolArray
    samples: BoolArray
    pre_tokens: IntArray
    pre_ctx: IntArray
    n_dec: int
    dec_ctx: int
    need1: int
    k: int
    tokens: int


@njit(cache=True)
def check(ids, n, repeat, ints, state, n_arrived, stamp, bs, prompt_alloc, free):  # type: ignore[no-untyped-def]
    """Check ``{ids: n}`` against the table; see the module docstring (marks rows with ``stamp``)."""
    m = ids.size
    start = np.empty(m, np.int64)
    is_dec = np.zeros(m, np.bool_)
    samples = np.zeros(m, np.bool_)
    pre_tokens = np.empty(m, np.int64)
    pre_ctx = np.empty(m, np.int64)
    prompt, generated, computed = ints[IntCol.PROMPT], ints[IntCol.GENERATED], ints[IntCol.COMPUTED]
    mark = ints[IntCol.MARK]
    n_pre = n_dec = dec_ctx = need1 = tokens = 0
    k = repeat
    for i in range(m):
        r = ids[i]
        err = OK
        if r < 0 or r >= n_arrived:
            err = ERR_UNKNOWN
        elif state[r] != WAITING and state[r] != RUNNING:
            err = ERR_STATE
        elif mark[r] == stamp:
            err = ERR_DUPLICATE
        elif n[i] < 1 or n[i] > rules.pending(prompt[r], generated[r], computed[r]):
            err = ERR_TOKENS
        if err != OK:
            return Checked(err, i, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, 0, 0, 0)
        mark[r] = stamp
        c, g, x = computed[r], generated[r], n[i]
        pend = rules.pending(prompt[r], g, c)
        start[i] = c
        tokens += x
        samples[i] = x == pend
        reserve = prompt_alloc and state[r] == WAITING
        need1 += rules.new_blocks(c, x, rules.ONE, prompt[r], g, ints[IntCol.BLOCKS, r], bs, reserve)
        if rules.is_decode(prompt[r], g, c):
            is_dec[i] = True
            n_dec += 1
            dec_ctx += c
            k = min(k, ints[IntCol.TARGET, r] - g)
            behind = ints[IntCol.EMITTED, r] - g
            if behind > 0:
                k = min(k, behind)
        else:
            pre_tokens[n_pre] = x
            pre_ctx[n_pre] = c
            n_pre += 1
            k = min(k, pend // x)
    k = max(k, 1)
    if need1 > free:
        return Checked(ERR_SHORT, -1, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, need1, 0, 0)
    if k > 1:
        k = _kv_limit(ids, n, k, ints, state, bs, prompt_alloc, free)
    return Checked(
        OK, -1, start, is_dec, samples, pre_tokens[:n_pre], pre_ctx[:n_pre], n_dec, dec_ctx, need1, k, tokens
    )


@njit(cache=True)
def blocks_needed(ids, n, k, ints, state, bs, prompt_alloc):  # type: ignore[no-untyped-def]
    """New blocks each row of ``{ids: n}`` needs after ``k`` repetitions (admission reservation included)."""
    out = np.empty(ids.size, np.int64)
    for i in range(ids.size):
        r = ids[i]
        reserve = prompt_alloc and state[r] == WAITING
        c, p, g, held = (
            ints[IntCol.COMPUTED, r],
            ints[IntCol.PROMPT, r],
            ints[IntCol.GENERATED, r],
            ints[IntCol.BLOCKS, r],
        )
        out[i] = rules.new_blocks(c, n[i], k, p, g, held, bs, reserve)
    return out


@njit(cache=True)
def _kv_limit(ids, n, k, ints, state, bs, prompt_alloc, free):  # type: ignore[no-untyped-def]
    """Largest ``j <= k`` whose ``j``-iteration allocation fits in ``free`` (one iteration is known to fit)."""
    if blocks_needed(ids, n, k, ints, state, bs, prompt_alloc).sum() <= free:
        return k
    lo, hi = 1, k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if blocks_needed(ids, n, mid, ints, state, bs, prompt_alloc).sum() <= free:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def valid_victims(victims, plan_ids, n_arrived, mark, stamp, state):  # type: ignore[no-untyped-def]
    """Whether ``victims`` are distinct, arrived, running and not in the plan (marks them with ``stamp``)."""
    for i in range(victims.size):
        v = victims[i]
        if v < 0 or v >= n_arrived or mark[v] == stamp or state[v] != RUNNING:
            return False
        mark[v] = stamp
    for i in range(plan_ids.size):
        r = plan_ids[i]
        if 0 <= r < n_arrived and mark[r] == stamp:
            return False
    return True


def plan_error(t: RequestTable, err: int, rid: int, tokens: int) -> InvalidPlanError:
    """The error of a plan row that :func:`check` refused with code ``err``."""
    if err == ERR_UNKNOWN:
        return InvalidPlanError(f"rule 'schedule known requests': id {rid} has not arrived (0..{t.n - 1})")
    if err == ERR_STATE:
        state = STATE_NAMES[int(t.state[rid])]
        return InvalidPlanError(f"rule 'schedule only waiting or running requests': request {rid} is {state}")
    if err == ERR_DUPLICATE:
        return InvalidPlanError(f"rule 'each request at most once per plan': request {rid} appears twice")
    pend = int(rules.pending.py_func(t.prompt[rid], t.generated[rid], t.computed[rid]))
    return InvalidPlanError(f"rule 'tokens available (1 <= n <= pending)': request {rid} asks {tokens} of {pend}")


def victims_error(t: RequestTable, victims: list[int], plan_ids: IntArray) -> InvalidPlanError:
    """The rule a plan's preemption list breaks (called after :func:`valid_victims` refused it)."""
    if len(set(victims)) != len(victims):
        return InvalidPlanError(f"rule 'preempt each request once': duplicates in {victims}")
    in_plan = set(victims).intersection(plan_ids.tolist())
    if in_plan:
        return InvalidPlanError(f"rule 'no request both preempted and run': {sorted(in_plan)}")
    for rid in victims:
        if not 0 <= rid < t.n:
            return InvalidPlanError(f"rule 'preempt known requests': id {rid} has not arrived (0..{t.n - 1})")
        if t.state[rid] != RUNNING:
            state = STATE_NAMES[int(t.state[rid])]
            return InvalidPlanError(f"rule 'preempt only running requests': request {rid} is {state}")
    raise AssertionError(f"preempt {victims}: the compiled check and its explanation disagree")
