"""Compiled plan functions of the FCFS family (numba): policy rules the engine's segment loop runs.

Each is a plan function of :mod:`llmsched_gym.core.segment` (``plan(inp, params) -> PlanOutput``) with the
same rules and row order as its scheduler's Python path (tested plan by plan and run by run): Sarathi-Serve's
default configuration (:func:`sarathi_plan`) and vLLM V1 (:func:`vllm_v1_plan`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from llmsched_gym.core import rules
from llmsched_gym.core.plan import UNBOUNDED_REPEAT
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.segment import PLAN_OK, PLAN_PYTHON, PlanInput, PlanOutput
from llmsched_gym.core.table import IntCol

_INF = float("inf")


@njit(cache=True)
def split_running(running, ints, bs):  # type: ignore[no-untyped-def]
    """Sort running ids (oldest arrival first) and split them into decodes and partial prefills.

    Returns ``(sorted_ids, decodes, partials, need)`` where ``need`` is the total number of new KV
    blocks the decodes need to cache one more token each.
    """
    srt = _ascending(running)
    dec, par = np.empty(srt.size, np.int64), np.empty(srt.size, np.int64)
    nd = npar = need = 0
    prompt, generated, computed = ints[IntCol.PROMPT], ints[IntCol.GENERATED], ints[IntCol.COMPUTED]
    for r in srt:
        if rules.is_decode(prompt[r], generated[r], computed[r]):
            dec[nd] = r
            nd += 1
            need += rules.decode_blocks(computed[r], ints[IntCol.BLOCKS, r], bs)
        else:
            par[npar] = r
            npar += 1
    return srt, dec[:nd], par[:npar], need


@njit(cache=True)
def _ascending(ids):  # type: ignore[no-untyped-def]
    """``np.sort(ids)`` by insertion (running ids in admission order are nearly sorted; cheap to compile)."""
    out = ids.copy()
    for i in range(1, out.size):
        v, j = out[i], i
        while j > 0 and out[j - 1] > v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
    return out


@njit(cache=True)
def sarathi_plan(inp, params):  # type: ignore[no-untyped-def]
    """Sarathi-Serve's default iteration (FCFS, no options); ``params = (chunk_size, max_num_seqs)``.

    Decodes (oldest first; while a decode's block is not free, the youngest unprocessed running request is
    preempted), then ongoing partial prefills with ``min(pending, budget - used)``, then admissions from the
    queue head with the whole pending prefill's blocks under the watermark. Victims re-enter the queue front
    in id order. Python decides when a candidate can never fit above the watermark (a rejection).
    """
    budget, max_seqs = params
    ints, bs = inp.ints, inp.block_size
    srt, dec, par, need = split_running(inp.running, ints, bs)
    free, victims = inp.free - need, srt[:0]
    if need > inp.free:
        dec, par, victims, free = _decode_with_preemption(srt, ints, bs, inp.free)
    m = srt.size + inp.waiting.size
    ids, tokens = np.empty(m, np.int64), np.empty(m, np.int64)
    for i in range(dec.size):
        ids[i], tokens[i] = dec[i], 1
    n = used = dec.size
    for r in par:
        chunk = min(
            rules.pending(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]),
            max(budget - used, 0),
        )
        if chunk > 0:
            ids[n], tokens[n] = r, chunk
            n, used = n + 1, used + chunk
    active, admitted = srt.size - victims.size, 0
    for r in inp.waiting:
        p, g, c = ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]
        b = rules.admission_blocks(p, g, ints[IntCol.BLOCKS, r], bs)
        if b > inp.total - inp.watermark:
            return PlanOutput(PLAN_PYTHON, ids[:0], ids[:0], ids[:0], 1, True, _INF)
        chunk = min(rules.pending(p, g, c), max(budget - used, 0))
        if chunk == 0 or active + 1 > max_seqs or free - b < inp.watermark:
            break
        ids[n], tokens[n] = r, chunk
        n, used, free, active, admitted = n + 1, used + chunk, free - b, active + 1, admitted + 1
    if victims.size:
        return PlanOutput(PLAN_OK, ids[:n], tokens[:n], _ascending(victims), 1, True, _INF)
    sensitive = admitted == inp.waiting.size and not inp.more_waiting and used < budget
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], victims, UNBOUNDED_REPEAT, sensitive, _INF)


@njit(cache=True)
def _decode_with_preemption(srt, ints, bs, free):  # type: ignore[no-untyped-def]
    """:func:`baselines._queue.decode_with_preemption` on sorted running ids: ``(decodes, partials, victims, free)``.

    A decode that needs a block while none is free preempts the youngest unprocessed request (the tail of
    ``srt``), or itself when none is left.
    """
    dec, par, victims = np.empty(srt.size, np.int64), np.empty(srt.size, np.int64), np.empty(srt.size, np.int64)
    nd = npar = nv = i = 0
    j = srt.size - 1
    while i <= j:
        r = srt[i]
        i += 1
        if not rules.is_decode(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]):
            par[npar], npar = r, npar + 1
            continue
        need = rules.decode_blocks(ints[IntCol.COMPUTED, r], ints[IntCol.BLOCKS, r], bs)
        while need > free and i <= j:
            victims[nv], nv, free, j = srt[j], nv + 1, free + ints[IntCol.BLOCKS, srt[j]], j - 1
        if need > free:
            victims[nv], nv, free = r, nv + 1, free + ints[IntCol.BLOCKS, r]
            continue
        dec[nd], nd, free = r, nd + 1, free - need
    return dec[:nd], par[:npar], victims[:nv], free


@njit(cache=True)
def sarathi_plan_of(view, running, head, more, free, total, bs, prompt_alloc, watermark, params):  # type: ignore[no-untyped-def]
    """:func:`sarathi_plan` called from Python; ``view`` is the table's read-only ``(ints, floats, state)``."""
    inp = PlanInput(view[0], view[1], view[2], running, head, more, free, total, bs, prompt_alloc, watermark, 0.0)
    return sarathi_plan(inp, params)


