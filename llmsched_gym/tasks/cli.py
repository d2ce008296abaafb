"""``llmsched tasks``: the benchmark tasks and every baseline's score on their held-out episodes."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SCORES_FILE = Path(__file__).with_name("baseline_scores.json")
"""Shipped baseline scores on the test sets (written by ``llmsched tasks --compute``)."""


def add_tasks_parser(sub: Any) -> None:
    """``llmsched tasks [--compute]``."""
    p = sub.add_parser(
        "tasks",
        help="list benchmark tasks with every baseline's held-out score",
        description="Benchmark tasks for learned schedulers, with each baseline's mean objective and normalised "
        "score (0 = vLLM V1, 1 = best baseline) on the task's held-out test episodes.",
    )
    p.add_argument("--compute", action="store_true", help="re-run every baseline on the test sets and save")
    p.add_argument("--task", default=None, help="only this task")
    p.add_argument("--episodes", type=int, default=None, help="with --compute: the first N test episodes")
    p.set_defaults(handler=run_tasks)


def compute_scores(names: list[str], episodes: int | None) -> dict[str, Any]:
    """Run every baseline of the tasks ``names`` on their test episodes."""
    from llmsched_gym.tasks import get_task
    from llmsched_gym.tasks.scoring import Estimate, baseline_objectives, normalised

    out: dict[str, Any] = {}
    for name in names:
        task = get_task(name)
        values = baseline_objectives(task, "test", n=episodes)
        means = {k: float(sum(v) / len(v)) for k, v in values.items()}
        best = max(means.values())
        rows = {
            k: {"mean": str(Estimate.of(v)), "score": normalised(means[k], means[task.reference], best)}
            for k, v in values.items()
        }
        out[task.id] = {"episodes": len(next(iter(values.values()))), "baselines": rows, "date": time.strftime("%F")}
    return out


def run_tasks(args: argparse.Namespace) -> int:
    """Handler of ``tasks``."""
    from llmsched_gym.tasks import TASKS, get_task

    names = [args.task] if args.task else [t.name for t in TASKS.values()]
    stored: dict[str, Any] = json.loads(SCORES_FILE.read_text()) if SCORES_FILE.exists() else {}
    if args.compute:
        stored.update(compute_scores(names, args.episodes))
        SCORES_FILE.write_text(json.dumps(stored, indent=1))
    for name in names:
        task = get_task(name)
        print(f"{task.id}: {task.summary}")
        print(f"  objective {task.objective}; base {task.base}; reference {task.reference}")
        entry = stored.get(task.id)
        if entry is None:
            print("  (no stored baseline scores: run `llmsched tasks --compute`)")
            continue
        print(f"  test set: {entry['episodes']} episodes, computed {entry['date']}")
        for base, row in sorted(entry["baselines"].items(), key=lambda kv: -kv[1]["score"]):
            print(f"    {base:20s} {row['mean']:>20s}  score {row['score']:6.3f}")
    return 0
