"""The -v1 rule as a compiled plan function: :func:`llmsched_gym.env.rule.rule_plan`, decision for decision.

``rule_plan_fn(inp, params)`` follows the plan-function contract of the engine's compiled segment loop: ``inp``
holds the request table (its integer and float 2-D arrays and the state column), the running ids (admission
order), the waiting queue (queue order: arrivals at the back, preempted requests at the front), the KV pool and
the clock; it returns a :class:`~llmsched_gym.core.segment.PlanOutput` ``(status, ids, tokens, victims, repeat,
arrival_sensitive, wake_at)``. ``params`` is :func:`pack_params`'s tuple. A plan with a rejection (a preempted
request that grew past the pool above the watermark) is left to Python (``status = 1``). A test compares it with
the Python rule on every decision.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from llmsched_gym.core.segment import PlanOutput
from llmsched_gym.core.table import FLOAT_COLUMNS, INT_COLUMNS
from llmsched_gym.env._rule_kernels import decode_pass, features, weigh
from llmsched_gym.env.rule import ORDERINGS, UNBOUNDED_REPEAT, RuleParams

_I = {name: i for i, name in enumerate(INT_COLUMNS)}
_F = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
PROMPT, GENERATED, COMPUTED, BLOCKS = _I["prompt"], _I["generated"], _I["computed"], _I["blocks"]
PREDICTED, PREEMPTIONS, CLIENT, PROMPT_DONE, EMITTED = (
    _I["predicted"], _I["preemptions"], _I["client"], _I["prompt_done"], _I["emitted"],
)  # fmt: skip
ARRIVAL, SLO_TTFT, SLO_TBT, FIRST_TOKEN, LAST_TOKEN = (
    _F["arrival"], _F["slo_ttft"], _F["slo_tbt"], _F["first_token"], _F["last_token"],
)  # fmt: skip
FCFS, SPF, EDF, LCS, SJF = (ORDERINGS.index(o) for o in ("fcfs", "spf", "edf", "lcs", "sjf"))
PLAN_OK, PLAN_PYTHON = 0, 1
_INF = math.inf


def pack_params(params: RuleParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The compiled plan function's parameters of ``params``.

    ``(ints [budget, ordering, max_num_seqs], floats [defer_theta, defer_below], deferred ids (sorted),
    priority ids, priority values, weights)``.
    """
    ints = np.array([params.budget, params.ordering, params.max_num_seqs], dtype=np.int64)
    floats = np.array([params.defer_theta, params.defer_below], dtype=np.float64)
    deferred = np.array(sorted(params.deferred), dtype=np.int64)
    prio_ids = np.fromiter(params.priority.keys(), dtype=np.int64, count=len(params.priority))
    prio_vals = np.fromiter(params.priority.values(), dtype=np.float64, count=len(params.priority))
    weights = np.asarray(params.weights, dtype=np.float64)
    return ints, floats, deferred, prio_ids, prio_vals, weights


@njit(cache=True)
def _service(inp):  # type: ignore[no-untyped-def]
    """Per-client VTC service over the table and its mean over the clients that received any."""
    ints = inp.ints
    n = ints.shape[1]
    top = 0
    for r in range(n):
        top = max(top, ints[CLIENT, r])
    service = np.zeros(top + 1)
    for r in range(n):
        service[ints[CLIENT, r]] += ints[PROMPT_DONE, r] + 2.0 * ints[EMITTED, r]
    total = 0.0
    count = 0
    for c in range(top + 1):
        if service[c] > 0.0:
            total += service[c]
            count += 1
    return service, total / count if count else 0.0


@njit(cache=True)
def _features(inp, ids, service, mean):  # type: ignore[no-untyped-def]
    i, f = inp.ints, inp.floats
    return features(ids, inp.now, f[ARRIVAL], f[SLO_TTFT], f[FIRST_TOKEN], i[PROMPT], i[GENERATED], i[COMPUTED],
                    i[PREDICTED], i[PREEMPTIONS], i[CLIENT], f[SLO_TBT], service, mean)  # fmt: skip


