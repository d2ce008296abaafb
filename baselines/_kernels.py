"""Compiled helpers for the schedulers' per-iteration hot path (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _decode_need(r, prompt, generated, computed, blocks, bs):  # type: ignore[no-untyped-def]
    """-1 if request ``r`` is not a decode, else the new blocks it needs to cache one more token."""
    g = generated[r]
    c = computed[r]
    if prompt[r] + g - c != 1 or g < 1:
        return -1
    return max((c + bs) // bs - blocks[r], 0)


@njit(cache=True)
def split_running(running, prompt, generated, computed, blocks, bs):  # type: ignore[no-untyped-def]
    """Sort running ids (oldest arrival first) and split them into decodes and partial prefills.

    Returns ``(sorted_ids, decodes, partials, need)`` where ``need`` is the total number of new KV
    blocks the decodes need to cache one more token each.
    """
    srt = np.sort(running)
    dec, par, need = _split_sorted(srt, prompt, generated, computed, blocks, bs)
    return srt, dec, par, need


@njit(cache=True)
def _split_sorted(srt, prompt, generated, computed, blocks, bs):  # type: ignore[no-untyped-def]
    """Split sorted running ids into ``(decodes, partials, need)`` (order kept); see :func:`split_running`."""
    m = srt.size
    dec = np.empty(m, np.int64)
    par = np.empty(m, np.int64)
    nd = 0
    npar = 0
    need = 0
    for i in range(m):
        r = srt[i]
        extra = _decode_need(r, prompt, generated, computed, blocks, bs)
        if extra >= 0:
            dec[nd] = r
            nd += 1
            need += extra
        else:
            par[npar] = r
            npar += 1
    return dec[:nd], par[:npar], need


FAST_OK = 0
FAST_FALLBACK = 1


@njit(cache=True)
def fcfs_chunked_plan(running, head, prompt, generated, computed, blocks, bs, free, usable, watermark, budget,
                      max_seqs):  # type: ignore[no-untyped-def]  # fmt: skip
    """Sarathi-Serve's default iteration (FCFS, no options) in one call; see :mod:`baselines.sarathi`.

    Decodes (oldest first), then ongoing partial prefills with ``min(pending, budget - used)``, then
    admissions from ``head`` (the first waiting requests in queue order) with the whole pending prefill's
    blocks under the watermark. Returns ``FAST_FALLBACK`` when the Python path must decide: a decode needs
    a block that is not free (preemption), or a candidate can never fit above the watermark (rejection).

    Returns ``(status, ids, tokens, n_decodes, n_admitted, used)``.
    """
    return fcfs_chunked_plan_sorted(np.sort(running), head, prompt, generated, computed, blocks, bs, free, usable,
                                    watermark, budget, max_seqs)  # fmt: skip


@njit(cache=True)
def fcfs_chunked_plan_sorted(srt, head, prompt, generated, computed, blocks, bs, free, usable, watermark, budget,
                             max_seqs):  # type: ignore[no-untyped-def]  # fmt: skip
    """:func:`fcfs_chunked_plan` for running ids already sorted ascending."""
    m = srt.size
    dec, par, need = _split_sorted(srt, prompt, generated, computed, blocks, bs)
    if need > free:
        return FAST_FALLBACK, np.empty(0, np.int64), np.empty(0, np.int64), 0, 0, 0
    free -= need
    ids = np.empty(m + head.size, np.int64)
    tokens = np.empty(m + head.size, np.int64)
    n_dec = n = used = dec.size
    ids[:n_dec] = dec
    tokens[:n_dec] = 1
    for r in par:
        pend = prompt[r] + generated[r] - computed[r]
        chunk = min(pend, max(budget - used, 0))
        if chunk > 0:
            ids[n] = r
            tokens[n] = chunk
            n += 1
            used += chunk
    active = m
    admitted = 0
    for i in range(head.size):
        r = head[i]
        pend = prompt[r] + generated[r] - computed[r]
        b = max((prompt[r] + generated[r] + bs - 1) // bs - blocks[r], 0)
        if b > usable:
            return FAST_FALLBACK, ids[:0], tokens[:0], 0, 0, 0
        chunk = min(pend, max(budget - used, 0))
        if chunk == 0 or active + 1 > max_seqs or free - b < watermark:
            break
        ids[n] = r
        tokens[n] = chunk
        n += 1
        used += chunk
        free -= b
        active += 1
        admitted += 1
    return FAST_OK, ids[:n], tokens[:n], n_dec, admitted, used
