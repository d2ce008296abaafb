"""Plan functions for the compiled-loop tests: a priority packer that preempts under KV pressure."""

from __future__ import annotations

import numpy as np
from numba import njit

from llmsched_gym.core import rules
from llmsched_gym.core.plan import UNBOUNDED_REPEAT
from llmsched_gym.core.rules import RUNNING, WAITING
from llmsched_gym.core.segment import PLAN_OK, PlanOutput
from llmsched_gym.core.table import IntCol


@njit(cache=True)
def priority_plan(inp, params):  # type: ignore[no-untyped-def]
    """Serve requests by descending score within a token budget; preempt lower-scored running ones for room.

    ``params = (scores, budget)``: a score per request id. A candidate that needs more blocks than are free
    preempts the lowest-scored running requests after it, when that makes it fit.
    """
    scores, budget = params
    ints, state = inp.ints, inp.state
    order = np.concatenate((inp.running, inp.waiting))
    for i in range(1, order.size):  # stable insertion sort by descending score
        v, j = order[i], i
        while j > 0 and scores[order[j - 1]] < scores[v]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = v
    gone = np.zeros(order.size, np.bool_)
    ids, tokens, victims = (
        np.empty(order.size, np.int64),
        np.empty(order.size, np.int64),
        np.empty(order.size, np.int64),
    )
    n = n_vic = 0
    free, left = inp.free, budget
    for i in range(order.size):
        r = order[i]
        if gone[i] or left <= 0:
            continue
        p, g, c = ints[IntCol.PROMPT, r], ints[IntCol.GENERATED, r], ints[IntCol.COMPUTED, r]
        x = min(rules.pending(p, g, c), left)
        need = rules.new_blocks(
            c, x, rules.ONE, p, g, ints[IntCol.BLOCKS, r], inp.block_size, inp.prompt_alloc and state[r] == WAITING
        )
        avail = free
        for j in range(i + 1, order.size):
            if not gone[j] and state[order[j]] == RUNNING:
                avail += ints[IntCol.BLOCKS, order[j]]
        if need > avail:
            continue
        j = order.size - 1
        while need > free:
            v = order[j]
            if not gone[j] and state[v] == RUNNING:
                gone[j] = True
                victims[n_vic], n_vic, free = v, n_vic + 1, free + ints[IntCol.BLOCKS, v]
            j -= 1
        ids[n], tokens[n], n, free, left = r, x, n + 1, free - need, left - x
    repeat = 1 if n_vic else UNBOUNDED_REPEAT
    return PlanOutput(PLAN_OK, ids[:n], tokens[:n], victims[:n_vic], repeat, True, np.inf)
