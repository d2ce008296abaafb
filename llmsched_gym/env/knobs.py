"""The "knobs" action mode: a MultiDiscrete choice of scheduling knobs (-v0 below; -v1: :class:`KnobsRuleDecoder`).

Action ``[budget, ordering, deferral, hold]``:

* ``budget`` — index into the token-budget levels (tile-aligned).
* ``ordering`` — order of waiting requests for admission: 0 FCFS (arrival), 1 shortest prompt first, 2 least
  client service first (VTC counters), 3 earliest TTFT deadline first (arrival + TTFT target).
* ``deferral`` — 0 off; ``j >= 1`` defers every decode that still has more than ``deferral_levels[j - 1]`` of its
  TBT target left (``1 - (now - last token) / TBT target``; requests without a TBT target are always deferrable):
  deferred decodes only use the budget left after prefills, like SLAI's non-critical decodes.
* ``hold`` — 1 admits no new request this iteration (ongoing prefills and decodes continue).

The batch is packed in the order: non-deferred decodes (admission order), ongoing partial prefills (admission
order), waiting requests in the chosen order (admission stops at the first one whose KV reservation does not fit),
deferred decodes. KV pressure preempts the lowest-priority running rows (the tail of that order, last first).
Out-of-range entries are clipped to the valid range and non-finite ones count as 0.

:meth:`KnobsDecoder.action_masks` (for sb3-contrib's MaskablePPO) masks budget levels below the number of
running decodes (all but the largest when none is large enough) and "hold" while nothing is running.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.env._kernels import knobs_plan
from llmsched_gym.env.actions import ensure_progress
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.residual import RuleDecoderBase
from llmsched_gym.env.rule import ORDERINGS as ORDERINGS_V1
from llmsched_gym.env.rule import RuleDecision, RuleParams

ORDERINGS: tuple[str, ...] = ("fcfs", "shortest_prompt", "least_service", "earliest_ttft_deadline")


class KnobsDecoder:
    """Decoder of the "knobs" action (see the module docstring).

    Args:
        config: The environment configuration (budget levels, deferral thresholds).
    """

    name = "knobs"

    def __init__(self, config: EnvConfig) -> None:
        self.levels = np.asarray(config.budget_levels, dtype=np.int64)
        self.deferral = config.deferral_levels
        self.nvec = np.array([self.levels.size, len(ORDERINGS), 1 + len(self.deferral), 2], dtype=np.int64)
        self.space = spaces.MultiDiscrete(self.nvec)
        self._limits = (self.nvec - 1).tolist()

    def _clean(self, action: object) -> list[int]:
        raw = np.asarray(action).reshape(-1).tolist()
        if len(raw) != self.nvec.size:
            raise ValueError(f"knobs action has {len(raw)} entries, expected {self.nvec.size}: [budget, order, ...]")
        out = []
        for value, n in zip(raw, self._limits, strict=True):
            x = float(value)
            out.append(min(max(int(x), 0), n) if math.isfinite(x) else 0)
        return out

    def decode(self, action: object, ctx: DecisionContext) -> BatchPlan:
        """The plan for ``action`` at the decision ``ctx`` describes."""
        level, ordering, deferral, hold = self._clean(action)
        e = ctx.engine
        t = e.table
        ranked = ctx.waiting[:0] if hold else self._ordered_waiting(ctx, ordering)
        ids, toks, victims = knobs_plan(
            int(self.levels[level]), self.deferral[deferral - 1] if deferral else -1.0, ctx.running, ranked, e.now,
            e.pool.free, t.state, t.prompt, t.generated, t.computed, t.blocks, t.last_token, t.slo_tbt,
            e.pool.block_size, e.prompt_allocation,
        )  # fmt: skip
        plan = BatchPlan(ids, toks, tuple(victims.tolist()) if victims.size else ())
        return ensure_progress(plan, ctx, int(self.levels[-1]))

    @staticmethod
    def _ordered_waiting(ctx: DecisionContext, ordering: int) -> IntArray:
        waiting = ctx.waiting
        if ordering == 0 or waiting.size < 2:
            return waiting
        t = ctx.engine.table
        if ordering == 1:
            key = t.prompt[waiting]
        elif ordering == 2:
            key = ctx.service[t.client[waiting]]
        else:
            key = t.arrival[waiting] + t.slo_ttft[waiting]
        ranked: IntArray = waiting[np.argsort(key, kind="stable")]
        return ranked

    def action_masks(self, ctx: DecisionContext) -> np.ndarray:
        """Valid choices per dimension, concatenated (MaskablePPO's format)."""
        t = ctx.engine.table
        running = ctx.running
        n_dec = int(np.count_nonzero(t.prompt[running] + t.generated[running] - t.computed[running] == 1))
        budget_ok = self.levels >= n_dec
        if not budget_ok.any():
            budget_ok[-1] = True
        order_ok = np.ones(len(ORDERINGS), dtype=np.bool_)
        defer_ok = np.ones(1 + len(self.deferral), dtype=np.bool_)
        hold_ok = np.array([True, running.size > 0])
        return np.concatenate((budget_ok, order_ok, defer_ok, hold_ok))


class KnobsRuleDecoder(RuleDecoderBase):
    """Decoder of the -v1 "knobs" action: ``MultiDiscrete([budgets, orderings, 1 + deferrals])`` held by the rule.

    ``a[0]``: 0 is the default budget (512), ``j >= 1`` the ``j``-th other budget level (ascending); ``a[1]``: the
    admission ordering, an index into :data:`~llmsched_gym.env.rule.ORDERINGS` (fcfs, spf, edf, lcs, sjf);
    ``a[2]``: 0 no deferral, ``j`` defers decodes with more than ``deferral_levels[j - 1]`` of their TBT target
    left. The zero action is Sarathi-Serve (tested equal to the registered ``sarathi``); every action is a
    work-conserving scheduler. Out-of-range entries are clipped and non-finite ones count as 0.

    Args:
        config: The environment configuration.
    """

    name = "knobs"

    def __init__(self, config: EnvConfig) -> None:
        super().__init__(config, "fcfs")
        self.choices = (config.default_budget, *(b for b in config.budget_levels if b != config.default_budget))
        self.deferral = config.deferral_levels
        self.nvec = np.array([len(self.choices), len(ORDERINGS_V1), 1 + len(self.deferral)], dtype=np.int64)
        self.space = spaces.MultiDiscrete(self.nvec)
        self._limits = (self.nvec - 1).tolist()

    def decide(self, action: object, ctx: DecisionContext) -> RuleDecision:
        """The held rule for ``action``."""
        raw = np.asarray(action).reshape(-1).tolist()
        if len(raw) != self.nvec.size:
            raise ValueError(f"knobs action has {len(raw)} entries, expected {self.nvec.size}: [budget, order, defer]")
        level, ordering, deferral = (
            min(max(int(x), 0), n) if math.isfinite(float(x)) else 0 for x, n in zip(raw, self._limits, strict=True)
        )
        theta = self.deferral[deferral - 1] if deferral else -1.0
        params = RuleParams(self.choices[level], ordering, theta, max_num_seqs=self.config.max_num_seqs)
        return RuleDecision(params, self.queue, ctx.service)

    def action_masks(self, ctx: DecisionContext) -> np.ndarray:
        """Every choice is valid (MaskablePPO's format): all ones."""
        return np.ones(int(self.nvec.sum()), dtype=np.bool_)
