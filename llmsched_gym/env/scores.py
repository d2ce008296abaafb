"""The "scores" action mode: one priority per slot, a token-budget level and (optionally) one chunk cap per slot.

Action layout (a float32 ``Box(-1, 1)`` of size ``2K + 1``, or ``K + 1`` without chunk caps):

* ``a[0:K]`` — slot scores. ``s > 0``: serve (admit a waiting request, continue a running one), higher first.
  ``preempt_below < s <= 0``: hold (a waiting request stays queued; a running one skips this iteration and keeps
  its KV). ``s <= preempt_below`` (default -0.9): a running request is preempted (recompute); a waiting one holds.
* ``a[K]`` — token-budget level: ``levels[min(L - 1, floor((a + 1) / 2 * L))]``.
* ``a[K+1 : 2K+1]`` — chunk caps: ``c >= 0`` leaves the row uncapped; ``c < 0`` caps it at
  ``floor((c + 1) * budget + 0.5)`` tokens (0 leaves it out).

Decoding: slot requests with positive score, by descending score (ties: slot order), then the running requests
outside the slots (admission order: the default for requests the agent cannot see) are packed greedily, each row
taking ``min(pending, cap, budget left)``; KV pressure follows :mod:`llmsched_gym.env.actions` (victims are the
lowest scores). Waiting requests outside the slots are never admitted. NaN entries count as 0 and out-of-range
values are clipped. A plan that would stall the engine (nothing runs, nothing is left to arrive) is replaced by
the default plan of :func:`~llmsched_gym.env.actions.ensure_progress`.

:meth:`ScoresDecoder.encode_plan` writes any plan whose requests all sit in the slots as an action that decodes
back to exactly that plan: served rows get strictly decreasing positive scores in plan order, preempted rows -1,
the rest 0; the budget is the smallest level that holds the plan's tokens; a row whose tokens differ from the
greedy fill gets an explicit cap.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
from gymnasium import spaces

from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.view import EngineView
from llmsched_gym.env._kernels import ERR_BUDGET, ERR_CAPS, ERR_NOT_RUNNING, ERR_OUTSIDE, encode_scores
from llmsched_gym.env._table_kernels import scores_plan_table
from llmsched_gym.env.actions import ensure_progress
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.context import DecisionContext, select_slots


class ScoresDecoder:
    """Decoder of the "scores" action (see the module docstring for the layout and rules).

    Args:
        config: The environment configuration (slots, budget levels, caps, preemption threshold).
    """

    name = "scores"

    def __init__(self, config: EnvConfig) -> None:
        self.k = config.slots
        self.levels = np.asarray(config.budget_levels, dtype=np.int64)
        self.caps = config.chunk_caps
        self.preempt_below = config.preempt_below
        self.size = 2 * self.k + 1 if self.caps else self.k + 1
        self.space = spaces.Box(-1.0, 1.0, shape=(self.size,), dtype=np.float32)
        self._threshold = -np.inf if self.preempt_below is None else float(self.preempt_below)

    # ---- decoding ------------------------------------------------------------------------
    def budget_index(self, value: float) -> int:
        """Budget level index of a (clipped, NaN-free) action value."""
        n = self.levels.size
        return min(n - 1, int((value + 1.0) * 0.5 * n))

    def decode(self, action: object, ctx: DecisionContext) -> BatchPlan:
        """The plan for ``action`` at the decision ``ctx`` describes."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != self.size:
            raise ValueError(f"scores action has {a.size} entries, expected {self.size} (see env.action_space)")
        e = ctx.engine
        t = e.table
        rows, n_victims = scores_plan_table(
            a, self.k, self.caps, self._threshold, self.levels, ctx.slots, ctx.n_run_slots,
            ctx.running[ctx.n_run_slots :], e.pool.free, t.state, t.ints, e.pool.block_size, e.prompt_allocation,
        )  # fmt: skip
        n = rows.shape[1] - n_victims
        plan = BatchPlan(rows[0, :n], rows[1, :n], tuple(rows[0, n:].tolist()) if n_victims else ())
        return ensure_progress(plan, ctx, int(self.levels[-1]))

    # ---- encoding ------------------------------------------------------------------------
    def level_value(self, index: int) -> float:
        """The action value at the centre of budget level ``index``."""
        return (2.0 * index + 1.0) / self.levels.size - 1.0

    def encode_plan(self, plan: BatchPlan, view: EngineView, slots: tuple[IntArray, int] | None = None) -> np.ndarray:
        """An action that decodes to exactly ``plan`` at the decision ``view`` shows.

        Args:
            plan: A valid plan for the current engine state (e.g. a baseline scheduler's).
            view: The engine's current view.
            slots: The slot assignment ``(slot_ids, n_running_slots)`` if already known (the env passes its own).

        Returns:
            The float32 action.

        Raises:
            ValueError: The plan cannot be expressed (a request outside the slots, a rejection, a wake-up time
                before the next arrival, more tokens than the largest budget level, or a non-greedy chunk size
                or preemption while chunk caps or preemption are disabled); the message says which.
        """
        if plan.reject:
            raise ValueError(f"plan not expressible: rejections {list(plan.reject)} have no action")
        running = view.running
        ids, n_rs = slots if slots is not None else select_slots(running, view.waiting, self.k)
        if running.size > n_rs:
            raise ValueError(
                f"plan not expressible: {running.size - n_rs} running requests lie outside the {self.k} slots "
                "(raise `slots`)"
            )
        _check_idle(plan, view)
        if plan.preempt and self.preempt_below is None:
            raise ValueError(f"plan preempts {list(plan.preempt)} but preempt_below=None disables explicit preemption")
        action = np.zeros(self.size, dtype=np.float32)
        preempt = np.asarray(plan.preempt, dtype=np.int64)
        err, rid = encode_scores(
            action, self.k, self.caps, self.levels, ids, plan.ids, plan.tokens, preempt, view.state, view.prompt,
            view.generated, view.computed,
        )  # fmt: skip
        if err:
            raise ValueError(_ENCODE_ERRORS[err].format(rid=rid, top=int(self.levels[-1])))
        return action


_ENCODE_ERRORS = MappingProxyType(
    {
        ERR_OUTSIDE: "plan not expressible: request {rid} is outside the observation slots (raise `slots`)",
        ERR_BUDGET: "plan not expressible: it runs {rid} tokens, more than the largest budget level {top}",
        ERR_CAPS: "request {rid} gets fewer tokens than the greedy fill gives: enable chunk_caps to express it",
        ERR_NOT_RUNNING: "plan not expressible: preempted request {rid} is not running",
    }
)


def _check_idle(plan: BatchPlan, view: EngineView) -> None:
    if plan.ids.size == 0 and plan.wake_at is not None:
        nxt = view.next_arrival
        if nxt is None or plan.wake_at < nxt:
            raise ValueError(f"plan not expressible: an idle plan waking at {plan.wake_at} before the next arrival")
