"""``train(args)``: PPO / MaskablePPO on a task's -v1 environment, read top to bottom.

1. Seeding and the run directory (``args.json`` is written first).
2. The vectorised training environments (:class:`~train.vec.GroupedVecEnv`), rewards scaled by ``VecNormalize``
   (observations are already bounded; they are not normalised, so an exported policy needs no statistics).
3. The model: PPO with the slot-equivariant policy (Box modes) or SB3's MLP, MaskablePPO for knobs; or the
   last checkpoint when resuming.
4. Optional behaviour-cloning warm start from a registered scheduler (:mod:`train.bc`).
5. ``learn`` with validation (best model), checkpoints, progress bar, TensorBoard and wandb.
6. ``final.zip``, ``vecnormalize.pkl`` and ``summary.json`` (budget, wall time, machine, best validation score).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecNormalize

from llmsched_gym.tasks import get_task
from train.callbacks import CheckpointCallback, ProgressCallback, ValidationCallback, WandbCallback, save_checkpoint
from train.config import TrainArgs
from train.envs import TaskEnvFactory
from train.policies import SlotActorCriticPolicy
from train.vec import GroupedVecEnv


def make_vec_env(args: TrainArgs) -> VecNormalize:
    """The training environments of ``args`` (reward scaling only)."""
    factories = [training_env(args)] * args.n_envs
    venv = GroupedVecEnv(factories, n_procs=args.n_procs, seed=args.seed)
    return VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=args.gamma)


def training_env(args: TrainArgs) -> TaskEnvFactory:
    """The factory of ``args``' training environments (shaping and credit apply to goodput tasks only)."""
    task = get_task(args.task)
    if task.objective != "goodput":
        return TaskEnvFactory(task.name, "train", args.mode)
    reward_kwargs = {**dict(task.reward_kwargs), "credit": args.credit}
    return TaskEnvFactory(task.name, "train", args.mode, args.shaping, (("reward_kwargs", reward_kwargs),))


def build_model(args: TrainArgs, venv: VecNormalize) -> Any:
    """A fresh model for ``args`` on ``venv``."""
    common: dict[str, Any] = {
        "learning_rate": args.learning_rate,
        "n_steps": args.n_steps,
        "batch_size": args.batch_size,
        "n_epochs": args.n_epochs,
        "gamma": args.gamma,
        "gae_lambda": args.gae_lambda,
        "clip_range": args.clip_range,
        "ent_coef": args.ent_coef,
        "seed": args.seed,
        "verbose": 0,
        "device": "cpu",
        "tensorboard_log": str(args.run_dir / "tb") if args.tensorboard and _has("tensorboard") else None,
    }
    if args.algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", venv, policy_kwargs={"net_arch": [args.hidden, args.hidden]}, **common)
    if args.network == "slot":
        decoder = venv.venv.get_attr("decoder", indices=[0])[0]
        encoder = venv.venv.get_attr("encoder", indices=[0])[0]
        kwargs = slot_policy_kwargs(encoder, decoder, args)
        return PPO(SlotActorCriticPolicy, venv, policy_kwargs=kwargs, **common)
    kwargs = {"net_arch": [args.hidden, args.hidden], "log_std_init": args.log_std_init}
    return PPO("MlpPolicy", venv, policy_kwargs=kwargs, **common)


def slot_policy_kwargs(encoder: Any, decoder: Any, args: TrainArgs) -> dict[str, Any]:
    """``policy_kwargs`` of :class:`SlotActorCriticPolicy` for an environment's encoder and decoder."""
    from llmsched_gym.env.observation import GLOBAL_FEATURES, SLOT_FEATURES

    layout = getattr(decoder, "layout", None)
    if layout is None:
        raise ValueError(f"policy='slot' needs a per-slot action (residual or scores), not mode={args.mode!r}")
    return {
        "n_global": len(GLOBAL_FEATURES),
        "slots": encoder.k,
        "n_slot": len(SLOT_FEATURES),
        "layout": tuple(layout),
        "hidden": args.hidden,
        "log_std_init": args.log_std_init,
    }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _wandb_run(args: TrainArgs) -> Any:
    if args.wandb == "disabled" or not _has("wandb"):
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project="llmsched-gym", name=args.run_dir.name, dir=str(args.run_dir), mode=args.wandb,  # type: ignore[arg-type]
        config=json.loads(args.to_json()), reinit=True,
    )  # fmt: skip


def _callbacks(args: TrainArgs, task: Any, wandb_run: Any) -> tuple[list[BaseCallback], ValidationCallback]:
    validation = ValidationCallback(task, args.mode, args.eval_every, args.eval_episodes, args.run_dir)
    callbacks: list[BaseCallback] = [validation, CheckpointCallback(args.checkpoint_every, args.run_dir)]
    if args.progress:
        callbacks.append(ProgressCallback(args.total_decisions, validation))
    if wandb_run is not None:
        callbacks.append(WandbCallback(wandb_run))
    return callbacks, validation


def train(args: TrainArgs) -> Path:
    """Train a policy for ``args`` and return the run directory (see the module docstring)."""
    torch.set_num_threads(1)
    task = get_task(args.task)
    run_dir = args.run_dir
    if not args.resume and (run_dir / "args.json").exists():
        raise FileExistsError(
            f"{run_dir} holds a run already: continue it with --resume, or give another --run-name or --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        (run_dir / "args.json").write_text(args.to_json())
    venv = make_vec_env(args)
    model = _load_or_build(args, venv)
    if args.bc_from is not None and not args.resume:
        from train.bc import behaviour_clone

        behaviour_clone(model, task, args)
    wandb_run = _wandb_run(args)
    callbacks, validation = _callbacks(args, task, wandb_run)
    t0 = time.perf_counter()
    start = model.num_timesteps
    model.learn(args.total_decisions - start, callback=CallbackList(callbacks), reset_num_timesteps=not args.resume)
    wall = time.perf_counter() - t0
    validation.evaluate()
    model.save(run_dir / "final.zip")
    save_checkpoint(model, run_dir)
    _write_summary(args, run_dir, model.num_timesteps - start, wall, validation.best)
    if wandb_run is not None:
        wandb_run.finish()
    venv.close()
    return run_dir


def _load_or_build(args: TrainArgs, venv: VecNormalize) -> Any:
    checkpoint = args.run_dir / "checkpoint.zip"
    if not args.resume:
        return build_model(args, venv)
    if not checkpoint.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}; train without --resume first")
    stats = args.run_dir / "vecnormalize.pkl"
    if stats.exists():
        loaded = VecNormalize.load(str(stats), venv.venv)
        venv.ret_rms = loaded.ret_rms  # observations are not normalised: only the return statistics
    if args.algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(checkpoint, env=venv, device="cpu")
    return PPO.load(checkpoint, env=venv, device="cpu")


def _write_summary(args: TrainArgs, run_dir: Path, decisions: int, wall: float, best: float) -> None:
    summary = {
        "task": args.task,
        "mode": args.mode,
        "algo": args.algo,
        "decisions": decisions,
        "wall_s": round(wall, 1),
        "decisions_per_s": round(decisions / wall, 1) if wall > 0 else None,
        "best_validation": best,
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