@njit(cache=True)
def _order_keys(inp, ids, ordering, service):  # type: ignore[no-untyped-def]
    """The ordering's sort keys (see :func:`llmsched_gym.env.rule.ordering_key`)."""
    i, f = inp.ints, inp.floats
    keys = np.empty(ids.size)
    for j in range(ids.size):
        r = ids[j]
        if ordering == SPF:
            keys[j] = i[PROMPT, r]
        elif ordering == EDF:
            keys[j] = f[ARRIVAL, r] + f[SLO_TTFT, r]
        elif ordering == LCS:
            c = i[CLIENT, r]
            keys[j] = service[c] if c < service.size else 0.0
        else:
            p = i[PREDICTED, r]
            keys[j] = (p if p >= 0 else i[PROMPT, r]) * 1e7 + i[PROMPT, r]
    return keys


@njit(cache=True)
def admission_order(inp, params, service, mean):  # type: ignore[no-untyped-def]
    """The waiting queue in admission order (:func:`llmsched_gym.env.rule.admission_order`)."""
    ip, _, _, prio_ids, prio_vals, weights = params
    items = inp.waiting.copy()
    if items.size < 2:
        return items
    if ip[1] != FCFS:
        items = items[np.argsort(_order_keys(inp, items, ip[1], service), kind="mergesort")]
    m = items.size
    if prio_ids.size:
        keys = np.arange(m).astype(np.float64)
        for j in range(m):
            for k in range(prio_ids.size):
                if prio_ids[k] == items[j]:
                    keys[j] -= prio_vals[k] * m
                    break
        items = items[np.argsort(keys, kind="mergesort")]
    elif weights.size and np.any(weights != 0.0):
        delta = weigh(_features(inp, items, service, mean), weights)
        keys = np.arange(m) - np.minimum(np.maximum(delta, -1.0), 1.0) * m
        items = items[np.argsort(keys, kind="mergesort")]
    return items


@njit(cache=True)
def _defer_mask(inp, order, params, service, mean):  # type: ignore[no-untyped-def]
    """Deferred decodes among running ``order`` (explicit ids, the TBT-slack rule, or the priority weights)."""
    _, fp, deferred, _, _, weights = params
    mask = np.zeros(order.size, np.bool_)
    for j in range(order.size):
        r = order[j]
        k = np.searchsorted(deferred, r)
        if k < deferred.size and deferred[k] == r:
            mask[j] = True
        if fp[0] >= 0.0 and 1.0 - (inp.now - inp.floats[LAST_TOKEN, r]) / inp.floats[SLO_TBT, r] > fp[0]:
            mask[j] = True
    if weights.size and np.any(weights != 0.0) and order.size:
        delta = weigh(_features(inp, order, service, mean), weights)
        for j in range(order.size):
            if delta[j] <= fp[1]:
                mask[j] = True
    return mask


