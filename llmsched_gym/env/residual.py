"""The -v1 decoders built on the rule (:mod:`llmsched_gym.env.rule`): residual and priority modes, shared parts.

``residual`` (``LLMSchedResidual-v1``): ``Box(-1, 1, (K + 1,), float32)`` adjusting a named base scheduler
(``EnvConfig.base``, one of :data:`~llmsched_gym.env.config.RESIDUAL_BASES`; default ``"sarathi"``):

* ``a[i]`` for a waiting request in slot ``i``: a priority change in the base's admission order: the request's
  rank moves by ``-a[i]`` times the queue length (``+1`` ahead of everything, ``-1`` behind everything);
* ``a[i]`` for a running request: ``a[i] <= defer_below`` (default -0.5) defers its decode (it runs only with the
  budget left after prefills, least TBT slack first); other values change nothing;
* ``a[K]``: the token budget: ``default_budget * 4 ** a[K]``, snapped to the nearest budget level (log scale);
* ``a[K+1]``: the concurrency cap: at most ``round(max_num_seqs * 32 ** a[K+1])`` requests hold KV (4 to 4,096 with
  the default 128; fewer concurrent requests is how VTC's runtime keeps service fair).

The zero action is the base scheduler itself: with ``base="sarathi"`` or ``"sarathi-spf"`` every decision equals
the registered scheduler's (tested on per-request results). Waiting slots are filled in the base's admission order,
so slot ``i`` of a waiting request is its rank; requests outside the slots keep their base rank. NaN entries count
as 0 and out-of-range values are clipped.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.view import EngineView
from llmsched_gym.env.config import RESIDUAL_BASES, EnvConfig
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.features import PRIORITY_FEATURES
from llmsched_gym.env.rule import ORDERINGS, RuleDecision, RuleParams, RuleQueue, admission_order

_SLOT_TO_RULE = {"arrival": "fcfs", "spf": "spf", "edf": "edf", "lcs": "lcs", "sjf": "sjf"}


def clean_box(action: object, size: int, what: str) -> np.ndarray:
    """A float64 copy of a Box action: NaN as 0, clipped to ``[-1, 1]``; raises on a wrong size."""
    a = np.array(action, dtype=np.float64).reshape(-1)
    if a.size != size:
        raise ValueError(f"{what} action has {a.size} entries, expected {size} (see env.action_space)")
    np.clip(a, -1.0, 1.0, out=a)
    a[np.isnan(a)] = 0.0
    return a


def concurrency(value: float, default: int) -> int:
    """The concurrency cap of an action value in ``[-1, 1]``: ``round(default * 32 ** value)``, at least 1."""
    return default if value == 0.0 else max(1, round(default * 32.0**value))


class BudgetScale:
    """Token budgets of action values: ``default_budget * 4 ** value``, snapped to the nearest level (log scale).

    Args:
        config: The environment configuration (``default_budget``, ``budget_levels``).
    """

    __slots__ = ("_levels", "_logs", "default")

    def __init__(self, config: EnvConfig) -> None:
        self.default = config.default_budget
        self._levels = tuple(sorted({*config.budget_levels, config.default_budget}))
        self._logs = np.log(np.asarray(self._levels, dtype=np.float64))

    def of(self, value: float) -> int:
        """The budget of an action value in ``[-1, 1]`` (0: the default budget exactly)."""
        if value == 0.0:
            return self.default
        wanted = math.log(self.default) + value * math.log(4.0)
        return self._levels[int(np.argmin(np.abs(self._logs - wanted)))]

    def levels(self) -> tuple[int, ...]:
        """Every budget an action can choose, ascending."""
        return self._levels


class RuleDecoderBase:
    """What the rule-based -v1 decoders share: the rule's queue and the slot fill order.

    Args:
        config: The environment configuration.
        slot_ordering: The rule ordering that fills the waiting slots when ``config.slot_order`` is ``None``.
    """

    def __init__(self, config: EnvConfig, slot_ordering: str) -> None:
        self.config = config
        order = _SLOT_TO_RULE[config.slot_order] if config.slot_order is not None else slot_ordering
        self._slot_params = RuleParams(config.default_budget, ORDERINGS.index(order))
        self.queue = RuleQueue()
        self.budgets = BudgetScale(config)

    def reset(self) -> None:
        """Forget the queue (a new episode)."""
        self.queue.clear()

    def waiting_order(self, view: EngineView, service: FloatArray) -> IntArray:
        """Waiting requests in slot-fill order (the rule's admission order under the slot ordering)."""
        self.queue.sync(view)
        order = admission_order(self.queue, self._slot_params, view, service)
        return np.asarray(order, dtype=np.int64)


class ResidualDecoder(RuleDecoderBase):
    """Decoder of the ``residual`` action (see the module docstring).

    Args:
        config: The environment configuration (``base``, ``default_budget``, ``budget_levels``, ``defer_below``).
    """

    name = "residual"

    def __init__(self, config: EnvConfig) -> None:
        self.ordering = RESIDUAL_BASES[config.base]
        super().__init__(config, self.ordering)
        self.k = config.slots
        self.space = spaces.Box(-1.0, 1.0, shape=(self.k + 2,), dtype=np.float32)
        self.layout: tuple[str, ...] = ("slot", "global", "global")
        """Segments of the action vector: K per-slot values, then the budget and the concurrency cap."""

    def decide(self, action: object, ctx: DecisionContext) -> RuleDecision:
        """The held rule for ``action`` at the decision ``ctx`` describes."""
        a = clean_box(action, self.k + 2, "residual")
        cfg = self.config
        slots, n_rs = ctx.slots.tolist(), ctx.n_run_slots
        deferred = frozenset(slots[i] for i in range(n_rs) if a[i] <= cfg.defer_below)
        priority = {slots[i]: float(a[i]) for i in range(n_rs, len(slots)) if a[i] != 0.0}
        budget, cap = self.budgets.of(float(a[self.k])), concurrency(float(a[self.k + 1]), cfg.max_num_seqs)
        params = RuleParams(budget, ORDERINGS.index(self.ordering), -1.0, deferred, priority, cap)
        return RuleDecision(params, self.queue, ctx.service)


class PriorityDecoder(RuleDecoderBase):
    """Decoder of the ``priority`` action: feature weights of a priority change over a named base scheduler.

    ``Box(-1, 1, (P + 2,), float32)`` with ``P = len(PRIORITY_FEATURES)``: ``a[:P]`` weights the request features
    of :data:`~llmsched_gym.env.features.PRIORITY_FEATURES`; every waiting request (in the slots or not) gets the
    priority change ``clip(features @ a[:P], -1, 1)``, recomputed at every iteration of the held decision (so a
    request whose TTFT deadline passes during the hold is re-ranked at once); a running decode whose change is
    ``<= defer_below`` (-0.5) is deferred (it runs only with the budget left after prefills); ``a[P]`` and
    ``a[P+1]`` are the budget and the concurrency cap as in the residual mode. Exploration happens in the space of
    ranking rules (one weight moves every request with that feature), which is what makes it easy to learn. The
    zero action is the base scheduler (``EnvConfig.base``).

    Args:
        config: The environment configuration.
    """

    name = "priority"

    def __init__(self, config: EnvConfig) -> None:
        self.ordering = RESIDUAL_BASES[config.base]
        super().__init__(config, self.ordering)
        self.p = len(PRIORITY_FEATURES)
        self.space = spaces.Box(-1.0, 1.0, shape=(self.p + 2,), dtype=np.float32)

    def decide(self, action: object, ctx: DecisionContext) -> RuleDecision:
        """The held rule for ``action``."""
        a = clean_box(action, self.p + 2, "priority")
        cfg = self.config
        weights = tuple(float(w) for w in a[: self.p])
        budget, cap = self.budgets.of(float(a[self.p])), concurrency(float(a[self.p + 1]), cfg.max_num_seqs)
        params = RuleParams(
            budget, ORDERINGS.index(self.ordering), max_num_seqs=cap, weights=weights if any(weights) else (),
            defer_below=cfg.defer_below,
        )  # fmt: skip
        return RuleDecision(params, self.queue, ctx.service)
