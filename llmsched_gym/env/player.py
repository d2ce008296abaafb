"""Playing a registered scheduler inside the environment, so baselines and policies meet identical episodes.

:class:`PlayScheduler` wraps an environment: every step ignores the action and lets the scheduler decide each
iteration until the next decision event (-v1) or for one iteration (-v0), with the same reward accounting as an
agent's step. The engine takes the scheduler's requirements (allocation, overflow, restart mode), exactly as
:func:`llmsched_gym.simulate.simulate` does, so the episode's per-request results (and hence its return) equal the
scheduler's native run on the episode's requests (tested for every registered scheduler).
"""

from __future__ import annotations

from typing import Any

import gymnasium

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import Scheduler
from llmsched_gym.core.view import EngineView


class SchedulerHeld:
    """A held decision that asks a scheduler for every iteration's plan.

    Args:
        scheduler: The scheduler (reset by the environment at each episode).
    """

    __slots__ = ("scheduler",)

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def plan(self, view: EngineView) -> BatchPlan:
        """The scheduler's plan for this iteration."""
        return self.scheduler.schedule(view)


def resolve_scheduler(scheduler: Scheduler | str) -> Scheduler:
    """A scheduler instance from an instance or a registered name (``make_scheduler``)."""
    if isinstance(scheduler, str):
        from llmsched_gym.schedulers import make_scheduler

        return make_scheduler(scheduler)
    return scheduler


class PlayScheduler(gymnasium.Wrapper[Any, Any, Any, Any]):
    """An environment whose decisions are made by ``scheduler`` (the action passed to ``step`` is ignored).

    Args:
        env: A llmsched-gym environment (``gymnasium.make(...)`` or :class:`~llmsched_gym.env.core.LLMSchedEnv`).
        scheduler: A scheduler instance or a registered name.

    Example:
        >>> import gymnasium, llmsched_gym.env
        >>> from llmsched_gym.env.player import PlayScheduler
        >>> base = gymnasium.make("llmsched_gym/LLMSchedKnobs-v1", workload="synthetic-sharegpt")
        >>> env = PlayScheduler(base, "sarathi")
        >>> _ = env.reset(seed=0)
        >>> total, done = 0.0, False
        >>> while not done:
        ...     _, r, term, trunc, info = env.step(None)
        ...     total, done = total + r, term or trunc
        >>> total == info["objective"]
        True
    """

    def __init__(self, env: gymnasium.Env[Any, Any], scheduler: Scheduler | str) -> None:
        super().__init__(env)
        self.scheduler = resolve_scheduler(scheduler)
        self.env.unwrapped.set_player(self.scheduler)  # type: ignore[attr-defined]
