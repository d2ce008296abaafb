"""Picklable environment factories for training workers (a task's -v1 environment of one split)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TaskEnvFactory:
    """Builds a task's environment (picklable, so worker processes can build their own).

    Attributes:
        task: Task name.
        split: ``train``, ``validation`` or ``test``.
        mode: Action mode.
        shaping: Shaping name or ``None``.
        overrides: Further environment keyword arguments (``EnvConfig`` fields).
    """

    task: str
    split: str = "train"
    mode: str = "priority"
    shaping: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()

    def __call__(self) -> Any:
        """A new environment."""
        from llmsched_gym.tasks import get_task

        return get_task(self.task).make_env(self.split, self.mode, shaping=self.shaping, **dict(self.overrides))
