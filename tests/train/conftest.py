"""Tiny trained runs shared by the training, export and deployment tests (a few hundred decisions each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.config import TrainArgs
from train.run import train

SMOKE = {
    "total_decisions": 256, "n_envs": 2, "n_procs": 0, "n_steps": 64, "batch_size": 64, "n_epochs": 2,
    "eval_every": 128, "eval_episodes": 1, "checkpoint_every": 128, "progress": False, "wandb": "disabled",
}  # fmt: skip
RUNS = {
    "priority": {"mode": "priority", "algo": "ppo"},
    "knobs": {"mode": "knobs", "algo": "maskable_ppo"},
    "scores": {"mode": "scores", "algo": "ppo", "hidden": 16},
}


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny training run per algorithm / policy network, on the slo-goodput task."""
    out = tmp_path_factory.mktemp("runs")
    return {name: train(TrainArgs(task="slo-goodput", out=str(out), **SMOKE, **extra)) for name, extra in RUNS.items()}
