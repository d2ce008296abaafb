"""Training throughput: decisions/s and simulated requests served per second of training, ours vs SB3 defaults.

Measured in one process run, on one task (default ``slo-goodput``), for PPO (the task's ``priority`` mode) and
MaskablePPO (``knobs`` mode):

* ``ours``: ``llmsched train``'s default setup (:class:`train.config.TrainArgs`, built by ``train.run``'s own
  ``make_vec_env`` and ``build_model``): 16 environments over 2 worker processes (policy inference batched over all
  of them), the small MLP, ``n_steps=64``, ``batch_size=128``, ``n_epochs=10``, torch on one thread.
* ``sb3-defaults``: what a user gets from the SB3 quick start: one environment in a ``DummyVecEnv``, ``MlpPolicy``
  with its defaults (64x64, ``n_steps=2048``, ``batch_size=64``, ``n_epochs=10``), torch's default threads.

Each configuration trains for ``--decisions`` decisions after a short warm-up (kernels compiled, workers started);
the rate is decisions (env steps summed over environments) per wall second of ``learn``, including updates.
Requests served per second counts the requests that finished in the training environments. Results go into
docs/benchmarks.md. Usage: ``python benchmarks/train_speed.py [--decisions N] [--task NAME] [--events default]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from train.envs import TaskEnvFactory
from train.vec import GroupedVecEnv


class Served(BaseCallback):
    """Counts requests finished in the training environments (``info["finished"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def _on_step(self) -> bool:
        self.requests += sum(int(i.get("finished", 0)) for i in self.locals["infos"])
        return True


def _ours(task: str, algo: str, mode: str, overrides: tuple[Any, ...]) -> tuple[Any, Any]:
    """``llmsched train``'s model and environments (defaults of :class:`TrainArgs`, 2 worker processes)."""
    from train.config import TrainArgs
    from train.run import build_model, make_vec_env

    args = TrainArgs(task=task, algo=algo, mode=mode, n_procs=2, tensorboard=False, wandb="disabled")
    venv = make_vec_env(args)
    if overrides:  # the env default events: rebuild the environments with the overrides
        venv.close()
        factory = TaskEnvFactory(task, "train", mode, None, overrides)
        venv = VecNormalize(GroupedVecEnv([factory] * args.n_envs, n_procs=2, seed=0), norm_obs=False)
    torch.set_num_threads(1)
    return build_model(args, venv), venv


def _defaults(task: str, algo: str, mode: str, overrides: tuple[Any, ...]) -> tuple[Any, Any]:
    """The SB3 quick start: one environment in a DummyVecEnv, MlpPolicy with SB3's defaults."""
    torch.set_num_threads(os.cpu_count() or 1)
    venv = VecNormalize(DummyVecEnv([TaskEnvFactory(task, "train", mode, None, overrides)]), norm_obs=False)
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", venv, seed=0, device="cpu"), venv
    return PPO("MlpPolicy", venv, seed=0, device="cpu"), venv


def measure(task: str, algo: str, mode: str, ours: bool, decisions: int, overrides: tuple[Any, ...]) -> dict[str, Any]:
    """Train ``decisions`` decisions with one configuration; returns its rates."""
    model, venv = (_ours if ours else _defaults)(task, algo, mode, overrides)
    model.learn(model.n_steps * venv.num_envs)  # warm-up: compile, start workers, first update
    served = Served()
    t0 = time.perf_counter()
    start = model.num_timesteps
    model.learn(decisions, callback=served, reset_num_timesteps=False)
    wall = time.perf_counter() - t0
    venv.close()
    done = model.num_timesteps - start
    return {"config": "ours" if ours else "sb3-defaults", "algo": algo, "mode": mode, "decisions": done,
            "wall_s": round(wall, 2), "decisions_per_s": round(done / wall, 1),
            "requests_per_s": round(served.requests / wall, 1)}  # fmt: skip


def main() -> None:
    """Run every configuration and print a table (and JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=8192, help="measured decisions per configuration")
    parser.add_argument("--task", default="slo-goodput", help="task (default slo-goodput)")
    parser.add_argument(
        "--events", choices=("task", "default"), default="task",
        help="decision events: the task's (100-iteration holds) or the env default (arrival, completion, KV)",
    )  # fmt: skip
    args = parser.parse_args()
    overrides: tuple[Any, ...] = ()
    if args.events == "default":
        from llmsched_gym.env.events import DecisionEvents

        overrides = (("events", DecisionEvents()),)
    rows = []
    for algo, mode in (("ppo", "priority"), ("maskable_ppo", "knobs")):
        for ours in (True, False):
            rows.append(measure(args.task, algo, mode, ours, args.decisions, overrides))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} CPUs; task {args.task}, events {args.events}")
    for algo in ("ppo", "maskable_ppo"):
        ours, base = (next(r for r in rows if r["algo"] == algo and r["config"] == c) for c in ("ours", "sb3-defaults"))
        ratio = ours["decisions_per_s"] / base["decisions_per_s"]
        print(
            f"{algo:13s} ours {ours['decisions_per_s']:8.1f} dec/s {ours['requests_per_s']:7.1f} req/s | "
            f"SB3 defaults {base['decisions_per_s']:8.1f} dec/s {base['requests_per_s']:7.1f} req/s | x{ratio:.2f}"
        )


if __name__ == "__main__":
    main()
