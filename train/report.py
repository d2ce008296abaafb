"""Result figures and tables for docs/results.md from training runs and evaluation files.

``python -m train.report --task slo-goodput --runs runs/slo-goodput-priority-s0 --eval results/slo-goodput-v0.json
--out docs/results`` writes ``<task>_curve.png`` (validation score over training decisions, with the base and best
baselines' validation scores as lines), ``<task>_bars.png`` (held-out test results with 95 % intervals) and prints
the markdown table of the evaluation and the training budget of each run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmsched_gym.tasks import get_task
from llmsched_gym.tasks.scoring import Estimate, baseline_objectives
from train.evaluate import Row
from train.plots import bars, learning_curves


def markdown_table(task: Any, rows: list[Row]) -> str:
    """The evaluation table in markdown (best first)."""
    head = f"| entry | kind | {task.objective} (mean ± 95% CI, {rows[0].n} episodes) | score | vs best (paired) |"
    lines = [head, "|---|---|---|---|---|"]
    for r in rows:
        diff = "" if r.diff_mean is None else f"{r.diff_mean:+.4g} ± {r.diff_half_width:.2g}"
        lines.append(f"| {r.name} | {r.kind} | {r.mean:.4g} ± {r.half_width:.2g} | {r.score:.3f} | {diff} |")
    return "\n".join(lines)


def budget_table(runs: list[Path]) -> str:
    """Training budget of each run (decisions, wall time, rate, machine) from its ``summary.json``."""
    lines = ["| run | decisions | wall (s) | decisions/s | best validation | machine |", "|---|---|---|---|---|---|"]
    for run in runs:
        s = json.loads((run / "summary.json").read_text())
        lines.append(
            f"| {run.name} | {s['decisions']} | {s['wall_s']} | {s['decisions_per_s']} | {s['best_validation']:.4g} "
            f"| {s['machine']} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Write the figures and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--eval", type=Path, required=True, help="the JSON of `llmsched evaluate --out`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--validation-baselines", default=None, help="baselines drawn on the curve (default: base)")
    args = parser.parse_args()
    task = get_task(args.task)
    args.out.mkdir(parents=True, exist_ok=True)
    data = json.loads(args.eval.read_text())
    rows = [Row(**r) for r in data["rows"]]
    bars(task, rows, args.out / f"{task.id}_bars.png")
    names = args.validation_baselines.split(",") if args.validation_baselines else [task.base]
    values = baseline_objectives(task, "validation", names, n=_validation_episodes(args.runs[0]))
    lines = {f"{k} (validation)": Estimate.of(v).mean for k, v in values.items()}
    learning_curves(task, args.runs, args.out / f"{task.id}_curve.png", {k.split(" ")[0]: v for k, v in lines.items()})
    print(markdown_table(task, rows))
    print()
    print(budget_table(args.runs))


def _validation_episodes(run: Path) -> int:
    return int(json.loads((run / "args.json").read_text())["eval_episodes"])


if __name__ == "__main__":
    main()
