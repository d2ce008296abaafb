"""Run summaries, weighted percentiles, fairness measures and the capacity search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.metrics import per_request, summarize, weighted_percentile
from llmsched_gym.metrics.capacity import SLOCriterion, capacity_search
from llmsched_gym.metrics.fairness import jain_index
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from tests.helpers import LinearCost


def test_weighted_percentile_matches_repeated_samples():
    values = np.array([3.0, 1.0, 2.0])
    weights = np.array([1.0, 5.0, 4.0])
    expanded = np.repeat(values, weights.astype(int))
    for q in (10, 50, 90, 99):
        assert weighted_percentile(values, weights, q) == np.percentile(expanded, q, method="inverted_cdf")
    assert math.isnan(weighted_percentile(np.zeros(0), np.zeros(0), 50))


def test_jain_index_is_one_for_equal_and_one_over_n_for_monopoly():
    assert jain_index(np.array([2.0, 2.0, 2.0])) == pytest.approx(1.0)
    assert jain_index(np.array([6.0, 0.0, 0.0])) == pytest.approx(1 / 3)


def _run(rate_gap: float = 0.05, slo: SLOClass | None = None):
    reqs = [Request(i, i * rate_gap, 100, 10, client=i % 2, slo=slo) for i in range(40)]
    cfg = EngineConfig(KVConfig(500))
    return simulate(reqs, make_scheduler("sarathi"), SimulatedRunner(LinearCost()), cfg)


def test_summary_counts_tokens_and_latencies_consistently():
    res = _run()
    s = summarize(res)
    pr = per_request(res)
    assert s.finished == 40 and s.rejected == 0
    assert np.all(pr["emitted_tokens"] == 10)
    assert np.all(pr["ttft_s"] > 0) and np.all(pr["e2e_s"] >= pr["ttft_s"])
    assert np.all(pr["scheduling_delay_s"] <= pr["ttft_s"])
    assert s.output_tok_per_s == pytest.approx(400 / s.makespan_s)
    assert s.tbt["p50"] <= s.tbt["p99"]
    assert s.fairness is not None and s.fairness.clients == 2
    assert s.fairness.service_per_client == (20 * (100 + 20.0),) * 2


def test_slo_attainment_reflects_tight_and_loose_targets():
    assert summarize(_run(slo=SLOClass("loose", ttft_s=10.0, tbt_s=10.0))).slo_attainment["loose"] == 1.0
    assert summarize(_run(slo=SLOClass("tight", ttft_s=1e-4, tbt_s=1e-4))).slo_attainment["tight"] == 0.0


def test_capacity_search_finds_the_threshold_of_a_monotone_criterion():
    class FakeSummary:
        def __init__(self, rate):
            self.tbt = {"p99": 0.01 * rate}
            self.scheduling_delay = {"p50": 0.0}
            self.ttft = {"p50": 0.0}
            self.slo_attainment = {"all": 1.0}
            self.finished = self.requests = 1

    result = capacity_search(FakeSummary, SLOCriterion(p99_tbt_s=0.05), lo=1.0, hi=2.0, rel_tol=0.001)
    assert result.capacity == pytest.approx(5.0, rel=0.002)
    assert result.trials[0] == (1.0, True)


def test_slo_criterion_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="p99_tbt_s"):
        SLOCriterion(p99_tbt_s=-1.0)


def test_single_client_run_has_samples_but_no_per_client_series():
    from llmsched_gym.metrics.fairness import service_series

    reqs = [Request(i, i * 0.05, 100, 10) for i in range(20)]
    res = simulate(reqs, make_scheduler("sarathi"), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(500)))
    times, service, backlog = service_series(res)
    assert times.size > 0 and service.shape == (times.size, 0) and backlog.shape == (times.size, 0)
    assert summarize(res).fairness is None


def test_no_targets_means_no_attainment_and_no_goodput():
    s = summarize(_run())
    assert s.slo_attainment == {} and math.isnan(s.goodput_req_per_s)


def test_attainment_counts_only_requests_with_targets():
    reqs = [Request(i, i * 0.05, 100, 10, slo=SLOClass("tight", ttft_s=1e-9) if i % 2 else None) for i in range(40)]
    res = simulate(reqs, make_scheduler("sarathi"), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(500)))
    s = summarize(res)
    assert s.slo_attainment == {"all": 0.0, "tight": 0.0}  # the 20 untargeted requests do not count as met
    assert s.goodput_req_per_s == 0.0


def test_min_attainment_without_targets_is_an_error_not_a_pass():
    with pytest.raises(ValueError, match="needs requests with SLO targets"):
        SLOCriterion(min_slo_attainment=0.9).holds(summarize(_run()))


def test_summary_round_trips_through_json():
    import json

    from llmsched_gym.cli.output import jsonable
    from llmsched_gym.metrics.summary import RunSummary

    s = summarize(_run(slo=SLOClass("x", ttft_s=1.0)))
    back = RunSummary.from_dict(json.loads(json.dumps(jsonable(s.as_dict()))))
    assert back.as_dict() == s.as_dict()
    empty = summarize(_run())
    again = RunSummary.from_dict(json.loads(json.dumps(jsonable(empty.as_dict()))))
    assert math.isnan(again.goodput_req_per_s) and again.slo_attainment == {}


def test_rejections_are_grouped_by_reason_with_an_example():
    from llmsched_gym.metrics.rejections import rejection_groups

    reqs = [Request(i, i * 0.1, 4000 if i in (2, 5) else 100, 10) for i in range(8)]
    res = simulate(reqs, make_scheduler("sarathi"), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(100)))
    groups = rejection_groups(res)
    assert [(g.count, g.example_id) for g in groups] == [(2, 2)]
    assert "N" in groups[0].kind and "can never fit" in groups[0].example
