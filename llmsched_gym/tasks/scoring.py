"""Scoring on a task: baselines run natively on a split's episodes, confidence intervals, normalised scores.

Every baseline runs on exactly the episodes the environment serves for the split's seeds: the episode is drawn by
``env.reset(seed=s)`` and the scheduler then runs natively (:func:`llmsched_gym.simulate.simulate`) on its requests
with the environment's engine setup; its objective is the task reward's episode objective of that run. (Playing the
scheduler inside the environment with :class:`~llmsched_gym.env.player.PlayScheduler` gives the same numbers; a
test checks it for every registered scheduler.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsched_gym.tasks.task import Task


@dataclass(frozen=True, slots=True)
class Estimate:
    """Mean and 95 % confidence interval of a per-episode quantity.

    Attributes:
        mean: Sample mean.
        half_width: Half-width of the 95 % t-interval (0 for a single episode).
        n: Number of episodes.
    """

    mean: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        """The estimate of ``values`` (at least one)."""
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            raise ValueError("Estimate.of: no values")
        if x.size == 1:
            return cls(float(x[0]), 0.0, 1)
        half = t_quantile(x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
        return cls(float(x.mean()), half, int(x.size))

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.half_width:.2g}"


# fmt: off
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
# fmt: on


def t_quantile(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (a table to 30, then within 1e-3)."""
    if dof < 1:
        raise ValueError(f"t_quantile: dof={dof} must be >= 1")
    if dof <= len(_T975):
        return _T975[dof - 1]
    return 1.96 + 2.4 / dof + 1.1 / dof**2


def normalised(value: float, reference: float, best: float) -> float:
    """``(value - reference) / (best - reference)``: 0 is the reference, 1 the best baseline (nan if they tie)."""
    span = best - reference
    return (value - reference) / span if span != 0 else math.nan


def episode_objective(task: Task, env: Any, scheduler: Any) -> float:
    """The task objective of ``scheduler`` run natively on the episode ``env`` has just reset to."""
    from llmsched_gym.core.runner import SimulatedRunner
    from llmsched_gym.simulate import simulate

    base = env.unwrapped
    setup = base.engine_setup()
    requests = list(base.episode.requests)
    result = simulate(requests, scheduler, SimulatedRunner(setup.cost_model), setup.engine_config, seed=0)
    objective: float = base.reward_fn.episode_objective(result)
    return objective


def baseline_objectives(
    task: Task,
    split: str,
    names: Iterable[str] | None = None,
    *,
    n: int | None = None,
    progress: Callable[[str, int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Per-episode objectives of registered schedulers on the split's fixed episodes (seed order).

    Args:
        task: The task.
        split: ``validation`` or ``test``.
        names: Registered schedulers (default: the task's baselines).
        n: Use the first ``n`` seeds.
        progress: Called as ``progress(name, seed, objective)`` after each run.
    """
    from llmsched_gym.schedulers import make_scheduler

    env = task.make_env(split)
    out: dict[str, list[float]] = {name: [] for name in (names or task.baselines)}
    for seed in task.seeds(split, n):
        env.reset(seed=seed)
        for name, values in out.items():
            values.append(episode_objective(task, env, make_scheduler(name)))
            if progress is not None:
                progress(name, seed, values[-1])
    env.close()
    return out
