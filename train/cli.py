"""``llmsched train``, ``llmsched evaluate`` and ``llmsched export`` (the ``train`` extra: torch, SB3, sb3-contrib).

Each command validates its options with the shared CLI layer (:mod:`llmsched_gym.cli.validate`): task and
scheduler names case-insensitively with suggestions, typed numbers, existing input files, output folders that exist.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmsched_gym.cli.validate import in_file, integer, listed, name_of, out_dir


def _task_name() -> Any:
    from llmsched_gym.tasks import list_tasks

    return name_of("task", lambda: [t.rsplit("-v", 1)[0] for t in list_tasks()], listing="llmsched tasks")


def add_train_parser(sub: Any) -> None:
    """``llmsched train TASK [options]``: every option is a field of :class:`train.config.TrainArgs`."""
    from train.config import add_arguments

    p = sub.add_parser(
        "train",
        help="train a policy on a task (PPO / MaskablePPO)",
        description="Train a learned scheduler on a task's -v1 environment; the run goes to <out>/<run name> "
        "(args.json, eval.csv learning curve, best.zip, final.zip, checkpoint.zip, summary.json, tb/, wandb/).",
    )
    add_arguments(p, task_type=_task_name())
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
    from llmsched_gym.cli.arguments import scheduler_name

    p = sub.add_parser(
        "evaluate",
        help="evaluate policies and baselines on a task's held-out episodes",
        description="Policies (a run's .zip, or an exported .onnx/.pt) and baselines on identical held-out "
        "episodes: mean and 95%% CI, normalised score, paired difference to the best baseline.",
    )
    p.add_argument("task", type=_task_name(), help="task name (llmsched tasks)")
    p.add_argument("--policy", type=in_file, action="append", default=[], help="a policy file (repeatable)")
    p.add_argument(
        "--baselines",
        type=listed(scheduler_name, what="scheduler names"),
        default=None,
        help="comma-separated schedulers (default: the task's)",
    )
    p.add_argument("--split", default="test", choices=("test", "validation"), help="episode set (default test)")
    p.add_argument("--episodes", type=integer(low=1), default=None, help="use the first N episodes of the split")
    p.add_argument("--no-sampled", dest="sampled", action="store_false", help="skip sampled policy runs")
    p.add_argument("--out", type=out_dir, default=None, help="write <task>.json and plots into this folder")
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``evaluate``."""
    from llmsched_gym.tasks import get_task
    from train.evaluate import evaluate, format_table

    rows = evaluate(
        args.task, [Path(p) for p in args.policy], baselines=list(args.baselines or []) or None, split=args.split,
        episodes=args.episodes, sampled=args.sampled, out=args.out,
    )  # fmt: skip
    print(format_table(get_task(args.task), rows))
    return 0


def add_export_parser(sub: Any) -> None:
    """``llmsched export RUN_DIR [--which best|final] [--out DIR] [--formats onnx,torchscript]``."""
    p = sub.add_parser(
        "export",
        help="export a trained policy to ONNX and TorchScript (manifest inside)",
        description="Export <run>/<which>.zip to <out>/<run>.onnx and <run>.pt; each file carries its manifest "
        "(env version, EnvConfig, action mode, task, provenance). The exported actions are checked against SB3's.",
    )
    p.add_argument("run", type=Path, help="the run directory of `llmsched train`")
    p.add_argument("--which", default="best", choices=("best", "final", "checkpoint"), help="which model (best)")
    p.add_argument("--out", type=out_dir, default=None, help="output folder (default: the run directory)")
    p.add_argument(
        "--formats",
        type=listed(name_of("format", lambda: ("onnx", "torchscript")), what="formats"),
        default=("onnx", "torchscript"),
        help="onnx,torchscript (default both)",
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``export``."""
    from llmsched_gym.cli.validate import UsageError
    from train.export import export_run

    model = args.run / f"{args.which}.zip"
    if not model.is_file():
        raise UsageError(f"run {args.run}", f"has no {args.which}.zip: give the folder `llmsched train` wrote")
    for path in export_run(args.run, args.which, args.out, tuple(args.formats)):
        print(f"wrote {path}")
    return 0
