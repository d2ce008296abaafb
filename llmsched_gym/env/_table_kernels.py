"""Entry points of the env's per-step kernels that take the request table as its 2-D arrays.

numba's per-call cost grows with every array argument (about 0.1-0.2 µs each) and every boxed result
(about 0.7 µs each); these wrappers take ``table.ints`` / ``table.floats`` instead of a dozen columns and
pack their results, then call the kernels of :mod:`llmsched_gym.env._kernels` unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from llmsched_gym.core.table import FLOAT_COLUMNS, INT_COLUMNS
from llmsched_gym.env._kernels import credit_service, scores_plan

_I = {name: i for i, name in enumerate(INT_COLUMNS)}
_F = {name: i for i, name in enumerate(FLOAT_COLUMNS)}
_PROMPT, _GENERATED, _COMPUTED, _EMITTED = (_I[c] for c in ("prompt", "generated", "computed", "emitted"))
_PREEMPTIONS, _BLOCKS, _PREDICTED, _CLIENT = (_I[c] for c in ("preemptions", "blocks", "predicted", "client"))
_PROMPT_DONE = _I["prompt_done"]
_ARRIVAL, _FIRST_TOKEN, _LAST_TOKEN = (_F[c] for c in ("arrival", "first_token", "last_token"))
_SLO_TTFT, _SLO_TBT = _F["slo_ttft"], _F["slo_tbt"]


@njit(cache=True)
def scores_plan_table(a, k, caps_on, preempt_below, levels, slots, n_rs, outside, free, state, ints, bs,
                      prompt_alloc):  # type: ignore[no-untyped-def]  # fmt: skip
    """:func:`~llmsched_gym.env._kernels.scores_plan` on the table's arrays.

    Returns ``(rows, n_victims)``: ``rows[0]`` and ``rows[1]`` are the plan's ids and tokens, followed by
    the victims in ``rows[0, n:]`` where ``n = rows.shape[1] - n_victims``.
    """
    ids, toks, victims, _ = scores_plan(a, k, caps_on, preempt_below, levels, slots, n_rs, outside, free, state,
                                        ints[_PROMPT], ints[_GENERATED], ints[_COMPUTED], ints[_BLOCKS], bs,
                                        prompt_alloc)  # fmt: skip
    rows = np.zeros((2, ids.size + victims.size), np.int64)
    rows[0, : ids.size] = ids
    rows[1, : ids.size] = toks
    rows[0, ids.size :] = victims
    return rows, victims.size


@njit(cache=True)
def credit_service_table(ids, ints, credited, service, present, w_prompt, w_output):  # type: ignore[no-untyped-def]  # fmt: skip
    """:func:`~llmsched_gym.env._kernels.credit_service` on the table's integer array."""
    return credit_service(ids, ints[_PROMPT_DONE], ints[_EMITTED], ints[_CLIENT], credited, service, present, w_prompt,
                          w_output)  # fmt: skip
