"""Compiled (numba) parts of the -v1 rule: the decode pass and the request features.

They implement exactly :func:`llmsched_gym.env.rule._decode_pass`'s loop (Sarathi-Serve's decode pass with
youngest-first preemption) and :func:`llmsched_gym.env.features.request_features`, one pass each instead of a
Python loop over the running requests or a dozen small numpy calls.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG_LEN = math.log1p(16384.0)


@njit(cache=True)
def decode_pass(order, defer, prompt, generated, computed, blocks, bs, free):  # type: ignore[no-untyped-def]
    """``(decodes, partials, deferred, preempted, free)`` of running ``order`` (oldest first).

    ``defer[i]`` marks ``order[i]``'s decode as deferred. A decode needing a block that is not free preempts the
    youngest unprocessed request (the tail of ``order``), or itself when none is left.
    """
    m = order.size
    dec = np.empty(m, np.int64)
    par = np.empty(m, np.int64)
    dfr = np.empty(m, np.int64)
    pre = np.empty(m, np.int64)
    nd = npar = ndf = npre = 0
    head = 0
    tail = m
    while head < tail:
        i = head
        head += 1
        r = order[i]
        g = generated[r]
        if prompt[r] + g - computed[r] != 1 or g < 1:
            par[npar] = r
            npar += 1
            continue
        if defer[i]:
            dfr[ndf] = r
            ndf += 1
            continue
        need = max(0, (computed[r] + 1 + bs - 1) // bs - blocks[r])
        while need > free and head < tail:
            tail -= 1
            v = order[tail]
            pre[npre] = v
            npre += 1
            free += blocks[v]
        if need > free:
            pre[npre] = r
            npre += 1
            free += blocks[r]
            continue
        free -= need
        dec[nd] = r
        nd += 1
    return dec[:nd], par[:npar], dfr[:ndf], pre[:npre], free


@njit(cache=True)
def features(ids, now, arrival, slo_ttft, first_token, prompt, generated, computed, predicted, preemptions, client,
             slo_tbt, service, service_mean):  # type: ignore[no-untyped-def]  # fmt: skip
    """The priority features of ``ids`` (see :func:`llmsched_gym.env.features.request_features`)."""
    x = np.empty((ids.size, 9))
    for j in range(ids.size):
        r = ids[j]
        slack = arrival[r] + slo_ttft[r] - now
        if not np.isfinite(slack):
            slack = 1e9
        waited = now - arrival[r]
        c = client[r]
        d = (service[c] if c < service.size else 0.0) - service_mean
        tbt = min(slo_tbt[r], 1e9)
        x[j, 0] = 1.0 if slack < 0.0 and np.isnan(first_token[r]) else 0.0
        x[j, 1] = slack / (abs(slack) + 1.0)
        x[j, 2] = min(math.log1p(prompt[r]) / _LOG_LEN, 1.0)
        x[j, 3] = min(math.log1p(prompt[r] + generated[r] - computed[r]) / _LOG_LEN, 1.0)
        x[j, 4] = min(math.log1p(predicted[r]) / _LOG_LEN, 1.0) if predicted[r] >= 0 else 0.0
        x[j, 5] = waited / (waited + 1.0)
        x[j, 6] = 1.0 if preemptions[r] > 0 else 0.0
        x[j, 7] = d / (abs(d) + 1e4)
        x[j, 8] = tbt / (tbt + 0.1)
    return x


@njit(cache=True)
def weigh(x, weights):  # type: ignore[no-untyped-def]
    """``x @ weights`` summed in feature order (the same floating-point result in Python and compiled code)."""
    out = np.zeros(x.shape[0])
    for j in range(x.shape[0]):
        acc = 0.0
        for f in range(x.shape[1]):
            acc += x[j, f] * weights[f]
        out[j] = acc
    return out


@njit(cache=True)
def view_totals(n, client, prompt_done, emitted, state, first_token, arrival, slo_ttft, tbt_viol, tbt_n):  # type: ignore[no-untyped-def]  # fmt: skip
    """``(service per client, clients seen, finished, finished meeting their SLOs)`` over the first ``n`` rows.

    The episode totals the environment's tracker keeps, from the table (see ``policy.scheduler.ViewStats``).
    """
    top = 0
    for r in range(n):
        top = max(top, client[r])
    service = np.zeros(top + 1)
    seen = np.zeros(top + 1, np.bool_)
    finished = met = 0
    for r in range(n):
        c = client[r]
        service[c] += prompt_done[r] + 2.0 * emitted[r]
        seen[c] = True
        if state[r] == 3:
            finished += 1
            if first_token[r] - arrival[r] <= slo_ttft[r] and tbt_viol[r] <= np.floor(0.01 * tbt_n[r]):
                met += 1
    return service, seen.sum(), finished, met
