"""Compiled (numba) kernels of the environment's per-step path: batch packing, score decoding, features.

One step of the environment would otherwise cost a few hundred small numpy calls (about 1 µs each; see
``design/speed.md``). The kernels read the engine's request-table columns (never write them) and implement
exactly the rules documented in :mod:`llmsched_gym.env.actions`, :mod:`llmsched_gym.env.scores` and
:mod:`llmsched_gym.env.observation`. The KV rule is the engine's: a row of ``x`` tokens needs
``max(ceil((computed + x) / bs), reservation) - held`` new blocks, the reservation ``ceil((prompt + generated) /
bs)`` applying to waiting rows in prompt-allocation mode.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from llmsched_gym.core.rules import new_blocks as _after_blocks

_WAITING = 1
_RUNNING = 2
_BIG = 1e12


@njit(cache=True)
def _make_room(i, need, free, order, gone, holders, next_holder, victims, n_vic, state, blocks):  # type: ignore[no-untyped-def]  # fmt: skip
    """Preempt lower-priority running rows for row ``i`` if that makes room; returns (free, next_holder, n_vic)."""
    avail = free
    for h in range(next_holder, holders.size):
        avail += blocks[holders[h]]
    for j in range(order.size - 1, i, -1):
        if not gone[j] and state[order[j]] == _RUNNING:
            avail += blocks[order[j]]
    if avail < need:
        return free, next_holder, n_vic
    while need > free and next_holder < holders.size:
        victims[n_vic] = holders[next_holder]
        n_vic += 1
        free += blocks[holders[next_holder]]
        next_holder += 1
    j = order.size - 1
    while need > free and j > i:
        r = order[j]
        if not gone[j] and state[r] == _RUNNING:
            gone[j] = True
            victims[n_vic] = r
            n_vic += 1
            free += blocks[r]
        j -= 1
    return free, next_holder, n_vic


@njit(cache=True)
def pack_rows(order, eff, budget, free, holders, stop_at_unfit, state, prompt, generated, computed, blocks, bs,
              prompt_alloc):  # type: ignore[no-untyped-def]  # fmt: skip
    """Greedy packing with KV pressure; returns ``(ids, tokens, implicit_victims)``."""
    m = order.size
    ids = np.empty(m, np.int64)
    toks = np.empty(m, np.int64)
    victims = np.empty(m + holders.size, np.int64)
    gone = np.zeros(m, np.bool_)
    n_out = 0
    n_vic = 0
    next_holder = 0
    left = budget
    admitting = True
    for i in range(m):
        if left <= 0:
            break
        r = order[i]
        x = min(eff[i], left)
        waiting = state[r] == _WAITING
        if gone[i] or x <= 0 or (waiting and not admitting):
            continue
        need = _after_blocks(computed[r], x, 1, prompt[r], generated[r], blocks[r], bs, prompt_alloc and waiting)
        if need > free and not waiting:
            free, next_holder, n_vic = _make_room(
                i, need, free, order, gone, holders, next_holder, victims, n_vic, state, blocks
            )
        if need > free:
            if waiting and stop_at_unfit:
                admitting = False
            continue
        free -= need
        left -= x
        ids[n_out] = r
        toks[n_out] = x
        n_out += 1
    return ids[:n_out], toks[:n_out], victims[:n_vic]


@njit(cache=True)
def _stable_order(idx, key, descending):  # type: ignore[no-untyped-def]
    """Sort ``idx`` in place by ``key[idx]`` (stable insertion sort: slot counts are small)."""
    for i in range(1, idx.size):
        cur = idx[i]
        kc = key[cur]
        j = i - 1
        while j >= 0 and ((key[idx[j]] < kc) if descending else (key[idx[j]] > kc)):
            idx[j + 1] = idx[j]
            j -= 1
        idx[j + 1] = cur


@njit(cache=True)
def _split_slots(v, preempt_below, slots, n_rs):  # type: ignore[no-untyped-def]
    """Slot indices to serve (by descending score), explicit victims (ids) and held running slots (ascending)."""
    m = slots.size
    explicit = np.empty(n_rs, np.int64)
    serve = np.empty(m, np.int64)
    hold = np.empty(n_rs, np.int64)
    n_exp = n_serve = n_hold = 0
    for i in range(m):
        s = v[i]
        if s > 0.0:
            serve[n_serve] = i
            n_serve += 1
        elif i < n_rs and s <= preempt_below:
            explicit[n_exp] = slots[i]
            n_exp += 1
        elif i < n_rs:
            hold[n_hold] = i
            n_hold += 1
    serve = serve[:n_serve]
    _stable_order(serve, v, True)
    hold = hold[:n_hold]
    _stable_order(hold, v, False)
    return serve, explicit[:n_exp], hold


@njit(cache=True)
def scores_plan(a, k, caps_on, preempt_below, levels, slots, n_rs, outside, free, state, prompt, generated,
                computed, blocks, bs, prompt_alloc):  # type: ignore[no-untyped-def]  # fmt: skip
    """Decode a (raw) scores action; returns ``(ids, tokens, victims, budget)`` (see ``scores.py``)."""
    v = np.empty(a.size, np.float64)
    for i in range(a.size):
        v[i] = 0.0 if math.isnan(a[i]) else min(1.0, max(-1.0, a[i]))
    nl = levels.size
    budget = levels[min(nl - 1, int((v[k] + 1.0) * 0.5 * nl))]
    serve, explicit, hold = _split_slots(v, preempt_below, slots, n_rs)
    for r in explicit:
        free += blocks[r]
    n = serve.size + outside.size
    order = np.empty(n, np.int64)
    eff = np.empty(n, np.int64)
    for j in range(n):
        r = slots[serve[j]] if j < serve.size else outside[j - serve.size]
        order[j] = r
        eff[j] = prompt[r] + generated[r] - computed[r]
        if j < serve.size and caps_on and v[k + 1 + serve[j]] < 0.0:
            eff[j] = min(eff[j], math.floor((v[k + 1 + serve[j]] + 1.0) * budget + 0.5))
    ids, toks, implicit = pack_rows(
        order, eff, budget, free, slots[hold], False, state, prompt, generated, computed, blocks, bs, prompt_alloc
    )
    return ids, toks, np.concatenate((explicit, implicit)), budget


ERR_OUTSIDE, ERR_BUDGET, ERR_CAPS, ERR_NOT_RUNNING = 1, 2, 3, 4


@njit(cache=True)
def _slot_of(slots, rid):  # type: ignore[no-untyped-def]
    for i in range(slots.size):
        if slots[i] == rid:
            return i
    return -1


@njit(cache=True)
def encode_scores(out, k, caps_on, levels, slots, ids, toks, preempt, state, prompt, generated, computed):  # type: ignore[no-untyped-def]  # fmt: skip
    """Write the scores action of a plan into ``out`` (zeros); returns ``(error code, offending id or value)``."""
    if caps_on:
        out[k + 1 :] = 1.0
    for r in preempt:
        i = _slot_of(slots, r)
        if i < 0:
            return ERR_OUTSIDE, r
        if state[r] != _RUNNING:
            return ERR_NOT_RUNNING, r
        out[i] = -1.0
    total = 0
    for x in toks:
        total += x
    j = np.searchsorted(levels, total)
    if j == levels.size:
        return ERR_BUDGET, total
    out[k] = (2.0 * j + 1.0) / levels.size - 1.0
    budget = levels[j]
    left = budget
    for row in range(ids.size):
        r = ids[row]
        n = toks[row]
        i = _slot_of(slots, r)
        if i < 0:
            return ERR_OUTSIDE, r
        out[i] = 1.0 - row / (ids.size + 1.0)
        if n != min(prompt[r] + generated[r] - computed[r], left):
            if not caps_on:
                return ERR_CAPS, r
            out[k + 1 + i] = n / budget - 1.0
        left -= n
    return 0, -1


@njit(cache=True)
def knobs_plan(budget, theta, running, ranked, now, free, state, prompt, generated, computed, blocks, last_token,
               slo_tbt, bs, prompt_alloc):  # type: ignore[no-untyped-def]  # fmt: skip
    """Decode knobs (see ``knobs.py``); returns ``(ids, tokens, victims)``.

    ``ranked`` holds the waiting requests in admission order (empty under hold); ``theta < 0`` disables deferral.
    """
    n_r = running.size
    n_w = min(ranked.size, budget)
    order = np.empty(n_r + n_w, np.int64)
    deferred = np.zeros(n_r, np.bool_)
    is_dec = np.zeros(n_r, np.bool_)
    pos = 0
    for j in range(n_r):
        r = running[j]
        is_dec[j] = prompt[r] + generated[r] - computed[r] == 1 and generated[r] >= 1
        if is_dec[j] and theta >= 0.0:
            deferred[j] = 1.0 - (now - last_token[r]) / slo_tbt[r] > theta
        if is_dec[j] and not deferred[j]:
            order[pos] = r
            pos += 1
    for j in range(n_r):
        if not is_dec[j]:
            order[pos] = running[j]
            pos += 1
    order[pos : pos + n_w] = ranked[:n_w]
    pos += n_w
    for j in range(n_r):
        if deferred[j]:
            order[pos] = running[j]
            pos += 1
    eff = np.empty(order.size, np.int64)
    for j in range(order.size):
        r = order[j]
        eff[j] = prompt[r] + generated[r] - computed[r]
    return pack_rows(
        order, eff, budget, free, order[:0], True, state, prompt, generated, computed, blocks, bs, prompt_alloc
    )


@njit(cache=True)
def waiting_and_slots(state, n_arrived, running, k):  # type: ignore[no-untyped-def]
    """Waiting ids (arrival order) and the slot assignment of ``context.select_slots``: ``(waiting, slots, n_rs)``."""
    waiting = np.empty(n_arrived, np.int64)
    n_wait = 0
    for r in range(n_arrived):
        if state[r] == _WAITING:
            waiting[n_wait] = r
            n_wait += 1
    n_run = running.size
    n_w = min(n_wait, max(k - n_run, k // 2))
    n_r = min(n_run, k - n_w)
    slots = np.empty(n_r + n_w, np.int64)
    slots[:n_r] = running[:n_r]
    slots[n_r:] = waiting[:n_w]
    return waiting[:n_wait], slots, n_r


@njit(cache=True)
def _queue_counts(running, waiting, prompt, generated, computed, preemptions):  # type: ignore[no-untyped-def]
    """``(running decodes, pending prefill tokens, preempted waiting)``."""
    n_dec = 0
    prefill = 0
    n_pre = 0
    for r in running:
        pend = prompt[r] + generated[r] - computed[r]
        if pend == 1 and generated[r] >= 1:
            n_dec += 1
        else:
            prefill += pend
    for r in waiting:
        prefill += prompt[r] + generated[r] - computed[r]
        if preemptions[r] > 0:
            n_pre += 1
    return n_dec, prefill, n_pre


@njit(cache=True)
def _signed(x, scale):  # type: ignore[no-untyped-def]
    x = min(_BIG, max(-_BIG, x))
    return x / (abs(x) + scale)


# Indices of the scale vector passed to ``observe`` (built by ``observation.SlotObservation``).
P_SLOTS, P_TIME, P_TBT, P_INV_LEN, P_LEN, P_WINDOW, P_RATE, P_ITER, P_SERVICE = range(9)


@njit(cache=True)
def observe(out, with_slots, ids, n_rs, running, waiting, now, n_arrived, free, total, last_iter, attainment,
            arrivals_done, service_mean, params, service, prompt, generated, computed, emitted, arrival, first_token,
            last_token, slo_ttft, slo_tbt, preemptions, blocks, predicted, client):  # type: ignore[no-untyped-def]  # fmt: skip
    """Write the whole observation into ``out`` (global features, then the slots; see ``observation.py``)."""
    k = params[P_SLOTS]
    n_w, n_r = waiting.size, running.size
    n_dec, prefill, n_pre = _queue_counts(running, waiting, prompt, generated, computed, preemptions)
    recent = n_arrived - np.searchsorted(arrival[:n_arrived], now - params[P_WINDOW], side="right")
    rate = recent / params[P_WINDOW]
    n_out = n_w + n_r - ids.size
    out[0] = n_w / (n_w + k)
    out[1] = n_r / (n_r + k)
    out[2] = n_pre / (n_pre + k)
    out[3] = 1.0 - free / total
    out[4] = math.log1p(free) / math.log1p(total)
    out[5] = prefill / (prefill + params[P_LEN])
    out[6] = n_dec / (n_dec + k)
    out[7] = rate / (rate + params[P_RATE])
    out[8] = last_iter / (last_iter + params[P_ITER])
    out[9] = attainment
    out[10] = 1.0 if arrivals_done else 0.0
    out[11] = n_out / (n_out + k)
    if with_slots:
        out[12:] = 0.0
        inv_blocks = 1.0 / math.log1p(total)
        for i in range(ids.size):
            _slot_row(out[12 + 15 * i : 27 + 15 * i], ids[i], i < n_rs, now, service_mean, inv_blocks, params,
                      service, prompt, generated, computed, emitted, arrival, first_token, last_token, slo_ttft,
                      slo_tbt, preemptions, blocks, predicted, client)  # fmt: skip


@njit(cache=True)
def _slot_row(row, r, running, now, service_mean, inv_blocks, params, service, prompt, generated, computed, emitted,
              arrival, first_token, last_token, slo_ttft, slo_tbt, preemptions, blocks, predicted, client):  # type: ignore[no-untyped-def]  # fmt: skip
    """The 15 features of request ``r`` (``SLOT_FEATURES`` order)."""
    inv_len = params[P_INV_LEN]
    g = generated[r]
    em = emitted[r]
    pend = prompt[r] + g - computed[r]
    dec = running and pend == 1 and g >= 1
    age = now - arrival[r]
    row[0] = 1.0
    row[1] = 1.0 if not running and preemptions[r] == 0 else 0.0
    row[2] = 1.0 if running else 0.0
    row[3] = 1.0 if not running and preemptions[r] > 0 else 0.0
    row[4] = 1.0 if dec else 0.0
    row[5] = min(1.0, math.log1p(prompt[r]) * inv_len)
    row[6] = 0.0 if dec else min(1.0, math.log1p(pend) * inv_len)
    row[7] = min(1.0, math.log1p(em) * inv_len)
    row[8] = age / (age + params[P_TIME])
    if em > 0:
        row[9] = _signed(slo_ttft[r] - (first_token[r] - arrival[r]), params[P_TIME])
        row[10] = _signed(last_token[r] + slo_tbt[r] - now, params[P_TBT])
    else:
        row[9] = _signed(slo_ttft[r] - age, params[P_TIME])
        row[10] = _signed(slo_tbt[r], params[P_TBT])
    d = service[client[r]] - service_mean
    row[11] = d / (abs(d) + params[P_SERVICE])
    left = predicted[r] - em
    row[12] = min(1.0, math.log1p(left) * inv_len) if predicted[r] >= 0 and left > 0 else 0.0
    row[13] = math.log1p(blocks[r]) * inv_blocks
    tbt = min(slo_tbt[r], _BIG)
    row[14] = tbt / (tbt + params[P_TBT])


@njit(cache=True)
def spread(service, present):  # type: ignore[no-untyped-def]
    """Max minus min of ``service`` over the ``present`` clients (0 when none)."""
    lo = np.inf
    hi = -np.inf
    for c in range(service.size):
        if present[c]:
            lo = min(lo, service[c])
            hi = max(hi, service[c])
    return hi - lo if hi >= lo else 0.0


@njit(cache=True)
def credit_service(ids, prompt_done, emitted, client, credited, service, present, w_prompt, w_output):  # type: ignore[no-untyped-def]  # fmt: skip
    """Credit the rows ``ids`` their new service (``credited`` holds what each was credited so far).

    Returns ``(total added, service spread over the present clients)``.
    """
    total = 0.0
    for i in range(ids.size):
        r = ids[i]
        now = w_prompt * prompt_done[r] + w_output * emitted[r]
        gain = now - credited[r]
        credited[r] = now
        service[client[r]] += gain
        total += gain
    return total, spread(service, present)
