"""Benchmark tasks for learned schedulers: named, versioned, with held-out test sets (see ``docs/results.md``).

``get_task("slo-goodput")`` (or ``"slo-goodput-v0"``) returns a :class:`Task`; ``task.make_env("train")`` builds
its -v1 environment; :func:`~llmsched_gym.tasks.scoring.baseline_objectives` scores registered schedulers on its
fixed episodes. ``llmsched tasks`` lists the tasks with every baseline's score on the test set.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from llmsched_gym.errors import UnknownNameError
from llmsched_gym.tasks.registry import TASKS
from llmsched_gym.tasks.task import SPLITS, EpisodeSet, Task

__all__ = ["SPLITS", "TASKS", "EpisodeSet", "Task", "get_task", "list_tasks"]


def list_tasks() -> Mapping[str, str]:
    """Task ids and their one-line summaries."""
    return MappingProxyType({task.id: task.summary for task in TASKS.values()})


def get_task(name: str) -> Task:
    """The task ``name`` (with or without its ``-v<N>`` suffix).

    Raises:
        UnknownNameError: No such task.
    """
    for task in TASKS.values():
        if name in (task.name, task.id):
            return task
    raise UnknownNameError(f"unknown task {name!r}; choose one of {sorted(t.id for t in TASKS.values())}")
