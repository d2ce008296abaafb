"""Decision events (env -v1): one decision holds over many engine iterations until something happens.

A -v1 step decodes the action into a :class:`HeldDecision` (a rule that builds a batch from the current state) and
runs engine iterations with it until the first enabled *decision event*:

* ``arrival`` — a request arrived during the iteration (plans are made arrival-sensitive, so a fast-forward
  stretch stops there);
* ``completion`` — a request finished;
* ``first_token`` — a request emitted its first token;
* ``kv_shortfall`` — the held rule had to preempt (or the engine evicted) for lack of KV blocks;
* ``max_iterations`` — the decision has held for this many iterations (a fast-forward stretch is cut to the
  cap, and stops at an arrival only where the plan or the ``arrival`` event asks for it, as in the compiled hold of
  :mod:`llmsched_gym.env.held_compiled`: stretch boundaries decide what the engine's time-series samples see).

The episode's end always ends the step. Every iteration is booked into the episode tracker, so the step's reward
integrates the objective over the whole interval and the undiscounted return still equals the objective.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.view import EngineView

if TYPE_CHECKING:
    from llmsched_gym.core.engine import Engine
    from llmsched_gym.env.stats import EpisodeTracker

EVENT_NAMES: tuple[str, ...] = ("arrival", "completion", "first_token", "kv_shortfall", "max_iterations", "done")
"""Why a -v1 step ended (``info["event"]``)."""


@dataclass(frozen=True, slots=True)
class DecisionEvents:
    """Which events end a held decision (env -v1).

    Attributes:
        arrival: A request arrives.
        completion: A request finishes.
        first_token: A request emits its first token.
        kv_shortfall: The held rule preempts, or the engine evicts, for lack of KV blocks.
        max_iterations: The decision has held for this many engine iterations.
    """

    arrival: bool = True
    completion: bool = True
    first_token: bool = False
    kv_shortfall: bool = True
    max_iterations: int = 256

    def __post_init__(self) -> None:
        """Validate the iteration cap."""
        if not isinstance(self.max_iterations, int) or self.max_iterations < 1:
            raise ValueError(
                f"DecisionEvents: max_iterations={self.max_iterations!r} must be an int >= 1 (default 256; "
                "1 re-decides every iteration)"
            )


@runtime_checkable
class HeldDecision(Protocol):
    """A decision held over iterations: builds each iteration's batch from the current view."""

    def plan(self, view: EngineView) -> BatchPlan:
        """The batch of the next iteration (called once per engine step, with that step's view)."""
        ...


def _first_tokens(engine: Engine, ids: np.ndarray) -> np.ndarray:
    return np.isnan(engine.table.first_token[ids])


def run_held(
    engine: Engine, tracker: EpisodeTracker, decision: HeldDecision, events: DecisionEvents, iterations: int = 0
) -> str:
    """Run ``decision`` until the first enabled event (or the episode's end); returns the event's name.

    Every engine step is booked into ``tracker`` (tokens, service, finishes, the integral of requests in the
    system), exactly as the -v0 step books its single iteration. ``iterations``: how many the decision has already
    held (a compiled hold that handed the rest of the decision to Python).
    """
    while True:
        view = engine.view()
        n_before = engine.table.n
        plan = decision.plan(view)
        cap = events.max_iterations - iterations
        sensitive = plan.arrival_sensitive or events.arrival  # a stretch is cut at an arrival only if it matters
        if plan.repeat > cap or sensitive != plan.arrival_sensitive:
            plan = dataclasses.replace(plan, repeat=min(plan.repeat, cap), arrival_sensitive=sensitive)
        fresh = _first_tokens(engine, plan.ids) if events.first_token and plan.ids.size else None
        t0 = engine.now
        res = engine.step(plan)
        tracker.commit(plan.ids, res.tokens, res.emitted)
        tracker.record_finished(res.finished, len(res.evicted))
        tracker.close_segment(t0)
        iterations += res.iterations
        if engine.done:
            return "done"
        if events.arrival and engine.table.n > n_before:
            return "arrival"
        if events.completion and res.finished:
            return "completion"
        if events.kv_shortfall and res.evicted:
            return "kv_shortfall"
        if fresh is not None and bool((fresh & ~_first_tokens(engine, plan.ids)).any()):
            return "first_token"
        if iterations >= events.max_iterations:
            return "max_iterations"


def skip_idle(engine: Engine, tracker: EpisodeTracker) -> None:
    """Idle the engine to the next arrival while nothing is waiting or running (booked into the same step).

    The events of the decision (finished, evicted, arrived) stay visible to the next view.
    """
    while not engine.done and engine.unfinished == 0:
        t1 = engine.now
        engine.step(BatchPlan.idle(), keep_events=True)
        tracker.close_segment(t1)