@njit(cache=True)
def _v1_chunk(ints, r, budget, cap):  # type: ignore[no-untyped-def]
    """VLLM V1's tokens for request ``r``: ``min(pending, budget)``, capped for long prefills when ``cap``."""
    pend = rules.pending(ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r])
    n = min(pend, budget)
    return min(n, cap) if cap and pend > 1 else n


@njit(cache=True)
def vllm_v1_plan(inp, params):  # type: ignore[no-untyped-def]
    """VLLM V1's iteration; ``params = (max_num_batched_tokens, max_num_seqs, long_prefill_threshold)``.

    The running pass (admission order) tops every request up, preempting from the back of the running list
    when a request's new blocks are not free; then, if nothing was preempted, the waiting pass admits FCFS
    until the budget, the sequence cap or the first allocation failure. Victims re-enter the queue front in
    the reverse of their preemption order.
    """
    budget, max_seqs, cap = params
    ints, bs, free = inp.ints, inp.block_size, inp.free
    order, n_order = inp.running, inp.running.size
    ids, tokens = np.empty(n_order + inp.waiting.size, np.int64), np.empty(n_order + inp.waiting.size, np.int64)
    victims, n_vic, n, i = np.empty(n_order, np.int64), 0, 0, 0
    while i < n_order and budget > 0:
        r = order[i]
        x = _v1_chunk(ints, r, budget, cap)
        p, g, c, held = (
            ints[IntCol.PROMPT, r],
            ints[IntCol.GENERATED, r],
            ints[IntCol.COMPUTED, r],
            ints[IntCol.BLOCKS, r],
        )
        need = rules.new_blocks(c, x, rules.ONE, p, g, held, bs, inp.prompt_alloc and inp.state[r] == WAITING)
        while need > free and order[n_order - 1] != r:
            n_order -= 1
            victims[n_vic], n_vic, free = order[n_order], n_vic + 1, free + ints[IntCol.BLOCKS, order[n_order]]
        if need > free:
            victims[n_vic], n_vic = r, n_vic + 1
            break
        ids[n], tokens[n], n, budget, free, i = r, x, n + 1, budget - x, free - need, i + 1
    if n_vic:
        return PlanOutput(PLAN_OK, ids[:n], tokens[:n], victims[:n_vic][::-1].copy(), 1, True, _INF)
    j = 0
    while j < inp.waiting.size and budget > 0 and n_order < max_seqs:
        r = inp.waiting[j]
        x = _v1_chunk(ints, r, budget, cap)
        need = rules.blocks_for(ints[IntCol.COMPUTED, r] + x, bs) - ints[IntCol.BLOCKS, r]
        if need > free:
            break
        ids[n], tokens[n], n, budget, free, n_order, j = r, x, n + 1, budget - x, free - need, n_order + 1, j + 1
    sensitive = budget > 0 and j == inp.waiting.size and not inp.more_waiting
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], ids[:0], UNBOUNDED_REPEAT, sensitive, _INF)
