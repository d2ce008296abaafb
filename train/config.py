"""The arguments of a training run: one frozen dataclass, each field with a help line (logged with the run).

:func:`add_arguments` turns the fields into command-line options of ``llmsched train`` and :func:`from_namespace`
turns the parsed options back into :class:`TrainArgs`, so the command line, the Python API and the saved
``args.json`` of a run are the same thing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES: tuple[str, ...] = ("priority", "residual", "knobs", "scores")
"""Action modes a run can train."""


def _arg(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class TrainArgs:
    """Everything a training run depends on (see each field's help)."""

    task: str = _arg("slo-goodput", "task name (llmsched tasks)")
    algo: str = _arg("ppo", "ppo (Box modes) or maskable_ppo (knobs mode, sb3-contrib)")
    mode: str = _arg("priority", "action mode of the -v1 env: priority, residual, knobs or scores")
    policy: str = _arg("auto", "slot (slot-equivariant, residual/scores), mlp (SB3's MlpPolicy) or auto")
    total_decisions: int = _arg(100_000, "training budget in env decisions (steps summed over envs)")
    n_envs: int = _arg(16, "environments (policy inference is batched over all of them)")
    n_procs: int = _arg(2, "worker processes the environments are spread over (0: all in this process)")
    seed: int = _arg(0, "seed of the policy, the sampling and the training episodes (env i uses seed + i)")
    learning_rate: float = _arg(3e-4, "Adam learning rate")
    n_steps: int = _arg(64, "decisions per env between updates (rollout = n_steps x n_envs)")
    batch_size: int = _arg(128, "minibatch size of an update")
    n_epochs: int = _arg(10, "passes over each rollout")
    gamma: float = _arg(0.99, "discount per decision")
    gae_lambda: float = _arg(0.95, "GAE lambda")
    clip_range: float = _arg(0.2, "PPO clip range")
    ent_coef: float = _arg(0.0, "entropy bonus")
    log_std_init: float = _arg(-1.5, "initial log std of the Gaussian policy (small: start near the zero action)")
    hidden: int = _arg(64, "width of the slot network (or of each of the two MLP layers)")
    shaping: str | None = _arg(None, "potential-based shaping on goodput tasks (ttft) or none")
    credit: str = _arg("first_token", "goodput tasks: pay each +1 at the request's in-time first token or at finish")
    bc_from: str | None = _arg(None, "behaviour-cloning warm start from this registered scheduler (none: off)")
    bc_episodes: int = _arg(8, "episodes of the BC teacher")
    bc_epochs: int = _arg(20, "BC passes over the teacher's decisions")
    eval_every: int = _arg(4096, "decisions between evaluations on the validation set")
    eval_episodes: int = _arg(10, "validation episodes per evaluation")
    checkpoint_every: int = _arg(8192, "decisions between checkpoints")
    out: str = _arg("runs", "directory of runs (the run goes to <out>/<task>-<mode>-s<seed>)")
    run_name: str | None = _arg(None, "run directory name (default <task>-<mode>-s<seed>)")
    resume: bool = _arg(False, "continue the run in the run directory from its last checkpoint")
    tensorboard: bool = _arg(True, "write TensorBoard logs (if tensorboard is installed)")
    wandb: str = _arg("offline", "wandb mode: offline (default, no account or network), online, or disabled")
    progress: bool = _arg(True, "show a progress bar with decisions/s and the latest validation score")

    def __post_init__(self) -> None:
        """Validate the arguments, naming the bad value and the fix."""
        checks = (
            (self.algo in ("ppo", "maskable_ppo"), f"algo={self.algo!r} must be 'ppo' or 'maskable_ppo'"),
            (self.mode in MODES, f"mode={self.mode!r} must be one of {MODES}"),
            (self.policy in ("auto", "slot", "mlp"), f"policy={self.policy!r} must be auto, slot or mlp"),
            (self.algo != "maskable_ppo" or self.mode == "knobs", "maskable_ppo needs mode='knobs'"),
            (self.policy != "slot" or self.mode in ("residual", "scores"), "policy='slot' needs residual or scores"),
            (self.wandb in ("offline", "online", "disabled"), f"wandb={self.wandb!r}: offline, online or disabled"),
            (self.credit in ("first_token", "finish"), f"credit={self.credit!r} must be 'first_token' or 'finish'"),
            (self.n_envs >= 1 and self.n_procs >= 0, f"n_envs={self.n_envs} >= 1 and n_procs={self.n_procs} >= 0"),
            (self.n_procs <= self.n_envs, f"n_procs={self.n_procs} must not exceed n_envs={self.n_envs}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainArgs: {message}")
        for name in ("total_decisions", "n_steps", "batch_size", "n_epochs", "hidden", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainArgs: {name}={getattr(self, name)} must be >= 1")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"TrainArgs: learning_rate={self.learning_rate} must be positive, e.g. 3e-4")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError(f"TrainArgs: gamma={self.gamma} in (0, 1] and gae_lambda={self.gae_lambda} in [0, 1]")

    @property
    def network(self) -> str:
        """The policy network actually used: ``slot`` for residual/scores under ``auto``, else ``mlp``."""
        if self.policy == "auto":
            return "slot" if self.mode in ("residual", "scores") else "mlp"
        return self.policy

    @property
    def run_dir(self) -> Path:
        """The run's directory."""
        return Path(self.out) / (self.run_name or f"{self.task}-{self.mode}-s{self.seed}")

    def to_json(self) -> str:
        """The arguments as JSON (saved as the run's ``args.json``)."""
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainArgs:
        """Arguments saved by :meth:`to_json`."""
        return cls(**json.loads(text))


CHOICES: dict[str, tuple[str, ...]] = {
    "algo": ("ppo", "maskable_ppo"),
    "mode": MODES,
    "policy": ("auto", "slot", "mlp"),
    "wandb": ("offline", "online", "disabled"),
    "credit": ("first_token", "finish"),
}
"""Options with a fixed set of values."""


def add_arguments(parser: argparse.ArgumentParser, task_type: Callable[[str], str] | None = None) -> None:
    """One ``--option`` per field of :class:`TrainArgs` (``task`` is positional), typed and range-checked."""
    parser.add_argument("task", type=task_type or str, help=TrainArgs.__dataclass_fields__["task"].metadata["help"])
    for f in dataclasses.fields(TrainArgs):
        if f.name == "task":
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
        elif f.name in CHOICES:
            parser.add_argument(flag, choices=CHOICES[f.name], default=f.default, help=help_text)
        else:
            parser.add_argument(flag, type=_kind(f), default=f.default, help=help_text, metavar=f.name.upper())


def _kind(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    from llmsched_gym.cli.validate import integer, number

    if f.name in ("shaping", "bc_from", "run_name"):
        return _optional_str
    if isinstance(f.default, int):
        return integer(low=0 if f.name in ("seed", "n_procs", "ent_coef") else 1)
    if isinstance(f.default, float):
        return number() if f.name == "log_std_init" else number(low=0.0)
    return str


def _optional_str(text: str) -> str | None:
    return None if text.lower() in ("none", "off", "") else text


def from_namespace(ns: argparse.Namespace) -> TrainArgs:
    """The :class:`TrainArgs` of parsed options."""
    return TrainArgs(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(TrainArgs)})
