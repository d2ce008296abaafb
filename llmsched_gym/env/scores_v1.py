"""The -v1 "scores" action: per-slot priorities held until the next decision event, neutral at zero.

Layout: ``Box(-1, 1, (2K + 1,), float32)`` (``K + 1`` with ``chunk_caps=False``):

* ``a[i]`` (slot ``i``): ``a > hold_below`` (-0.5): serve, higher first; ``preempt_below < a <= hold_below``: hold (a
  waiting request stays queued, a running one skips its turn and keeps its KV); ``a <= preempt_below`` (-0.9;
  ``None`` disables it): a running request is preempted (recompute) at the decision's first iteration and then held.
* ``a[K]``: the token budget ``default_budget * 4 ** a[K]``, snapped to the nearest level (log scale).
* ``a[K+1+i]``: chunk cap of slot ``i``: ``c >= 0`` none, ``c < 0`` at most ``floor((c + 1) * budget + 0.5)`` tokens.

Every iteration of the held decision packs greedily, each row taking ``min(pending, cap, budget left)``: served slot
requests by descending score (ties: decodes, then partial prefills, then waiting requests, then slot order), then
the running requests outside the slots (decodes first, admission order), then the waiting requests outside the
slots (slot-fill order). KV pressure preempts lower-priority running requests as in -v0 (held slot requests first,
lowest score first). The zero action therefore serves everything, decodes first, under the default budget: a
work-conserving chunked-prefill scheduler. :meth:`ScoresRuleDecoder.encode_plan` writes any plan whose decisions
concern slot requests as an action that reproduces it at the decision's first iteration.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.view import EngineView
from llmsched_gym.env._kernels import pack_rows
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.residual import RuleDecoderBase, clean_box

_EMPTY = np.zeros(0, dtype=np.int64)


class ScoresHeld:
    """A held scores decision: per-request scores and caps applied at every iteration (see the module docstring).

    Args:
        score: Score of each slot request.
        cap: Chunk cap of each capped slot request.
        budget: Token budget.
        preempt: Running requests preempted at the first iteration.
        config: The environment configuration (thresholds, allocation mode).
    """

    __slots__ = ("_first", "_prompt_alloc", "budget", "cap", "hold_below", "preempt", "score")

    def __init__(
        self, score: dict[int, float], cap: dict[int, int], budget: int, preempt: tuple[int, ...], config: EnvConfig
    ) -> None:
        self.score = score
        self.cap = cap
        self.budget = budget
        self.preempt = preempt
        self.hold_below = config.hold_below
        self._prompt_alloc = config.allocation == "prompt"
        self._first = True

    def plan(self, view: EngineView) -> BatchPlan:
        """The iteration's batch."""
        preempt = self.preempt if self._first else ()
        self._first = False
        order, eff, holders = self._order(view, preempt)
        free = view.free_blocks
        if preempt:
            free += int(view.blocks[np.asarray(preempt, dtype=np.int64)].sum())
        ids, toks, implicit = pack_rows(
            order, eff, self.budget, free, holders, False, view.state, view.prompt,
            view.generated, view.computed, view.blocks, view.block_size, self._prompt_alloc,
        )  # fmt: skip
        victims = preempt + tuple(implicit.tolist()) if implicit.size else preempt
        if ids.size == 0 and not victims and view.next_arrival is None and (view.running.size or view.n_waiting):
            return self._fallback(view)  # everything held and nothing left to arrive: never stall the engine
        return BatchPlan(ids, toks, victims)

    def _fallback(self, view: EngineView) -> BatchPlan:
        """The zero action's plan: everything served, decodes first, under the decision's budget."""
        order = np.asarray(_outside(view, {}, set()), dtype=np.int64)
        ids, toks, implicit = pack_rows(
            order, view.pending_array(order), self.budget, view.free_blocks, _EMPTY, False, view.state, view.prompt,
            view.generated, view.computed, view.blocks, view.block_size, self._prompt_alloc,
        )  # fmt: skip
        return BatchPlan(ids, toks, tuple(implicit.tolist()))

    def _order(self, view: EngineView, preempt: tuple[int, ...]) -> tuple[IntArray, IntArray, IntArray]:
        """Candidate rows (priority order), their token limits and the held running requests (lowest first)."""
        state, score = view.state, self.score
        served: list[tuple[float, int, int, int]] = []
        held: list[tuple[float, int]] = []
        gone = set(preempt)
        for i, (rid, s) in enumerate(score.items()):
            if rid in gone or state[rid] not in (1, 2):
                continue
            if s > self.hold_below:
                served.append((-s, _rank(view, rid), i, rid))
            elif state[rid] == 2:
                held.append((s, rid))
        served.sort()
        rows = [r for *_, r in served]
        rows += _outside(view, score, gone)
        order = np.asarray(rows, dtype=np.int64)
        eff = view.pending_array(order) if order.size else _EMPTY
        for j, rid in enumerate(rows):
            if rid in self.cap:
                eff[j] = min(int(eff[j]), self.cap[rid])
        held.sort()
        return order, eff, np.asarray([r for _, r in held], dtype=np.int64)


