"""A benchmark task: a named, versioned training distribution, held-out evaluation set, protocol and objective.

A task fixes everything a result depends on except the policy: the -v1 environment's configuration (KV pool,
slots, decision events, cost model), the reward whose episode objective is scored, the workload distribution the
agent trains on, a disjoint validation set (model selection during training), a held-out test set (other seeds
and, where possible, another trace or window; the only set a result is reported on), the baselines it is compared
with, and the reference scheduler of the normalised score: ``0`` is the reference (vLLM V1, FCFS) and ``1`` the best
registered baseline on the test set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llmsched_gym.env.episodes import WorkloadMix, WorkloadSpec

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""Episode sets of a task: ``train`` draws fresh episodes; ``validation`` and ``test`` are fixed seed lists."""


@dataclass(frozen=True, slots=True)
class EpisodeSet:
    """Workloads, load factors and (for fixed sets) seeds of a task split.

    Attributes:
        specs: Workload families (one is drawn per episode).
        load_range: Load factors (arrival-rate multipliers) drawn uniformly.
        seeds: Reset seeds of the episodes (``None``: the training stream draws fresh episodes).
    """

    specs: tuple[WorkloadSpec, ...]
    load_range: tuple[float, float]
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Validate the set."""
        if not self.specs:
            raise ValueError("EpisodeSet: specs is empty; give at least one WorkloadSpec")
        low, high = self.load_range
        if not (0 < low <= high and math.isfinite(high)):
            raise ValueError(f"EpisodeSet: load_range={self.load_range!r} must satisfy 0 < low <= high")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("EpisodeSet: seeds must be distinct")

    def sampler(self) -> WorkloadMix:
        """The env's workload sampler for this set."""
        return WorkloadMix(self.specs, self.load_range)


@dataclass(frozen=True, slots=True)
class Task:
    """A benchmark task (see the module docstring).

    Attributes:
        name: Task name (``llmsched tasks`` lists them); the id is ``<name>-v<version>``.
        version: Bumped whenever anything that changes scores changes.
        summary: One line.
        objective: The reward (and episode objective) name: ``goodput``, ``latency``, ``fairness``, ...
        train: Training episodes.
        validation: Fixed episodes for model selection during training (training distribution, other seeds).
        test: Held-out episodes: the only set results are reported on.
        baselines: Registered schedulers compared on the test set.
        base: The residual mode's base scheduler for this task (its best base rule).
        reference: Score 0 of the normalised score.
        env: Environment keyword arguments (``EnvConfig`` fields and ``cost_model``).
        reward_kwargs: Keyword arguments of the reward.
        seed_note: Where the seeds come from (documentation).
    """

    name: str
    version: int
    summary: str
    objective: str
    train: EpisodeSet
    validation: EpisodeSet
    test: EpisodeSet
    baselines: tuple[str, ...]
    base: str = "sarathi-spf"
    reference: str = "vllm-v1"
    env: tuple[tuple[str, Any], ...] = field(default=())
    reward_kwargs: tuple[tuple[str, Any], ...] = field(default=())
    seed_note: str = "validation seeds 500000+, test seeds 900000+; training draws from seeds 0..n_envs-1"

    def __post_init__(self) -> None:
        """Check the splits and the baseline list."""
        if self.validation.seeds is None or self.test.seeds is None:
            raise ValueError(f"Task {self.name}: validation and test need fixed seeds")
        if set(self.validation.seeds) & set(self.test.seeds):
            raise ValueError(f"Task {self.name}: validation and test seeds overlap")
        if self.reference not in self.baselines:
            raise ValueError(f"Task {self.name}: the reference {self.reference!r} must be among the baselines")

    @property
    def id(self) -> str:
        """``<name>-v<version>``."""
        return f"{self.name}-v{self.version}"

    def split(self, split: str) -> EpisodeSet:
        """The episode set of ``split`` (``train``, ``validation`` or ``test``)."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} must be one of {SPLITS}")
        episodes: EpisodeSet = getattr(self, split)
        return episodes

    def env_kwargs(self, split: str = "train", **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``gymnasium.make`` for ``split`` (``overrides`` win)."""
        kwargs: dict[str, Any] = {
            "workload": self.split(split).sampler(),
            "reward": self.objective,
            "reward_kwargs": dict(self.reward_kwargs),
            "base": self.base,
            **dict(self.env),
        }
        kwargs.update(overrides)
        return kwargs

    def make_env(self, split: str = "train", action_mode: str = "residual", **overrides: Any) -> Any:
        """A -v1 environment of this task (``gymnasium.make`` of the action mode's id)."""
        import gymnasium

        import llmsched_gym.env  # noqa: F401  (registers the ids)

        env_id = {
            "residual": "LLMSchedResidual-v1",
            "priority": "LLMSchedPriority-v1",
            "knobs": "LLMSchedKnobs-v1",
            "scores": "LLMSchedScores-v1",
        }
        if action_mode not in env_id:
            raise ValueError(f"action_mode={action_mode!r} must be one of {sorted(env_id)}")
        return gymnasium.make(f"llmsched_gym/{env_id[action_mode]}", **self.env_kwargs(split, **overrides))

    def seeds(self, split: str, n: int | None = None) -> tuple[int, ...]:
        """The fixed seeds of ``validation`` or ``test`` (the first ``n``)."""
        seeds = self.split(split).seeds
        if seeds is None:
            raise ValueError(f"split {split!r} of task {self.id} draws fresh episodes: it has no fixed seeds")
        return seeds if n is None else seeds[:n]
