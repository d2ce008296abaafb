"""``llmsched train`` and ``llmsched evaluate`` (need the ``train`` extra: torch, stable-baselines3, sb3-contrib)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_train_parser(sub: Any) -> None:
    """``llmsched train TASK [options]``: every option is a field of :class:`train.config.TrainArgs`."""
    from train.config import add_arguments

    p = sub.add_parser(
        "train",
        help="train a policy on a task (PPO / MaskablePPO)",
        description="Train a learned scheduler on a task's -v1 environment; the run goes to <out>/<run name>.",
    )
    add_arguments(p)
    p.add_argument("--no-wandb", dest="wandb", action="store_const", const="disabled", help="same as --wandb disabled")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``train``."""
    from train.config import from_namespace
    from train.run import train

    run_dir = train(from_namespace(args))
    print(f"run written to {run_dir} (best.zip: best validation model; eval.csv: learning curve)")
    return 0


def add_evaluate_parser(sub: Any) -> None:
    """``llmsched evaluate TASK --policy PATH ... [--baselines a,b]``."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate policies and baselines on a task's held-out episodes",
        description="Policies (SB3 .zip of `llmsched train`, or an exported policy) and baselines on identical "
        "held-out episodes: mean and 95%% CI, normalised score, paired difference to the best baseline.",
    )
    p.add_argument("task", help="task name (llmsched tasks)")
    p.add_argument("--policy", type=Path, action="append", default=[], help="a policy file (repeatable)")
    p.add_argument("--baselines", default=None, help="comma-separated schedulers (default: the task's baselines)")
    p.add_argument("--split", default="test", choices=("test", "validation"), help="episode set (default test)")
    p.add_argument("--episodes", type=int, default=None, help="use the first N episodes of the split")
    p.add_argument("--no-sampled", dest="sampled", action="store_false", help="skip sampled policy runs")
    p.add_argument("--out", type=Path, default=None, help="write <task>.json and plots into this directory")
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``evaluate``."""
    from llmsched_gym.tasks import get_task
    from train.evaluate import evaluate, format_table

    baselines = args.baselines.split(",") if args.baselines else None
    rows = evaluate(
        args.task, args.policy, baselines=baselines, split=args.split, episodes=args.episodes,
        sampled=args.sampled, out=args.out,
    )  # fmt: skip
    print(format_table(get_task(args.task), rows))
    return 0
