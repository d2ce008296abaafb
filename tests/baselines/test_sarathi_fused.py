"""Sarathi-Serve's compiled segments reproduce the pure Python path exactly."""

from __future__ import annotations

import numpy as np
import pytest

import baselines.sarathi as sarathi_module
from baselines.sarathi import SarathiServe
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.costs.profile import ProfileCostModel
from llmsched_gym.costs.profile_fit import FittedParams
from llmsched_gym.costs.roofline import RooflineCostModel
from llmsched_gym.simulate import simulate
from tests.core.test_fused import assert_identical

COSTS = {
    "roofline": RooflineCostModel(),
    "profile": ProfileCostModel(FittedParams(16, 128, 4e-3, 2e-6, 3e-12, 1e-9, 5e-6, 2e-8)),
}


def workload(seed: int, n: int, clients: int, rate: float, prompt=(1, 400), output=(1, 120)) -> list[Request]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    return [
        Request(i, float(a), int(rng.integers(*prompt)), int(rng.integers(*output)), client=int(rng.integers(clients)))
        for i, a in enumerate(arrivals)
    ]


def simulate_both(reqs, *, blocks, max_num_seqs, ff, sample_dt, cost, counter=None):
    results = []
    for compiled in (True, False):
        cfg = EngineConfig(
            KVConfig(blocks, 16, 0.01),
            fast_forward=ff,
            compiled=compiled,
            recorder=RecorderConfig(sample_dt=sample_dt),
            max_idle_decisions=50_000,
        )
        sched = SarathiServe(chunk_size=256, max_num_seqs=max_num_seqs, compiled=compiled)
        results.append((simulate(reqs, sched, SimulatedRunner(COSTS[cost]), cfg), sched.budget_overruns))
    return results


@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize("cost", sorted(COSTS))
@pytest.mark.parametrize(
    ("blocks", "max_num_seqs", "clients", "sample_dt", "shape"),
    [
        (2000, 64, 1, 0.25, {"prompt": (1, 2000)}),  # plenty of KV: long segments, samples taken in the kernel
        (120, 16, 1, 0.25, {}),  # tight KV: preemptions go through the Python path
        (20, 8, 1, None, {}),  # prompts that can never fit: rejected on arrival, between segments
        (400, 3, 3, 0.5, {}),  # tiny batch cap; several clients: samples taken in Python
        (400, 1, 1, 0.5, {"rate": 500.0, "output": (1, 3)}),  # long queue of short requests: head refills
        (6000, 512, 1, 0.1, {"rate": 400.0, "prompt": (1, 30), "output": (100, 300)}),  # cap above the budget
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_segments_match_the_python_path(ff, cost, blocks, max_num_seqs, clients, sample_dt, shape, seed):
    reqs = workload(seed, 300, clients, **{"rate": 40.0, **shape})
    (fast, over_fast), (slow, over_slow) = simulate_both(
        reqs, blocks=blocks, max_num_seqs=max_num_seqs, ff=ff, sample_dt=sample_dt, cost=cost
    )
    assert_identical(fast, slow)
    assert fast.decisions == slow.decisions
    assert over_fast == over_slow


def test_segments_are_used_and_cover_most_decisions(monkeypatch):
    calls = []
    original = sarathi_module.SEGMENT

    def counting(*args):
        out = original(*args)
        calls.append(out.decisions)
        return out

    monkeypatch.setattr(sarathi_module, "SEGMENT", counting)
    reqs = workload(3, 400, 1, rate=30.0)
    (fast, _), _ = simulate_both(reqs, blocks=2000, max_num_seqs=64, ff=True, sample_dt=1.0, cost="roofline")
    assert sum(calls) >= 0.95 * fast.decisions
    assert len(calls) < fast.decisions / 5


def test_no_driver_without_a_compiled_cost_or_with_token_times():
    reqs = workload(0, 5, 1, rate=1.0)
    sched = SarathiServe()
    for runner_cost, recorder in [(None, RecorderConfig()), (COSTS["roofline"], RecorderConfig(token_times=True))]:
        runner = SimulatedRunner(runner_cost or ProfileCostModel(FittedParams(0, 0, 1e-2, 0, 0, 0, 0, 0)))
        cfg = EngineConfig(KVConfig(100), compiled=runner_cost is not None, recorder=recorder)
        assert sched.fused_driver(Engine(reqs, runner, cfg)) is None
    assert SarathiServe(order="spf").fused_driver(Engine(reqs, SimulatedRunner(COSTS["roofline"]), cfg)) is None
