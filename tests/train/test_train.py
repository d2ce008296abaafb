"""Training smoke runs: PPO and MaskablePPO train, validate, checkpoint, resume and log for a few hundred steps."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from tests.train.conftest import SMOKE
from train.config import TrainArgs
from train.run import train


@pytest.mark.parametrize("name", ["priority", "knobs", "scores"])
def test_a_smoke_run_writes_everything_a_run_promises(smoke_runs: dict[str, Path], name: str) -> None:
    run = smoke_runs[name]
    for file in (
        "args.json",
        "best.zip",
        "final.zip",
        "checkpoint.zip",
        "vecnormalize.pkl",
        "summary.json",
        "eval.csv",
    ):
        assert (run / file).is_file(), file
    summary = json.loads((run / "summary.json").read_text())
    assert summary["decisions"] >= SMOKE["total_decisions"]
    rows = list(csv.DictReader((run / "eval.csv").open()))
    assert len(rows) >= 2 and all(float(r["mean"]) >= 0 for r in rows)
    assert TrainArgs.from_json((run / "args.json").read_text()).mode == name


def test_resume_continues_from_the_checkpoint(smoke_runs: dict[str, Path], tmp_path: Path) -> None:
    args = TrainArgs(task="slo-goodput", out=str(tmp_path), **SMOKE)
    run = train(args)
    first = json.loads((run / "summary.json").read_text())["decisions"]
    more = dataclasses.replace(args, total_decisions=2 * SMOKE["total_decisions"], resume=True)
    train(more)
    rows = list(csv.DictReader((run / "eval.csv").open()))
    assert int(rows[-1]["decisions"]) >= 2 * SMOKE["total_decisions"] > first


def test_bad_arguments_name_the_field_and_the_fix() -> None:
    with pytest.raises(ValueError, match="maskable_ppo needs mode='knobs'"):
        TrainArgs(algo="maskable_ppo", mode="priority")
    with pytest.raises(ValueError, match="n_procs=3 must not exceed n_envs=2"):
        TrainArgs(n_envs=2, n_procs=3)


def test_a_fresh_run_refuses_a_directory_that_holds_one(smoke_runs: dict[str, Path]) -> None:
    run = smoke_runs["priority"]
    args = TrainArgs(task="slo-goodput", out=str(run.parent), run_name=run.name, **SMOKE)
    with pytest.raises(FileExistsError, match="--resume"):
        train(args)
