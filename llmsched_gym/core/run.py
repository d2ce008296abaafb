"""Running a checked plan (the run phase): the end time of each iteration of its stretch.

The runner (simulated cost model or live executor) times one iteration, or ``k`` repetitions of a
stretch; :func:`costed_ends` does the same in compiled code for cost models with a compiled form
(:mod:`llmsched_gym.core.cost_kernels`, bit-identical to their Python methods). Either way the stretch is
cut after the first iteration that ends at or after the next arrival (if the plan is arrival-sensitive) or
the plan's ``wake_at`` (:func:`stretch_ends`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from llmsched_gym.core import cost_kernels
from llmsched_gym.core.batch import BatchSummary, FloatArray, IterationWork
from llmsched_gym.core.check import Checked
from llmsched_gym.core.protocols import Runner

_INF = float("inf")


def work_of(ids: np.ndarray, n: np.ndarray, checked: Checked) -> IterationWork:
    """The runner's view of a checked plan."""
    c = checked
    summary = BatchSummary(c.pre_tokens, c.pre_ctx, int(c.n_dec), int(c.dec_ctx), int(ids.size))
    return IterationWork(ids, n, c.start, c.is_dec, c.samples, summary)


def runner_ends(runner: Runner, work: IterationWork, k: int, now: float, arrival: float, wake: float) -> FloatArray:
    """Iteration end times of ``k`` repetitions of ``work`` timed by ``runner`` (cut at ``arrival`` / ``wake``)."""
    if k == 1:
        return np.array([now + runner.run(work)], dtype=np.float64)
    out: FloatArray = stretch_ends(now, runner.run_stretch(work, k), arrival, wake)
    return out


@njit(cache=True)
def costed_ends(form, coef, checked, m, now, arrival, wake):  # type: ignore[no-untyped-def]
    """Iteration end times of a checked plan of ``m`` rows under a compiled cost model (cut as above)."""
    s_c, s_cx, s_cc, s_x = cost_kernels.aggregates(checked.pre_tokens, checked.pre_ctx)
    n_dec, dec_ctx, k = checked.n_dec, checked.dec_ctx, checked.k
    if k == 1:
        ends = np.empty(1, np.float64)
        ends[0] = now + cost_kernels.iteration_time(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, m)
        return ends
    durations = cost_kernels.stretch_times(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, m, k)
    return stretch_ends(now, durations, arrival, wake)


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
