"""``llmsched compare``: identical arrivals across schedulers, CSV and plots."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from llmsched_gym.cli import main
from llmsched_gym.compare import SweepSpec, run_sweep
from llmsched_gym.compare.cli import sweep_capacity
from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.metrics.capacity import SLOCriterion


def _spec(**kw):
    base = dict(
        schedulers=("sarathi", "vllm-v1"), rates=(1.0, 3.0), seeds=(0,), workload="synthetic-sharegpt",
        workload_kwargs={"n_requests": 40}, cost_model="roofline", cost_kwargs={}, engine=EngineConfig(KVConfig(4000)),
    )  # fmt: skip
    base.update(kw)
    return SweepSpec(**base)


def test_every_scheduler_sees_the_same_arrivals():
    points = run_sweep(_spec(), jobs=1)
    assert [(p.scheduler, p.rate) for p in points] == [
        ("sarathi", 1.0), ("sarathi", 3.0), ("vllm-v1", 1.0), ("vllm-v1", 3.0)
    ]  # fmt: skip
    by = {(p.scheduler, p.rate): p for p in points}
    for rate in (1.0, 3.0):
        a, b = by[("sarathi", rate)], by[("vllm-v1", rate)]
        assert a.summary.requests == b.summary.requests == 40
        tokens_a = a.summary.input_tok_per_s * a.summary.makespan_s
        assert tokens_a == pytest.approx(b.summary.input_tok_per_s * b.summary.makespan_s)


def test_sweep_capacity_is_largest_rate_meeting_slo_with_all_lower_rates():
    points = run_sweep(_spec(rates=(0.5, 1.0, 100.0)), jobs=1)
    cap = sweep_capacity(points, SLOCriterion(median_sched_delay_s=2.0))
    assert cap["sarathi"] in (0.5, 1.0)
    assert np.isfinite(cap["vllm-v1"])


def test_compare_command_writes_csv_and_plots(tmp_path, capsys):
    args = ["compare", "--schedulers", "sarathi,vllm-v1", "--rates", "1,2", "--n-requests", "30", "--jobs", "2",
            "--out-dir", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert len(rows) == 4 and {r["scheduler"] for r in rows} == {"sarathi", "vllm-v1"}
    for png in ("latency_load.png", "cdfs.png", "kv_util.png", "capacity.png"):
        assert (tmp_path / png).stat().st_size > 1000
