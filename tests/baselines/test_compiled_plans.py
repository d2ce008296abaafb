"""Schedulers with compiled plan functions give their Python path's results in compiled segments, run by run."""

from __future__ import annotations

import pytest

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from tests.baselines.test_sarathi_fused import COSTS, workload
from tests.core.test_fused import assert_identical

COMPILED = ["orca", "sarathi", "vllm-fcfs-threshold", "vllm-v0", "vllm-v1"]


def simulate_both(name, reqs, *, blocks, ff, sample_dt, cost, **kwargs):
    results = []
    for compiled in (True, False):
        cfg = EngineConfig(
            KVConfig(blocks, 16, 0.01),
            fast_forward=ff,
            recorder=RecorderConfig(sample_dt=sample_dt),
            max_idle_decisions=50_000,
        )
        sched = make_scheduler(name, compiled=compiled, **kwargs)
        results.append(simulate(reqs, sched, SimulatedRunner(COSTS[cost]), cfg))
    return results


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize(
    ("blocks", "clients", "sample_dt", "shape", "kwargs"),
    [
        (2000, 1, 0.25, {"prompt": (1, 2000)}, {}),  # plenty of KV: long segments, samples taken in the kernel
        (120, 1, 0.25, {}, {}),  # tight KV: preemptions in compiled code
        (20, 1, None, {}, {}),  # prompts that can never fit: rejected on arrival
        (400, 3, 0.5, {}, {"max_num_seqs": 3}),  # tiny batch cap; several clients: samples taken in Python
        (400, 1, 0.5, {"rate": 500.0, "output": (1, 3)}, {"max_num_seqs": 1}),  # long queue: head refills
        (300, 1, 0.5, {"rate": 2.0}, {}),  # sparse arrivals: idle jumps in compiled code
    ],
)
def test_compiled_segments_match_the_python_path(name, ff, blocks, clients, sample_dt, shape, kwargs):
    reqs = workload(5, 250, clients, **{"rate": 40.0, **shape})
    fast, slow = simulate_both(name, reqs, blocks=blocks, ff=ff, sample_dt=sample_dt, cost="roofline", **kwargs)
    assert_identical(fast, slow)
    assert fast.decisions == slow.decisions


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_segments_match_under_the_profile_cost_model(name):
    reqs = workload(6, 250, 1, rate=60.0)
    assert_identical(*simulate_both(name, reqs, blocks=150, ff=True, sample_dt=0.5, cost="profile"))


@pytest.mark.parametrize("name", COMPILED)
def test_driver_only_with_a_compiled_cost_and_without_token_times(name):
    reqs = workload(0, 5, 1, rate=1.0)
    engine = Engine(reqs, SimulatedRunner(COSTS["roofline"]), EngineConfig(KVConfig(100)))
    assert make_scheduler(name).fused_driver(engine) is not None
    assert make_scheduler(name, compiled=False).fused_driver(engine) is None
    timed = EngineConfig(KVConfig(100), recorder=RecorderConfig(token_times=True))
    assert make_scheduler(name).fused_driver(Engine(reqs, SimulatedRunner(COSTS["roofline"]), timed)) is None
