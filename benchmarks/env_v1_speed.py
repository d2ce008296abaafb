"""-v1 decisions per second on every task's training environment: compiled holds against the Python reference.

For each task of :mod:`llmsched_gym.tasks` and each path (``compiled=True``: rule decisions held by the compiled
segment loop; ``compiled=False``: the Python reference, one ``engine.step`` per iteration), the task's training
environment (``task.make_env("train", mode)``, default mode ``residual``) steps a fixed policy of uniform random
actions (drawn beforehand from a seeded generator; the sampler is not timed) for ``--steps`` decisions after one
warm-up episode (compiled kernels loaded), resetting when an episode ends. Both paths see the same actions and
episodes. Rates are per wall-clock second and per CPU-second of this process (meaningful on a loaded machine).
The last output line is one JSON object: per task the decisions/s of both paths and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from llmsched_gym.tasks import TASKS


def random_actions(env: Any, n: int, seed: int) -> list[Any]:
    """``n`` uniform random actions of the env's action space from a seeded generator."""
    space, rng = env.action_space, np.random.default_rng(seed)
    if hasattr(space, "nvec"):
        return [rng.integers(0, space.nvec) for _ in range(n)]
    return [rng.uniform(-1.0, 1.0, space.shape).astype(np.float32) for _ in range(n)]


def run(env: Any, actions: list[Any], seed: int) -> int:
    """Step ``actions`` (resetting at episode ends); returns the episodes finished."""
    env.reset(seed=seed)
    episodes = 0
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episodes += 1
            env.reset()
    return episodes


def measure(task: str, mode: str, compiled: bool, steps: int, seed: int) -> dict[str, float]:
    """Decisions per wall and CPU second of one path on one task."""
    env = TASKS[task].make_env("train", mode, compiled=compiled)
    run(env, random_actions(env, 200, seed + 1), seed + 1)  # warm-up: kernels compiled or loaded
    actions = random_actions(env, steps, seed)
    wall, cpu = time.perf_counter(), time.process_time()
    episodes = run(env, actions, seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"per_s": steps / wall, "per_cpu_s": steps / cpu, "episodes": episodes}


def main() -> None:
    """Measure every task (or ``--tasks``) and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--mode", default="residual")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS))
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for task in args.tasks:
        fast = measure(task, args.mode, True, args.steps, args.seed)
        ref = measure(task, args.mode, False, args.steps, args.seed)
        ratio = fast["per_cpu_s"] / ref["per_cpu_s"]
        print(
            f"{task:16s} compiled {fast['per_s']:8.0f}/s ({fast['per_cpu_s']:8.0f}/cpu-s)  "
            f"python {ref['per_s']:7.0f}/s ({ref['per_cpu_s']:7.0f}/cpu-s)  ratio {ratio:5.1f}x (cpu)",
            flush=True,
        )
        results[task] = {
            "compiled_per_s": round(fast["per_s"], 1),
            "python_per_s": round(ref["per_s"], 1),
            "compiled_per_cpu_s": round(fast["per_cpu_s"], 1),
            "python_per_cpu_s": round(ref["per_cpu_s"], 1),
            "ratio_wall": round(fast["per_s"] / ref["per_s"], 2),
            "ratio_cpu": round(ratio, 2),
        }
    print(json.dumps({"mode": args.mode, "steps": args.steps, "tasks": results}))


if __name__ == "__main__":
    main()
