"""Training callbacks: validation evaluation (best model), checkpoints, progress bar, wandb logging."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from train.episodes import run_policy


class ValidationCallback(BaseCallback):
    """Evaluates the deterministic policy on the task's validation episodes every ``every`` decisions.

    Appends ``decisions, wall_s, mean, half_width`` to ``<run>/eval.csv``, saves the best model to
    ``<run>/best.zip`` and logs ``eval/objective`` (TensorBoard, wandb).

    Args:
        task: The task.
        mode: Action mode.
        every: Decisions between evaluations.
        episodes: Validation episodes per evaluation.
        run_dir: The run's directory.
    """

    def __init__(self, task: Any, mode: str, every: int, episodes: int, run_dir: Path) -> None:
        super().__init__()
        self.task, self.mode, self.every, self.episodes, self.run_dir = task, mode, every, episodes, run_dir
        self.env = task.make_env("validation", mode)
        self.best = -np.inf
        self.last: float | None = None
        self._next = 0
        self._t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps
        path = self.run_dir / "eval.csv"
        self.best = (
            max((float(r["mean"]) for r in csv.DictReader(path.open())), default=-np.inf) if path.exists() else -np.inf
        )

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = self.num_timesteps + self.every
            self.evaluate()
        return True

    def evaluate(self) -> float:
        """Run the validation episodes now; returns the mean objective."""
        from llmsched_gym.tasks.scoring import Estimate

        seeds = self.task.seeds("validation", self.episodes)
        values = [run_policy(self.env, self.model, seed, deterministic=True) for seed in seeds]
        est = Estimate.of(values)
        self.last = est.mean
        self.logger.record("eval/objective", est.mean)
        self.logger.record("eval/half_width", est.half_width)
        path = self.run_dir / "eval.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["decisions", "wall_s", "mean", "half_width"])
            writer.writerow([self.num_timesteps, round(time.perf_counter() - self._t0, 2), est.mean, est.half_width])
        if est.mean > self.best:
            self.best = est.mean
            self.model.save(self.run_dir / "best.zip")
        return est.mean


class CheckpointCallback(BaseCallback):
    """Saves ``<run>/checkpoint.zip`` (model and its VecNormalize statistics) every ``every`` decisions."""

    def __init__(self, every: int, run_dir: Path) -> None:
        super().__init__()
        self.every, self.run_dir = every, run_dir
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = self.num_timesteps + self.every
            save_checkpoint(self.model, self.run_dir)
        return True


def save_checkpoint(model: Any, run_dir: Path) -> None:
    """Write ``checkpoint.zip`` and ``vecnormalize.pkl`` (the reward scaling) into ``run_dir``."""
    model.save(run_dir / "checkpoint.zip")
    venv = model.get_vec_normalize_env()
    if venv is not None:
        venv.save(str(run_dir / "vecnormalize.pkl"))


class ProgressCallback(BaseCallback):
    """A tqdm bar over the decision budget showing decisions/s and the latest validation score."""

    def __init__(self, total: int, validation: ValidationCallback | None) -> None:
        super().__init__()
        self.total, self.validation = total, validation
        self.bar: Any = None
        self._t0 = 0.0
        self._start = 0

    def _on_training_start(self) -> None:
        from tqdm import tqdm

        self._t0, self._start = time.perf_counter(), self.num_timesteps
        self.bar = tqdm(total=self.total, initial=self.num_timesteps, unit="dec", desc="training", mininterval=1.0)

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        rate = (self.num_timesteps - self._start) / max(time.perf_counter() - self._t0, 1e-9)
        last = None if self.validation is None else self.validation.last
        self.bar.set_postfix_str(f"{rate:,.0f} dec/s, val {last if last is None else round(last, 3)}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class WandbCallback(BaseCallback):
    """Logs SB3's training statistics and the validation score to wandb after every rollout."""

    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        values = {k: v for k, v in self.model.logger.name_to_value.items() if isinstance(v, int | float)}
        if values:
            self.run.log(values, step=self.num_timesteps)
