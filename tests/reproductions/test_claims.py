"""The papers' directional claims on small workloads (docs/reproductions.md has the full-size runs).

Each test runs the reproduction scripts' own building blocks at a reduced size and checks a claim that can fail:
an ordering between schedulers, a bound, or a proportion.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmsched_gym.compare.sweep import run_point
from llmsched_gym.workloads.registry import SHAREGPT_FILE, resolve_trace_file
from reproductions import mcsf, sarathi, slai, vtc, wait


def test_sarathi_p99_tbt_meets_the_strict_slo_where_vllm_misses_it():
    """Sarathi-Serve §5.1: at the same load, chunked stall-free batching keeps P99 TBT under the strict SLO."""
    strict = sarathi.slo_seconds()["strict"]
    spec = sarathi.spec_for("synthetic-sharegpt", "strict", ("vllm-v0", "sarathi"), (3.0,), 300)
    tbt = {s: run_point(spec, s, 3.0, 0).summary.tbt["p99"] for s in ("vllm-v0", "sarathi")}
    assert tbt["sarathi"] < strict < tbt["vllm-v0"]


def test_slai_median_ttft_below_sarathi_at_high_load():
    """SLAI: lower median TTFT than Sarathi-Serve near Sarathi's capacity, with every class's tail TBT held."""
    try:
        resolve_trace_file(SHAREGPT_FILE)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    s = slai.run_one(slai.Point("sarathi", 1.6, 250))
    a = slai.run_one(slai.Point("slai", 1.6, 250))
    assert a["median_ttft_s"] < 0.8 * s["median_ttft_s"]
    assert slai.SLAICriterion().holds(a)


def test_vtc_two_client_difference_within_2u_while_fcfs_exceeds_it():
    """VTC Thm 4.4: two backlogged clients stay within 2U under VTC; FCFS's difference grows past it."""
    pool = 2000
    runs = {s: vtc.run_overload(vtc.Backlog(s, 110.0, pool, (30.0, 60.0))) for s in ("vtc", "fcfs-vtc-runtime")}
    bound = vtc.bound_2u(pool, 256)
    assert runs["vtc"]["both_backlogged"] > 0.9
    assert runs["vtc"]["spread"] <= bound
    assert runs["fcfs-vtc-runtime"]["spread"] > bound


def test_weighted_vtc_serves_in_proportion_to_weights():
    """VTC App. B.1: weights 1:2:3:4 give service ≈ 1:2:3:4 among backlogged clients (plain VTC: ≈ equal)."""
    task = vtc.Backlog("vtc-weighted", 60.0, 2000, (30.0,) * 4, (1.0, 2.0, 3.0, 4.0))
    weighted = vtc.run_weighted(task)["share"]
    plain = vtc.run_weighted(dataclasses.replace(task, scheduler="vtc"))["share"]
    np.testing.assert_allclose(weighted, [0.1, 0.2, 0.3, 0.4], atol=0.035)
    np.testing.assert_allclose(plain, [0.25] * 4, atol=0.035)


def _wait_point(label: str, scheduler: str, params: dict, tl: int | None, rate: float, cost: str) -> dict:
    task = wait.Task("t", "wait-p512d20", cost, wait.cost_kwargs(cost), label, scheduler, params, tl, rate, 0, 1000)
    return wait.run_task(task)


def test_wait_beats_vllm_near_the_transition_without_evictions():
    """WAIT §6 (p512d20, A100 roofline): near the transition WAIT's mean latency is below vLLM's; no evictions."""
    w = _wait_point("WAIT", "wait", {}, 42, 21.0, "roofline")
    v = _wait_point("vLLM", *wait.BASELINES["vLLM"], None, 21.0, "roofline")
    assert w["mean_e2e_s"] < 0.8 * v["mean_e2e_s"]
    assert w["evictions"] == 0


def test_wait_stays_stable_past_sarathis_transition_under_affine_kv():
    """Under WAIT's own Eq. 1 model, WAIT's batched prefills keep latency low where Sarathi (τ = 512) saturates."""
    w = _wait_point("WAIT", "wait", {}, 42, 70.0, "affine_kv")
    s = _wait_point("Sarathi", *wait.BASELINES["Sarathi"], None, 70.0, "affine_kv")
    assert w["mean_e2e_s"] < 0.5 * s["mean_e2e_s"]


def test_mcsf_never_overflows_and_beats_mc_benchmark_at_high_load():
    """MC-SF: exact predictions never trigger an eviction, and shortest-first beats arrival order at λ = 50."""
    m = mcsf.run_real(mcsf.RealTask("MC-SF", 50.0, 1000))
    b = mcsf.run_real(mcsf.RealTask("MC-Benchmark", 50.0, 1000))
    assert m["evictions"] == 0
    assert m["mean_e2e_s"] < 0.9 * b["mean_e2e_s"]


@pytest.mark.parametrize("online", [False, True])
def test_mcsf_is_near_the_hindsight_optimum_on_tiny_instances(online):
    """MC-SF §13.5: on tiny unit-time instances its latency is within a few percent of the optimum on average."""
    ratios = [mcsf.run_ratio((seed, 5, online)) for seed in range(8)]
    x = np.array([r["mcsf"] for r in ratios])
    assert x.min() >= 1 - 1e-9
    assert x.mean() < 1.1
    assert x.mean() < np.mean([r["mc-benchmark"] for r in ratios])
