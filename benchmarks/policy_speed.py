"""Per-decision latency of ``PolicyScheduler`` (encode + infer + decode) per runtime and slot count.

For each slot count ``K`` and action mode (``priority``: the MLP policy of ``llmsched train``'s default; ``residual``:
the slot-equivariant policy), an untrained policy of the right shape (latency does not depend on the weights) is
exported to ONNX and TorchScript, then serves one validation episode of ``slo-goodput`` through ``simulate`` with
``policy:PATH``; the scheduler times every decision. torch and onnxruntime run on one thread (``taskset`` the process
to one core for a strict one-core figure). Goal: <= 100 µs per decision with onnxruntime at the default size
(K = 32, priority mode). Results go into docs/benchmarks.md. Usage: ``python benchmarks/policy_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO

from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from llmsched_gym.tasks import get_task
from train.config import TrainArgs
from train.export import export_run
from train.policies import SlotActorCriticPolicy
from train.run import slot_policy_kwargs


def exported(mode: str, slots: int, root: Path) -> list[Path]:
    """Export an untrained policy of ``mode`` for ``slots`` slots; returns the ONNX and TorchScript files."""
    args = TrainArgs(task="slo-goodput", mode=mode, out=str(root), run_name=f"{mode}-k{slots}")
    env = get_task("slo-goodput").make_env("validation", mode, slots=slots)
    run = args.run_dir
    run.mkdir(parents=True, exist_ok=True)
    (run / "args.json").write_text(args.to_json())
    if args.network == "slot":
        kwargs = slot_policy_kwargs(env.unwrapped.encoder, env.unwrapped.decoder, args)
        model = PPO(SlotActorCriticPolicy, env, policy_kwargs=kwargs, device="cpu", seed=0)
    else:
        model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [64, 64]}, device="cpu", seed=0)
    model.save(run / "best.zip")
    return export_run(run, "best", run, env_overrides={"slots": slots})


def serve(path: Path) -> dict[str, Any]:
    """Decision latencies of the policy at ``path`` over one validation episode."""
    task = get_task("slo-goodput")
    scheduler = make_scheduler(f"policy:{path}")
    env = task.make_env("validation", scheduler.policy.manifest.action_mode, slots=scheduler.config.slots)
    env.reset(seed=task.seeds("validation")[0])
    setup = env.unwrapped.engine_setup()
    requests = list(env.unwrapped.episode.requests)
    simulate(requests, scheduler, SimulatedRunner(setup.cost_model), setup.engine_config)  # warm-up
    simulate(requests, scheduler, SimulatedRunner(setup.cost_model), setup.engine_config)
    us = 1e6 * np.asarray(scheduler.decision_times)
    return {"decisions": int(us.size), "median_us": round(float(np.median(us)), 1),
            "p90_us": round(float(np.percentile(us, 90)), 1), "mean_us": round(float(us.mean()), 1)}  # fmt: skip


def main() -> None:
    """Every mode x slot count x runtime; prints JSON rows and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="8,16,32,64", help="slot counts (default 8,16,32,64)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("priority", "residual"):
            for k in (int(x) for x in args.slots.split(",")):
                for path in exported(mode, k, Path(tmp)):
                    row = {"mode": mode, "slots": k, "runtime": "onnx" if path.suffix == ".onnx" else "torchscript"}
                    row.update(serve(path))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"{'mode':9s} {'K':>3s} {'runtime':12s} {'median µs':>10s} {'p90 µs':>8s} {'mean µs':>8s}")
    for r in rows:
        print(f"{r['mode']:9s} {r['slots']:3d} {r['runtime']:12s} {r['median_us']:10.1f} {r['p90_us']:8.1f} "
              f"{r['mean_us']:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
