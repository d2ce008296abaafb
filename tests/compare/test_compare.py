"""``llmsched compare``: identical arrivals across schedulers, CSV and plots."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from llmsched_gym.cli import main
from llmsched_gym.compare import SweepSpec, run_sweep
from llmsched_gym.compare.command import sweep_capacity
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


def _compare(out, *extra):
    return ["compare", "--schedulers", "sarathi,vllm-v1", "--rates", "1,2", "--n-requests", "20", "--jobs", "1",
            "--out-dir", str(out), "--no-plots", "--no-progress", *extra]  # fmt: skip


def test_each_finished_run_is_in_the_csv_even_when_the_sweep_dies(tmp_path, capsys, monkeypatch):
    import llmsched_gym.compare.sweep as sweep

    real = sweep.run_point
    calls = []

    def dies_on_the_third(spec, scheduler, rate, seed, progress=None):
        calls.append((scheduler, rate))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user kills the sweep
        return real(spec, scheduler, rate, seed, progress)

    monkeypatch.setattr(sweep, "run_point", dies_on_the_third)
    assert main(_compare(tmp_path)) == 130
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert [(r["scheduler"], r["rate"]) for r in rows] == [("sarathi", "1.0"), ("sarathi", "2.0")]
    monkeypatch.setattr(sweep, "run_point", real)
    assert main(_compare(tmp_path)) == 0
    assert "resuming: 2 of 4 runs are already in" in capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert sorted((r["scheduler"], r["rate"]) for r in rows) == [
        ("sarathi", "1.0"), ("sarathi", "2.0"), ("vllm-v1", "1.0"), ("vllm-v1", "2.0")
    ]  # fmt: skip


def test_a_finished_sweep_reruns_nothing_and_reports_the_same_table(tmp_path, capsys, monkeypatch):
    assert main(_compare(tmp_path)) == 0
    first = capsys.readouterr().out
    import llmsched_gym.compare.sweep as sweep

    monkeypatch.setattr(sweep, "run_point", lambda *a, **k: pytest.fail("nothing should run"))
    assert main(_compare(tmp_path)) == 0
    assert capsys.readouterr().out == first


def test_a_csv_of_another_setup_is_refused_not_mixed(tmp_path, capsys):
    assert main(_compare(tmp_path)) == 0
    capsys.readouterr()
    assert main(_compare(tmp_path, "--gpu", "H200")) == 2
    err = capsys.readouterr().err
    assert "holds runs of another setup (gpu 'H100-80GB', now 'H200')" in err and "--overwrite" in err
    assert main(_compare(tmp_path, "--gpu", "H200", "--overwrite")) == 0
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert {r["gpu"] for r in rows} == {"H200"} and len(rows) == 4


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_is_reported_inside_runs(jobs):
    seen = []
    # SLAI decides in Python (one update per decision); compiled segments report once per segment of decisions
    points = run_sweep(_spec(rates=(1.0,), schedulers=("slai", "vllm-v1")), jobs=jobs, on_progress=seen.append)
    assert sum(seen) == sum(p.summary.finished for p in points) == 80
    if jobs == 1:
        assert len(seen) > 2  # more than one update in a run


def test_compare_defaults_to_a_bounded_run_size(tmp_path, capsys):
    args = ["compare", "--schedulers", "sarathi", "--jobs", "1", "--out-dir", str(tmp_path), "--no-plots",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert rows[0]["requests"] == "500"


def test_plots_and_the_capacity_line_state_what_was_run(tmp_path, capsys, monkeypatch):
    from llmsched_gym.compare import plots

    captions = {}
    for name in ("latency_load", "cdfs", "kv_over_time", "capacity_bars"):
        monkeypatch.setattr(plots, name, lambda *a, _n=name, caption="", **k: captions.setdefault(_n, caption))
    args = ["compare", "--schedulers", "sarathi", "--rates", "1,2", "--seeds", "3", "--n-requests", "20",
            "--jobs", "1", "--out-dir", str(tmp_path), "--no-progress", "--p99-tbt", "0.5"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert set(captions) == {"latency_load", "cdfs", "kv_over_time", "capacity_bars"}
    for caption in captions.values():
        assert "synthetic-sharegpt" in caption and "seeds 3" in caption and "P99 TBT <= 0.5 s" in caption
    capacity = next(line for line in out.splitlines() if line.startswith("capacity"))
    assert "P99 TBT <= 0.5 s" in capacity and "seeds 3" in capacity
    assert out.splitlines()[0].startswith("run: sarathi on synthetic-sharegpt: 20 requests per run, rates 1, 2")


def test_kernels_are_compiled_once_before_the_workers_start(monkeypatch):
    import llmsched_gym.compare.sweep as sweep
    import llmsched_gym.jit_cache as jit
    from llmsched_gym.compare.command import warm_up

    calls = []
    monkeypatch.setattr(sweep, "run_point", lambda spec, s, r, seed: calls.append((s, spec.workload_kwargs)))
    spec = _spec()
    todo = spec.grid()
    monkeypatch.setattr(jit, "uncached_kernel_files", lambda packages=(): [])
    warm_up(spec, todo, jobs=2)
    assert calls == []  # cached: nothing to do
    monkeypatch.setattr(jit, "uncached_kernel_files", lambda packages=(): ["k.py"])
    warm_up(spec, todo, jobs=1)
    assert calls == []  # one process compiles once anyway
    warm_up(spec, todo, jobs=2)
    assert [s for s, _ in calls] == ["sarathi", "vllm-v1"] and all(kw["n_requests"] == 16 for _, kw in calls)
