"""Environment speed: single-process steps per second with random actions and with encoded Sarathi-Serve actions.

Setup: ``llmsched_gym/LLMSchedScores-v0`` made with ``gymnasium.make`` (its wrappers included) and its defaults:
roofline cost model for H100-80GB / Llama-2-7B with the KV pool derived from GPU memory, 32 slots, episodes of
200 synthetic ShareGPT-length requests at 0.5-1.5 x 2 req/s. Episodes are reset when they end.

* random: actions drawn with ``action_space.sample()`` beforehand (the sampler itself is not timed);
* sarathi: every step asks Sarathi-Serve (chunk 512) for its plan on the env's view, encodes it with
  ``encode_plan`` and steps (scheduler and encoding timed too). Sarathi's batch cap is half the slots so that
  every request it may schedule is visible (``encode_plan`` needs that); the second-to-last line also gives the
  rate of ``env.step`` alone.

Each measurement follows a warm-up (compiled kernels loaded, first episode drawn). Rates are per wall-clock
second; the text lines also give steps per CPU-second of this process, which stays meaningful on a shared,
loaded machine. The last output line is one JSON object ``{"steps_per_s_random": ..., "steps_per_s_sarathi":
...}`` (wall-clock rates).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import gymnasium

import llmsched_gym.env  # noqa: F401  (registers the ids)
from llmsched_gym.schedulers import make_scheduler

ENV_ID = "llmsched_gym/LLMSchedScores-v0"


class Clock:
    """Wall and CPU time since the last ``start`` (CPU time shows the cost on a shared, loaded machine)."""

    def start(self) -> None:
        """Start (or restart) timing."""
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, steps: int) -> tuple[float, float]:
        """Steps per wall second and per CPU second since ``start``."""
        return steps / (time.perf_counter() - self.wall), steps / (time.process_time() - self.cpu)


def run_random(env: gymnasium.Env, steps: int, seed: int) -> tuple[float, float]:
    """Steps per wall and CPU second of ``steps`` random actions (after 500 warm-up steps)."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps + 500)]
    clock = Clock()
    for i, action in enumerate(actions):
        if i == 500:
            clock.start()
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return clock.rates(steps)


def run_sarathi(env: gymnasium.Env, steps: int, seed: int, max_num_seqs: int) -> tuple[float, float, float]:
    """Steps per wall and CPU second of the whole Sarathi loop, and per wall second of ``env.step`` alone."""
    inner: Any = env.unwrapped
    scheduler = make_scheduler("sarathi", chunk_size=512, max_num_seqs=max_num_seqs)
    env.reset(seed=seed)
    scheduler.reset(seed=seed)
    stepping = 0.0
    clock = Clock()
    for i in range(steps + 500):
        if i == 500:
            clock.start()
            stepping = 0.0
        view = inner.view()
        action = inner.encode_plan(scheduler.schedule(view), view)
        s0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        stepping += time.perf_counter() - s0
        if terminated or truncated:
            env.reset()
            scheduler.reset(seed=seed)
    return (*clock.rates(steps), steps / stepping)


def main() -> None:
    """Run both measurements and print the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="timed steps per measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slots", type=int, default=32)
    args = parser.parse_args()
    env = gymnasium.make(ENV_ID, slots=args.slots)
    random_rate, random_cpu = run_random(env, args.steps, args.seed)
    print(f"random actions: {random_rate:,.0f} steps/s, {random_cpu:,.0f} per CPU-second ({args.steps} steps)")
    sarathi_rate, sarathi_cpu, step_rate = run_sarathi(env, args.steps, args.seed, max(1, args.slots // 2))
    print(f"encoded Sarathi-Serve: {sarathi_rate:,.0f} steps/s, {sarathi_cpu:,.0f} per CPU-second (loop)")
    print(f"encoded Sarathi-Serve: {step_rate:,.0f} steps/s of env.step alone (scheduler and encoding excluded)")
    env.close()
    print(json.dumps({"steps_per_s_random": round(random_rate), "steps_per_s_sarathi": round(sarathi_rate)}))


if __name__ == "__main__":
    main()
