"""Plots of training and evaluation: learning curves (validation score over decisions) and per-entry bars."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(task: Any, rows: Sequence[Any], path: Path) -> None:
    """Mean objective with 95 % intervals per entry (baselines grey, policies blue), best first."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.2))
    names = [r.name for r in rows][::-1]
    means = [r.mean for r in rows][::-1]
    errs = [r.half_width for r in rows][::-1]
    colors = ["tab:blue" if r.kind == "policy" else "0.6" for r in rows][::-1]
    ax.barh(names, means, xerr=errs, color=colors)
    ax.set_xlabel(f"{task.objective} per episode (mean, 95% CI)")
    ax.set_title(f"{task.id}: held-out episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learning_curves(task: Any, runs: Sequence[Path], path: Path, baselines: dict[str, float] | None = None) -> None:
    """Validation objective over training decisions of each run (``<run>/eval.csv``), with baseline lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        rows = list(csv.DictReader((run / "eval.csv").open()))
        x = [int(r["decisions"]) for r in rows]
        y = [float(r["mean"]) for r in rows]
        ax.plot(x, y, marker="o", ms=3, label=run.name)
    for i, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{i + 3}", label=f"{name} (validation)")
    ax.set_xlabel("training decisions")
    ax.set_ylabel(f"{task.objective} per validation episode")
    ax.set_title(f"{task.id}: learning curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
