"""Behaviour-cloning warm start: fit the policy to a registered scheduler's decisions before PPO.

The teacher plays the task's training episodes inside the environment; at every decision its choice is written as
an action of the training mode:

* ``scores``: ``encode_plan`` of the teacher's plan for the decision's first iteration (the decision then continues
  with the teacher's own plans until the next event; decisions whose plan is not expressible, e.g. with running
  requests outside the slots ordered among slot requests, are played by the teacher and not recorded);
* ``knobs``: the constant knob of a scheduler of the rule family (``sarathi``, ``sarathi-spf``, ``sarathi-edf``,
  ``sarathi-lcs``, ``sarathi-sjf``);
* ``residual`` / ``priority``: the zero action, which is the base scheduler (only the task's base can teach).

The policy is then fitted by maximum likelihood (Gaussian policies: squared error of the mean; MaskablePPO:
cross-entropy), ``bc_epochs`` passes over the recorded decisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.view import EngineView

KNOB_TEACHERS = {"sarathi": 0, "sarathi-spf": 1, "sarathi-edf": 2, "sarathi-lcs": 3, "sarathi-sjf": 4}
"""Knobs-mode teachers and their ordering index (budget 512, no deferral)."""


class _FirstPlan:
    """A scheduler returning a given plan first, then its teacher's plans (the teacher decides the rest)."""

    def __init__(self, teacher: Any, plan: BatchPlan) -> None:
        self.teacher = teacher
        self.first: BatchPlan | None = plan
        self.name = teacher.name
        self.requirements: EngineRequirements = teacher.requirements

    def reset(self, *, seed: int | None = None) -> None:
        self.teacher.reset(seed=seed)

    def schedule(self, view: EngineView) -> BatchPlan:
        if self.first is not None:
            plan, self.first = self.first, None
            return plan
        return self.teacher.schedule(view)  # type: ignore[no-any-return]


def teacher_action(mode: str, teacher: str, task: Any, env: Any, scheduler: Any) -> tuple[np.ndarray | None, Any]:
    """The teacher's action at the current decision (``None``: not expressible) and the scheduler playing it out."""
    base = env.unwrapped
    if mode == "scores":
        plan = scheduler.schedule(base.ctx.view)
        try:
            return base.encode_plan(plan), _FirstPlan(scheduler, plan)
        except ValueError:
            return None, _FirstPlan(scheduler, plan)
    if mode == "knobs":
        if teacher not in KNOB_TEACHERS:
            raise ValueError(f"knobs mode can clone {sorted(KNOB_TEACHERS)}, not {teacher!r}; use --mode scores")
        return np.array([0, KNOB_TEACHERS[teacher], 0]), scheduler
    if teacher != task.base:
        raise ValueError(f"{mode} mode can clone only its base {task.base!r} (the zero action), not {teacher!r}")
    return np.zeros(base.action_space.shape, dtype=np.float32), scheduler


def collect(task: Any, mode: str, teacher: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations and teacher actions of ``episodes`` training episodes (reset seeds ``seed, seed + 1, ...``)."""
    from llmsched_gym.schedulers import make_scheduler

    env = task.make_env("train", mode)
    base = env.unwrapped
    scheduler = make_scheduler(teacher)
    base.set_player(scheduler)
    observations, actions = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action, player = teacher_action(mode, teacher, task, env, scheduler)
            if action is not None:  # an inexpressible plan is played by the teacher and not recorded
                observations.append(obs)
                actions.append(action)
            base.player = player
            obs, _, terminated, truncated, _ = env.step(None)
            done = terminated or truncated
    env.close()
    return np.asarray(observations), np.asarray(actions)


def fit(policy: Any, observations: np.ndarray, actions: np.ndarray, epochs: int, seed: int) -> float:
    """Maximum-likelihood fit of ``policy`` to ``(observations, actions)``; returns the last epoch's mean loss."""
    rng = np.random.default_rng(seed)
    obs_t = torch.as_tensor(observations, dtype=torch.float32)
    act_t = torch.as_tensor(actions)
    optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
    loss_value = float("nan")
    for _ in range(epochs):
        order = rng.permutation(len(obs_t))
        losses = []
        for start in range(0, len(order), 256):
            idx = torch.as_tensor(order[start : start + 256])
            dist = policy.get_distribution(obs_t[idx])
            if isinstance(policy.action_space, spaces.Box):
                loss = torch.mean((dist.distribution.mean - act_t[idx].float()) ** 2)
            else:
                loss = -dist.log_prob(act_t[idx]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        loss_value = float(np.mean(losses))
    return loss_value


def behaviour_clone(model: Any, task: Any, args: Any) -> float:
    """Collect the teacher's decisions and fit ``model.policy``; returns the final loss."""
    observations, actions = collect(task, args.mode, args.bc_from, args.bc_episodes, 700_000 + args.seed)
    return fit(model.policy, observations, actions, args.bc_epochs, args.seed)
