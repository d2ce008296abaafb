"""The -v1 step in compiled code: a held rule decision run by the engine's segment loop (``EnvConfig.compiled``).

A -v1 decision of the ``residual``, ``priority`` and ``knobs`` modes is a :class:`~llmsched_gym.env.rule.
RuleDecision`: the rule applied at every iteration until a decision event. :func:`run_rule_held` runs it with
:func:`~llmsched_gym.core.segment.hold` and the rule's compiled plan function
(:func:`~llmsched_gym.env._rule_plan.rule_plan_fn`) instead of one ``engine.step`` per iteration
(:func:`~llmsched_gym.env.events.run_held`, the reference), and books the whole interval into the episode tracker
at once (:meth:`~llmsched_gym.env.stats.EpisodeTracker.book_hold`). Both give the same episode: the same engine
state, the same rule queue (the hold keeps the rule's queue: arrivals at the back, preempted requests at the front,
``REQUEUE_FRONT``), the same event and the same step statistics; the integrals (requests in the system, the sampled
service gap) are summed in another order (tested to 1e-9 relative).

The step stays in Python (:func:`can_compile` is false) for decisions that are not rule decisions (``scores``
mode, a played scheduler), for engines without a compiled cost model and when per-token times are recorded. A hold
the compiled loop hands back (a rule plan with a rejection, an idle plan it cannot idle itself, a plan the engine
would repair) is finished by ``run_held`` from where the loop stopped. Every reward's step statistics are
reconstructed from the hold's endpoints: tokens and emitted tokens are counted by the loop; service, first tokens
and SLO outcomes are functions of the final table and the ids the hold served and finished; the in-system area is
integrated from per-request arrival and end times; the service gap comes from the time-series samples, which the
engine takes at the same times on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

import numpy as np

from llmsched_gym.core.commit import EV_ARRIVAL, EV_EVICT, EV_FINISH, EV_FIRST_TOKEN
from llmsched_gym.core.segment import STOP_EVENT, STOP_LIMIT, Held, hold, specialize
from llmsched_gym.env._rule_plan import pack_params, rule_plan_fn
from llmsched_gym.env.events import DecisionEvents, HeldDecision, run_held
from llmsched_gym.env.rule import RuleDecision
from llmsched_gym.env.stats import HeldCounts

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine
    from llmsched_gym.env.stats import EpisodeTracker

RULE_KERNEL = specialize(rule_plan_fn)
"""The segment loop of the rule's plan function (compiled on first use, then loaded from numba's cache)."""

_EVENT_BITS: tuple[tuple[str, int], ...] = (
    ("arrival", int(EV_ARRIVAL)),
    ("completion", int(EV_FINISH)),
    ("kv_shortfall", int(EV_EVICT)),
    ("first_token", int(EV_FIRST_TOKEN)),
)
"""Decision events and their ``EV_*`` bits, in the order :func:`~llmsched_gym.env.events.run_held` checks them."""


@dataclass(slots=True)
class HoldCounts:
    """How an environment's -v1 steps ran (cumulative over its episodes).

    Attributes:
        compiled: Steps held entirely in compiled code.
        handed_back: Steps begun in compiled code and finished in Python.
        python: Steps held in Python (not a rule decision, no compiled cost model, or ``compiled=False``).
    """

    compiled: int = 0
    handed_back: int = 0
    python: int = 0


def stop_mask(events: DecisionEvents) -> int:
    """The ``EV_*`` bits of the enabled decision events (``max_iterations`` is the hold's iteration cap)."""
    return sum(bit for name, bit in _EVENT_BITS if getattr(events, name))


def can_compile(decision: HeldDecision, engine: Engine) -> TypeGuard[RuleDecision]:
    """Whether ``decision`` can be held in compiled code on ``engine``."""
    return type(decision) is RuleDecision and engine.runs_segments


def event_of(held: Held, events: DecisionEvents) -> str | None:
    """The decision event that ended a compiled hold (``None``: the hold needs Python to go on)."""
    if held.reason == STOP_EVENT:
        for name, bit in _EVENT_BITS:
            if getattr(events, name) and held.events & bit:
                return name
    if held.reason == STOP_LIMIT and held.iterations >= events.max_iterations:
        return "max_iterations"
    return None


def run_rule_held(
    engine: Engine, tracker: EpisodeTracker, decision: RuleDecision, events: DecisionEvents
) -> tuple[str, bool]:
    """Hold ``decision`` until the first enabled event, as :func:`~llmsched_gym.env.events.run_held` does.

    Returns:
        ``(event, whole)``: the event's name and whether the compiled loop held the whole decision (``False``:
        it handed the rest to ``run_held``).
    """
    t0 = engine.now
    queue = decision.queue
    queue.sync(engine.view())
    running = engine.running_ids()
    waiting = np.fromiter(queue.items, dtype=np.int64, count=len(queue.items))
    params = pack_params(decision.params)
    held = hold(engine, RULE_KERNEL, params, stop=stop_mask(events), max_iterations=events.max_iterations,
                waiting=waiting)  # fmt: skip
    queue.adopt(held.queue, held.arrived.stop)
    rows = np.union1d(running, held.admitted)
    counts = HeldCounts(tuple(held.finished.tolist()), int(held.evicted.size))
    tracker.book_hold(t0, rows, held.tokens, held.emitted, counts)
    if engine.done:
        return "done", True
    event = event_of(held, events)
    if event is not None:
        return event, True
    return run_held(engine, tracker, decision, events, held.iterations), False
