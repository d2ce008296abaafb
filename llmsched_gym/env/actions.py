"""Action decoders (-v0): the protocol, the shared batch packer and the progress guard (registry: ``decoders``).

Every decoder turns an action into a :class:`~llmsched_gym.core.plan.BatchPlan` that the engine accepts: the
packer checks KV blocks with the engine's own rule, so no action (random, NaN, out of range) can produce an
invalid plan. The packer fills a token budget greedily over an ordered list of requests: row ``i`` gets
``min(pending_i, cap_i, budget left)`` tokens; a row that would get 0 is left out.

KV pressure: when a *running* row needs blocks that are not free, running rows of lower priority that are not
served in this plan are preempted, lowest first (first the explicitly held rows, lowest score first, then rows
later in the order, last first); if even that cannot make room, the row is skipped. A *waiting* row that does not
fit is never admitted by preempting others: it is skipped (or, with ``stop_at_unfit``, closes admission).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from llmsched_gym.core.batch import IntArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.env._kernels import pack_rows

if TYPE_CHECKING:
    import gymnasium

    from llmsched_gym.core.engine import Engine
    from llmsched_gym.env.context import DecisionContext

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


@runtime_checkable
class ActionDecoder(Protocol):
    """Maps an action of :attr:`space` to a valid batch plan for the current decision."""

    @property
    def name(self) -> str:
        """The action mode's name."""
        ...

    @property
    def space(self) -> gymnasium.spaces.Space[Any]:
        """The action space."""
        ...

    def decode(self, action: Any, ctx: DecisionContext) -> BatchPlan:
        """The plan for ``action`` (never raises for any action of the right shape)."""
        ...


def pack(
    engine: Engine,
    order: IntArray,
    eff: IntArray,
    budget: int,
    *,
    preempt: tuple[int, ...] = (),
    holders: IntArray = _EMPTY,
    stop_at_unfit: bool = False,
) -> BatchPlan:
    """Greedily pack ``order`` under ``budget`` tokens and the free KV blocks (see the module docstring).

    Args:
        engine: The engine (read only).
        order: Candidate request ids, highest priority first (waiting or running, none in ``preempt``).
        eff: Per row, the most tokens it may take: ``min(pending, cap)`` (>= 0).
        budget: Token budget of the iteration.
        preempt: Running requests preempted explicitly (their blocks count as free).
        holders: Running requests that are not candidates, lowest priority first: first victims under KV pressure.
        stop_at_unfit: Stop admitting waiting rows at the first one that does not fit.

    Returns:
        A plan whose rows appear in ``order``'s order; its preemptions are ``preempt`` then the KV-pressure victims.
    """
    t = engine.table
    free = engine.pool.free
    if preempt:
        free += int(t.blocks[np.asarray(preempt, dtype=np.int64)].sum())
    ids, toks, implicit = pack_rows(
        order.astype(np.int64, copy=False),
        eff.astype(np.int64, copy=False),
        int(budget),
        free,
        holders,
        stop_at_unfit,
        t.state,
        t.prompt,
        t.generated,
        t.computed,
        t.blocks,
        engine.pool.block_size,
        engine.prompt_allocation,
    )
    return BatchPlan(ids, toks, preempt + tuple(implicit.tolist()) if implicit.size else preempt)


def default_plan(engine: Engine, running: IntArray, waiting: IntArray, budget: int) -> BatchPlan:
    """The progress guarantee: running requests (admission order), then waiting ones (arrival order).

    The oldest running request always fits after preempting the others, and with nothing running the oldest
    waiting request always fits, so this plan processes at least one token.
    """
    order = np.concatenate((running, waiting)) if waiting.size else running
    t = engine.table
    eff = t.prompt[order] + t.generated[order] - t.computed[order]
    return pack(engine, order, eff, budget, stop_at_unfit=True)


def ensure_progress(plan: BatchPlan, ctx: DecisionContext, budget: int) -> BatchPlan:
    """Replace a plan that would stall the engine (idle, nothing left to arrive, work unfinished)."""
    engine = ctx.engine
    if plan.ids.size or plan.preempt or engine.unfinished == 0 or engine.next_arrival_time is not None:
        return plan
    return default_plan(engine, ctx.running, ctx.waiting, budget)