@njit(cache=True)
def _decode_need(inp, r):  # type: ignore[no-untyped-def]
    i = inp.ints
    return max(0, (i[COMPUTED, r] + inp.block_size) // inp.block_size - i[BLOCKS, r])


@njit(cache=True)
def _admission_blocks(inp, r):  # type: ignore[no-untyped-def]
    i = inp.ints
    if not inp.prompt_alloc:
        return 0
    return max(0, (i[PROMPT, r] + i[GENERATED, r] + inp.block_size - 1) // inp.block_size - i[BLOCKS, r])


@njit(cache=True)
def _needs_service(params):  # type: ignore[no-untyped-def]
    ip, _, _, _, _, weights = params
    return ip[1] == LCS or (weights.size > 0 and np.any(weights != 0.0))


@njit(cache=True)
def rule_plan_fn(inp, params):  # type: ignore[no-untyped-def]
    """One iteration of the rule (see the module docstring and :mod:`llmsched_gym.env.rule`)."""
    ip, fp, _, prio_ids, _, weights = params
    budget, max_seqs = ip[0], ip[2]
    service, mean = _service(inp) if _needs_service(params) else (np.zeros(1), 0.0)
    running = np.sort(inp.running)
    defer = _defer_mask(inp, running, params, service, mean)
    i = inp.ints
    dec, par, dfr, pre, free = decode_pass(running, defer, i[PROMPT], i[GENERATED], i[COMPUTED], i[BLOCKS],
                                           inp.block_size, inp.free)  # fmt: skip
    ids = np.empty(running.size + inp.waiting.size + 1, np.int64)
    tok = np.empty(ids.size, np.int64)
    n = dec.size
    ids[:n] = dec
    tok[:n] = 1
    used, active = dec.size, running.size - pre.size
    for r in par:
        chunk = min(i[PROMPT, r] + i[GENERATED, r] - i[COMPUTED, r], max(budget - used, 0))
        if chunk > 0:
            ids[n], tok[n] = r, chunk
            n += 1
            used += chunk
    n_queue_left = inp.waiting.size
    if inp.waiting.size:  # Sarathi-Serve's loop: leading rejections happen even with no budget left
        order = admission_order(inp, params, service, mean)
        usable = inp.total - inp.watermark
        for r in order:
            blocks = _admission_blocks(inp, r)
            if blocks > usable:
                return PlanOutput(PLAN_PYTHON, ids[:0], tok[:0], pre[:0], 1, True, _INF)  # a rejection: Python
            chunk = min(i[PROMPT, r] + i[GENERATED, r] - i[COMPUTED, r], max(budget - used, 0))
            if chunk == 0 or active + 1 > max_seqs or free - blocks < inp.watermark:
                break
            ids[n], tok[n] = r, chunk
            n += 1
            used += chunk
            free -= blocks
            active += 1
            n_queue_left -= 1
    n_dec = dec.size
    if dfr.size and n_dec == 0 and n == 0:  # nothing else runs: deferral must not stall the engine
        none = np.zeros(dfr.size, np.bool_)
        d2, _, _, p2, free = decode_pass(dfr, none, i[PROMPT], i[GENERATED], i[COMPUTED], i[BLOCKS], inp.block_size,
                                         free)  # fmt: skip
        ids[: d2.size] = d2
        tok[: d2.size] = 1
        n = d2.size
        pre = np.concatenate((pre, p2))
    elif dfr.size:
        n, used, free = _fill_deferred(inp, dfr, ids, tok, n, used, budget, free)
    victims = np.sort(pre)
    if pre.size:
        return PlanOutput(PLAN_OK, ids[:n], tok[:n], victims, 1, True, _INF)
    stable = fp[0] < 0.0 and dfr.size == 0 and not (weights.size and np.any(weights != 0.0))
    open_queue = (
        n_queue_left == 0 or ip[1] != FCFS or prio_ids.size > 0 or (weights.size > 0 and np.any(weights != 0.0))
    )
    sensitive = bool(open_queue and used < budget)
    return PlanOutput(PLAN_OK, ids[:n], tok[:n], victims, UNBOUNDED_REPEAT if stable else 1, sensitive, _INF)


@njit(cache=True)
def _fill_deferred(inp, dfr, ids, tok, n, used, budget, free):  # type: ignore[no-untyped-def]
    """Deferred decodes, least TBT slack first, while budget and blocks last."""
    f = inp.floats
    slack = np.empty(dfr.size)
    for j in range(dfr.size):
        slack[j] = f[LAST_TOKEN, dfr[j]] + f[SLO_TBT, dfr[j]]
    for j in np.argsort(slack, kind="mergesort"):
        if used >= budget:
            break
        r = dfr[j]
        need = _decode_need(inp, r)
        if need > free:
            continue
        free -= need
        ids[n], tok[n] = r, 1
        n += 1
        used += 1
    return n, used, free