def _rank(view: EngineView, rid: int) -> int:
    """0 for a running decode, 1 for a running partial prefill, 2 for a waiting request."""
    if view.state[rid] != 2:
        return 2
    return 0 if view.pending(rid) == 1 and view.generated[rid] >= 1 else 1


def _outside(view: EngineView, score: dict[int, float], gone: set[int]) -> list[int]:
    """Running requests outside the slots (decodes first, admission order), then waiting ones (arrival order)."""
    run = [r for r in view.running.tolist() if r not in score and r not in gone]
    run.sort(key=lambda r: _rank(view, r))
    wait = [r for r in view.waiting.tolist() if r not in score and r not in gone]
    return run + wait


class ScoresRuleDecoder(RuleDecoderBase):
    """Decoder of the -v1 "scores" action (see the module docstring).

    Args:
        config: The environment configuration (slots, caps, thresholds, default budget and levels).
    """

    name = "scores"

    def __init__(self, config: EnvConfig) -> None:
        super().__init__(config, "fcfs")
        self.k = config.slots
        self.caps = config.chunk_caps
        self.size = 2 * self.k + 1 if self.caps else self.k + 1
        self.space = spaces.Box(-1.0, 1.0, shape=(self.size,), dtype=np.float32)
        self.layout: tuple[str, ...] = ("slot", "global", "slot") if self.caps else ("slot", "global")
        """Segments of the action vector (scores, budget, caps) for slot-aware policies."""
        self._preempt = -math.inf if config.preempt_below is None else float(config.preempt_below)

    def budget_of(self, value: float) -> int:
        """The token budget of an action value in ``[-1, 1]``."""
        return self.budgets.of(value)

    def decide(self, action: object, ctx: DecisionContext) -> ScoresHeld:
        """The held decision for ``action``."""
        a = clean_box(action, self.size, "scores")
        k = self.k
        budget = self.budget_of(float(a[k]))
        slots, n_rs = ctx.slots.tolist(), ctx.n_run_slots
        score = {rid: float(a[i]) for i, rid in enumerate(slots)}
        preempt = tuple(slots[i] for i in range(n_rs) if a[i] <= self._preempt)
        cap: dict[int, int] = {}
        if self.caps:
            for i, rid in enumerate(slots):
                c = a[k + 1 + i]
                if c < 0.0:
                    cap[rid] = math.floor((c + 1.0) * budget + 0.5)
        return ScoresHeld(score, cap, budget, preempt, self.config)

    def encode_plan(self, plan: BatchPlan, ctx: DecisionContext) -> np.ndarray:
        """An action whose held decision's first iteration is exactly ``plan`` (rows, order, tokens, preemptions).

        Served slot rows get strictly decreasing scores above ``hold_below`` in plan order, other slot rows a hold
        value, preempted rows -1; the budget is the smallest reachable level holding the plan's tokens; rows whose
        tokens differ from the greedy fill get a cap. Requests outside the slots may run: the plan must treat them
        as the decoder does (after the slot rows, decodes first); a round trip checks it.

        Raises:
            ValueError: The plan is not expressible (the message names the request or rule).
        """
        return encode_plan_v1(self, plan, ctx)


