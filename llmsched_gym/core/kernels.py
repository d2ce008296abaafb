"""Compiled (numba) kernels of the engine's hot path: plan checking and stretch commit.

Both loop once over the plan's rows, so an engine step costs two compiled calls instead of a hundred
small numpy operations (speed.md: ~1 µs per numpy call would exhaust the per-iteration budget).
They read and write the request table's columns in place. Error codes are turned into
:class:`~llmsched_gym.errors.InvalidPlanError` messages by the engine.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
ERR_UNKNOWN = 1
ERR_STATE = 2
ERR_TOKENS = 3
ERR_DUPLICATE = 4

_WAITING = 1
_RUNNING = 2
_FINISHED = 3


@njit(cache=True)
def _after_blocks(c, x, k, p, g, held, bs, reserve):  # type: ignore[no-untyped-def]
    after = (c + k * x + bs - 1) // bs
    if reserve:
        res = (p + g + bs - 1) // bs
        if res > after:
            after = res
    return max(after - held, 0)


@njit(cache=True)
def prepare(ids, n, mark, stamp, n_arrived, state, prompt, generated, computed, blocks, target, emitted, bs,
            prompt_alloc, repeat, free):  # type: ignore[no-untyped-def]  # fmt: skip
    """Validate rows, classify decodes, sum new blocks for one iteration and bound the stretch.

    The stretch bound ``k`` is structural (no prefill completes and no decode finishes before the
    last iteration) and, when one iteration fits in ``free`` blocks, also KV-feasible.

    Returns ``(err, row, start, is_dec, samples, pre_tokens, pre_ctx, n_dec, dec_ctx, need1, k, tokens)``
    where ``tokens`` is the iteration's total token count.
    """
    m = ids.size
    start = np.empty(m, np.int64)
    is_dec = np.zeros(m, np.bool_)
    samples = np.zeros(m, np.bool_)
    pre_tokens = np.empty(m, np.int64)
    pre_ctx = np.empty(m, np.int64)
    n_pre = 0
    n_dec = 0
    dec_ctx = 0
    need1 = 0
    tokens = 0
    k = repeat
    for i in range(m):
        r = ids[i]
        if r < 0 or r >= n_arrived:
            return ERR_UNKNOWN, i, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, 0, 0, 0
        s = state[r]
        if s != _WAITING and s != _RUNNING:
            return ERR_STATE, i, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, 0, 0, 0
        if mark[r] == stamp:
            return ERR_DUPLICATE, i, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, 0, 0, 0
        mark[r] = stamp
        c = computed[r]
        g = generated[r]
        p = prompt[r]
        pend = p + g - c
        x = n[i]
        if x < 1 or x > pend:
            return ERR_TOKENS, i, start, is_dec, samples, pre_tokens[:0], pre_ctx[:0], 0, 0, 0, 0, 0
        start[i] = c
        tokens += x
        samples[i] = x == pend
        need1 += _after_blocks(c, x, 1, p, g, blocks[r], bs, prompt_alloc and s == _WAITING)
        if pend == 1 and g >= 1:
            is_dec[i] = True
            n_dec += 1
            dec_ctx += c
            k = min(k, target[r] - g)
            behind = emitted[r] - g
            if behind > 0:
                k = min(k, behind)
        else:
            pre_tokens[n_pre] = x
            pre_ctx[n_pre] = c
            n_pre += 1
            k = min(k, pend // x)
    k = max(k, 1)
    if k > 1 and need1 <= free:
        k = _kv_limit(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc, free)
    return OK, -1, start, is_dec, samples, pre_tokens[:n_pre], pre_ctx[:n_pre], n_dec, dec_ctx, need1, k, tokens


@njit(cache=True)
def _need_total(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc):  # type: ignore[no-untyped-def]
    return blocks_needed(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc).sum()


@njit(cache=True)
def _kv_limit(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc, free):  # type: ignore[no-untyped-def]
    """Largest j <= k whose j-iteration allocation fits in ``free`` (one iteration is known to fit)."""
    if _need_total(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc) <= free:
        return k
    lo = 1
    hi = k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _need_total(ids, n, mid, state, prompt, generated, computed, blocks, bs, prompt_alloc) <= free:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def stretch_ends(t0, durations, deadline_a, deadline_b):  # type: ignore[no-untyped-def]
    """End times of consecutive iterations, accumulated as a step-by-step loop would.

    The result is cut after the first iteration that reaches either deadline (``inf`` for none).
    """
    k = durations.size
    ends = np.empty(k, np.float64)
    t = t0
    for j in range(k):
        t = t + durations[j]
        ends[j] = t
        if t >= deadline_a or t >= deadline_b:
            return ends[: j + 1]
    return ends


@njit(cache=True)
def blocks_needed(ids, n, k, state, prompt, generated, computed, blocks, bs, prompt_alloc):  # type: ignore[no-untyped-def]
    """New blocks each row needs after ``k`` repetitions (admission reservation included)."""
    out = np.empty(ids.size, np.int64)
    for i in range(ids.size):
        r = ids[i]
        reserve = prompt_alloc and state[r] == _WAITING
        out[i] = _after_blocks(computed[r], n[i], k, prompt[r], generated[r], blocks[r], bs, reserve)
    return out


@njit(cache=True)
def commit(ids, n, is_dec, ends, t0, bs, prompt_alloc, admit_seq0, state, prompt, generated, computed, blocks,
           target, emitted, prompt_done, first_sched, first_token, last_token, finish, admit_time, admit_seq,
           tbt_max, tbt_sum, tbt_n, tbt_viol, slo_tbt):  # type: ignore[no-untyped-def]  # fmt: skip
    """Apply ``ends.size`` iterations of ``{ids: n}``; see :mod:`llmsched_gym.core.commit`.

    Returns ``(new_blocks, freed_blocks, admitted, finished, gaps1, shared, n_shared_rows, emitted, emit_rows,
    emit_counts)`` where ``shared`` are the ``k - 1`` iteration gaps every multi-token decode row shares.
    """
    m = ids.size
    k = ends.size
    t_end = ends[k - 1]
    n_shared = k - 1
    shared_sum = 0.0
    shared_max = 0.0
    shared = ends[1:] - ends[:-1]
    sorted_shared = np.sort(shared)
    if k > 1:
        shared_sum = sorted_shared.sum()
        shared_max = sorted_shared[-1]
    admitted = np.empty(m, np.int64)
    finished = np.empty(m, np.int64)
    gaps1 = np.empty(m, np.float64)
    emit_rows = np.empty(m, np.int64)
    emit_counts = np.empty(m, np.int64)
    n_adm = n_fin = n_gap = n_emit = n_shared_rows = 0
    emitted_total = 0
    new_blocks = 0
    freed = 0
    for i in range(m):
        r = ids[i]
        x = n[i]
        p = prompt[r]
        g0 = generated[r]
        add = _after_blocks(computed[r], x, k, p, g0, blocks[r], bs, prompt_alloc and state[r] == _WAITING)
        blocks[r] += add
        new_blocks += add
        if state[r] == _WAITING:
            state[r] = _RUNNING
            admit_time[r] = t0
            admit_seq[r] = admit_seq0 + n_adm
            admitted[n_adm] = r
            n_adm += 1
        if np.isnan(first_sched[r]):
            first_sched[r] = t0
        c1 = computed[r] + k * x
        computed[r] = c1
        prompt_done[r] = max(prompt_done[r], min(c1, p))
        if is_dec[i]:
            g1 = g0 + k
        elif c1 == p + g0:
            g1 = g0 + 1
        else:
            g1 = g0
        generated[r] = g1
        e0 = emitted[r]
        if g1 > e0:
            count = g1 - max(g0, e0)
            t_first = ends[k - count]
            if e0 == 0:
                first_token[r] = t_first
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
                tbt_n[r] += n_shared
                if slo_tbt[r] < np.inf:
                    tbt_viol[r] += n_shared - np.searchsorted(sorted_shared, slo_tbt[r], side="right")
            last_token[r] = t_end
            emitted[r] = e0 + count
            emit_rows[n_emit] = r
            emit_counts[n_emit] = count
            n_emit += 1
            emitted_total += count
        if g1 >= target[r]:
            finish[r] = t_end
            state[r] = _FINISHED
            freed += blocks[r]
            blocks[r] = 0
            finished[n_fin] = r
            n_fin += 1
    return (new_blocks, freed, admitted[:n_adm], finished[:n_fin], gaps1[:n_gap], shared, n_shared_rows,
            emitted_total, emit_rows[:n_emit], emit_counts[:n_emit])  # fmt: skip


FITS = 0
NEVER_FITS = 1  # its KV at completion exceeds the pool
PROMPT_ABOVE_WATERMARK = 2  # its prompt's blocks exceed the pool above the watermark


@njit(cache=True)
def arrival_fit(prompt, target, bs, total, usable):  # type: ignore[no-untyped-def]
    """Whether an arriving request can ever run: ``(status, blocks at completion, prompt blocks)``."""
    need = (prompt + target - 1 + bs - 1) // bs
    admit = (prompt + bs - 1) // bs
    if need > total:
        return NEVER_FITS, need, admit
    if admit > usable:
        return PROMPT_ABOVE_WATERMARK, need, admit
    return FITS, need, admit


@njit(cache=True)
def valid_victims(victims, plan_ids, n_arrived, mark, stamp, state):  # type: ignore[no-untyped-def]
    """Whether ``victims`` are distinct, arrived, running and not in the plan (marks them with ``stamp``)."""
    for i in range(victims.size):
        v = victims[i]
        if v < 0 or v >= n_arrived or mark[v] == stamp or state[v] != _RUNNING:
            return False
        mark[v] = stamp
    for i in range(plan_ids.size):
        r = plan_ids[i]
        if 0 <= r < n_arrived and mark[r] == stamp:
            return False
    return True


@njit(cache=True)
def evict(ids, full, state, blocks, computed, generated, wasted, preemptions):  # type: ignore[no-untyped-def]
    """Free the KV of running ``ids`` and return them to waiting (recompute or full restart).

    Returns the number of blocks freed.
    """
    freed = 0
    for i in range(ids.size):
        r = ids[i]
        freed += blocks[r]
        blocks[r] = 0
        wasted[r] += computed[r]
        computed[r] = 0
        if full:
            generated[r] = 0
        preemptions[r] += 1
        state[r] = _WAITING
    return freed
