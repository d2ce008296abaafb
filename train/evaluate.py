"""``llmsched evaluate``: policies and baselines on the same held-out episodes, with confidence intervals.

Every entry runs on the task's test episodes (``env.reset(seed=s)`` for the task's test seeds): baselines natively
(:mod:`llmsched_gym.tasks.scoring`), policies deterministically and sampled. The table gives per entry the mean
objective with its 95 % t-interval over episodes, the normalised score (0 = the task's reference, vLLM V1; 1 = the
best baseline on these episodes) and, for policies, the paired difference to the best baseline (mean and 95 %
interval of the per-episode differences, the sharper test since both run on identical episodes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.tasks import Task, get_task
from llmsched_gym.tasks.scoring import Estimate, baseline_objectives, normalised
from train.episodes import run_policy


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the evaluation table."""

    name: str
    kind: str
    mean: float
    half_width: float
    n: int
    score: float
    diff_mean: float | None = None
    diff_half_width: float | None = None


def load_policy(path: Path) -> tuple[Any, str]:
    """A saved SB3 model (or an exported policy file) and its action mode.

    The mode comes from the run's ``args.json`` next to a ``.zip``, or from an exported policy's manifest.
    """
    if path.suffix in (".onnx", ".pt", ".llpolicy") or path.is_dir():
        from llmsched_gym.policy import load_exported

        policy = load_exported(path)
        return policy, policy.manifest.action_mode
    args_file = path.parent / "args.json"
    if not args_file.exists():
        raise FileNotFoundError(f"{path}: no args.json beside it (the run directory of `llmsched train`)")
    args = json.loads(args_file.read_text())
    if args["algo"] == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(path, device="cpu"), args["mode"]
    from stable_baselines3 import PPO

    return PPO.load(path, device="cpu"), args["mode"]


def policy_objectives(task: Task, path: Path, split: str, n: int | None, deterministic: bool) -> list[float]:
    """Per-episode objectives of the policy at ``path`` on ``split``'s fixed episodes (seed order)."""
    import torch

    policy, mode = load_policy(path)
    env = task.make_env(split, mode)
    out = []
    for seed in task.seeds(split, n):
        torch.manual_seed(seed)  # sampled runs are reproducible
        out.append(run_policy(env, policy, seed, deterministic=deterministic))
    env.close()
    return out


def table(task: Task, baselines: dict[str, list[float]], policies: dict[str, list[float]]) -> list[Row]:
    """The evaluation rows (baselines, then policies), scored against the baselines on the same episodes."""
    ref = float(np.mean(baselines[task.reference]))
    best_name = max(baselines, key=lambda k: float(np.mean(baselines[k])))
    best = np.asarray(baselines[best_name])
    rows = []
    for kind, entries in (("baseline", baselines), ("policy", policies)):
        for name, values in entries.items():
            est = Estimate.of(values)
            row = Row(name, kind, est.mean, est.half_width, est.n, normalised(est.mean, ref, float(best.mean())))
            if kind == "policy":
                diff = Estimate.of(np.asarray(values) - best[: len(values)])
                row = Row(row.name, kind, row.mean, row.half_width, row.n, row.score, diff.mean, diff.half_width)
            rows.append(row)
    return sorted(rows, key=lambda r: -r.mean)


def format_table(task: Task, rows: list[Row]) -> str:
    """The table as aligned text."""
    head = f"{'entry':34s} {'kind':8s} {task.objective + ' (mean ± 95% CI)':>28s} {'score':>7s}  vs best baseline"
    lines = [f"{task.id}: {len(rows)} entries, {rows[0].n} test episodes", head]
    for r in rows:
        diff = "" if r.diff_mean is None else f"{r.diff_mean:+.4g} ± {r.diff_half_width:.2g}"
        lines.append(f"{r.name:34s} {r.kind:8s} {f'{r.mean:.4g} ± {r.half_width:.2g}':>28s} {r.score:7.3f}  {diff}")
    return "\n".join(lines)


def evaluate(
    task_name: str,
    policies: list[Path],
    *,
    baselines: list[str] | None = None,
    split: str = "test",
    episodes: int | None = None,
    sampled: bool = True,
    out: Path | None = None,
) -> list[Row]:
    """Evaluate ``policies`` and ``baselines`` on the same episodes; write JSON and plots under ``out``."""
    task = get_task(task_name)
    names = list(baselines or task.baselines)
    if task.reference not in names:
        names.append(task.reference)
    base = baseline_objectives(task, split, names, n=episodes)
    pols: dict[str, list[float]] = {}
    for path in policies:
        label = f"{path.parent.name}/{path.stem}"
        pols[f"{label} (det)"] = policy_objectives(task, path, split, episodes, True)
        if sampled:
            pols[f"{label} (sampled)"] = policy_objectives(task, path, split, episodes, False)
    rows = table(task, base, pols)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        payload = {"task": task.id, "split": split, "rows": [asdict(r) for r in rows], "per_episode": {**base, **pols}}
        (out / f"{task.id}.json").write_text(json.dumps(payload, indent=1))
        from train.plots import bars

        bars(task, rows, out / f"{task.id}_bars.png")
    return rows