def encode_plan_v1(decoder: ScoresRuleDecoder, plan: BatchPlan, ctx: DecisionContext) -> np.ndarray:
    """An action whose held decision's first iteration is exactly ``plan`` (see :meth:`ScoresRuleDecoder.encode_plan`).

    Raises:
        ValueError: The plan cannot be expressed; the message names the request or rule.
    """
    if plan.reject:
        raise ValueError(f"plan not expressible: rejections {list(plan.reject)} have no action")
    if plan.ids.size == 0 and plan.wake_at is not None:
        nxt = ctx.view.next_arrival
        if nxt is None or plan.wake_at < nxt:
            raise ValueError(f"plan not expressible: an idle plan waking at {plan.wake_at} before the next arrival")
    cfg, k = decoder.config, decoder.k
    if plan.preempt and cfg.preempt_below is None:
        raise ValueError(f"plan preempts {list(plan.preempt)} but preempt_below=None disables explicit preemption")
    slots = ctx.slots.tolist()
    index = {rid: i for i, rid in enumerate(slots)}
    low = -1.0 if cfg.preempt_below is None else cfg.preempt_below
    action = np.zeros(decoder.size, dtype=np.float32)
    action[:k] = np.float32(0.5 * (low + cfg.hold_below))
    for rid in plan.preempt:
        if rid not in index:
            raise ValueError(f"plan not expressible: preempted request {rid} is outside the observation slots")
        action[index[rid]] = -1.0
    budget = _encode_budget(decoder, action, int(plan.tokens.sum()))
    _encode_rows(decoder, action, plan, ctx, index, budget)
    _check_round_trip(decoder, action, plan, ctx)
    return action


def _encode_budget(decoder: ScoresRuleDecoder, action: np.ndarray, total: int) -> int:
    """Write the smallest reachable budget holding ``total`` tokens; returns it."""
    cfg = decoder.config
    reachable = [b for b in decoder.budgets.levels() if 0.25 <= b / cfg.default_budget <= 4.0]
    fits = [b for b in reachable if b >= total]
    if not fits:
        raise ValueError(f"plan not expressible: it runs {total} tokens, more than the largest reachable budget")
    value = math.log(fits[0] / cfg.default_budget, 4.0)
    action[decoder.k] = np.float32(value)
    return decoder.budget_of(float(action[decoder.k]))


def _encode_rows(
    decoder: ScoresRuleDecoder,
    action: np.ndarray,
    plan: BatchPlan,
    ctx: DecisionContext,
    index: dict[int, int],
    budget: int,
) -> None:
    """Scores (plan order, strictly decreasing above ``hold_below``) and caps of the served slot rows."""
    hold, k = decoder.config.hold_below, decoder.k
    ids, toks = plan.ids.tolist(), plan.tokens.tolist()
    n = len(ids)
    left = budget
    view = ctx.view
    for j, (rid, x) in enumerate(zip(ids, toks, strict=True)):
        if rid in index:
            i = index[rid]
            action[i] = np.float32(1.0 - (1.0 - hold) * (j + 1) / (n + 1))
            if x != min(view.pending(rid), left):
                if not decoder.caps:
                    raise ValueError(f"request {rid} gets fewer tokens than the greedy fill: enable chunk_caps")
                action[k + 1 + i] = np.float32(x / budget - 1.0)
        left -= x


def _check_round_trip(decoder: ScoresRuleDecoder, action: np.ndarray, plan: BatchPlan, ctx: DecisionContext) -> None:
    """Decode ``action`` and raise unless it gives ``plan`` (requests outside the slots follow the default)."""
    got = decoder.decide(action, ctx).plan(ctx.view)
    want, have = plan.as_dict(), got.as_dict()
    inside = set(ctx.slots.tolist())
    diff = sorted(r for r in {*want, *have} if want.get(r) != have.get(r))
    if diff:
        rid = diff[0]
        where = "inside" if rid in inside else "outside"
        raise ValueError(
            f"plan not expressible: request {rid} ({where} the slots) would get {have.get(rid, 0)} tokens instead "
            f"of {want.get(rid, 0)} (raise `slots`)"
        )
    if got.ids.tolist() != plan.ids.tolist():
        first = next(i for i, (a, b) in enumerate(zip(got.ids.tolist(), plan.ids.tolist(), strict=True)) if a != b)
        rid = int(plan.ids[first])
        where = "inside" if rid in inside else "outside"
        raise ValueError(
            f"plan not expressible: row {first} of the plan is request {rid} ({where} the slots), but the action "
            "orders requests outside the slots after the slot requests (raise `slots`)"
        )
    if set(got.preempt) != set(plan.preempt):
        raise ValueError(f"plan not expressible: preemptions {list(plan.preempt)} decode to {list(got.preempt)}")
