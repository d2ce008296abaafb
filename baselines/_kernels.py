"""Compiled helpers for the schedulers' per-iteration hot path (numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def split_running(running, prompt, generated, computed, blocks, bs):  # type: ignore[no-untyped-def]
    """Sort running ids (oldest arrival first) and split them into decodes and partial prefills.

    Returns ``(sorted_ids, decodes, partials, need)`` where ``need`` is the total number of new KV
    blocks the decodes need to cache one more token each.
    """
    srt = np.sort(running)
    m = srt.size
    dec = np.empty(m, np.int64)
    par = np.empty(m, np.int64)
    nd = 0
    npar = 0
    need = 0
    for i in range(m):
        r = srt[i]
        g = generated[r]
        c = computed[r]
        if prompt[r] + g - c == 1 and g >= 1:
            dec[nd] = r
            nd += 1
            extra = (c + bs) // bs - blocks[r]
            if extra > 0:
                need += extra
        else:
            par[npar] = r
            npar += 1
    return srt, dec[:nd], par[:npar], need
