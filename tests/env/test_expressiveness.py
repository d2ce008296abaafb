"""Driving the "scores" env with ``encode_plan`` of a baseline reproduces the native scheduler exactly.

Every plan is encoded, decoded back and compared row by row (ids, order, tokens, preemptions); at the end every
per-request column of the env's run equals the native run's (bitwise; NaN equals NaN). Workloads keep every
request inside the slots (at most ``K`` requests in the system) and include KV pressure (preemptions) and idle
gaps (the env skips them inside a step).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.env.core import LLMSchedEnv
from llmsched_gym.schedulers import REGISTRY, make_scheduler
from llmsched_gym.simulate import simulate
from tests.env.conftest import requests_for
from tests.helpers import LinearCost

SCHEDULERS = ("sarathi", "slai", "vtc-chunked")
EXTRA = ("vllm-v1", "vllm-v0", "rad", "slai-fcfs-fixed")  # more plan shapes: on-demand KV, whole prompts, tiles

WORKLOADS = {
    "roomy": (requests_for(30, 1), 5000),
    "kv-pressure": (requests_for(30, 2), 120),
    "idle-gaps": (requests_for(12, 3, span=40.0, prompt=(200, 2000)), 400),
    "long-prompts": (requests_for(20, 4, prompt=(600, 3000), out=40), 1500),
}


def _module_of(name: str) -> str:
    return REGISTRY[name].target.partition(":")[0]


def drive_env(name: str, requests: list[Request], blocks: int) -> tuple[dict[str, np.ndarray], int, int]:
    scheduler = make_scheduler(name)
    req = scheduler.requirements
    env = LLMSchedEnv(
        "scores",
        cost_model=LinearCost(),
        num_blocks=blocks,
        allocation=req.allocation or "prompt",
        restart_mode=req.restart_mode or "recompute",
    )
    env.reset(seed=0, options={"requests": requests})
    scheduler.reset(seed=0)
    steps = preemptions = 0
    done = False
    while not done:
        view = env.view()
        plan = scheduler.schedule(view)
        action = env.encode_plan(plan, view)
        decoded = env.decoder.decode(action, env.ctx)
        assert decoded.ids.tolist() == plan.ids.tolist(), f"step {steps}: rows differ"
        assert decoded.tokens.tolist() == plan.tokens.tolist(), f"step {steps}: chunk sizes differ"
        assert sorted(decoded.preempt) == sorted(plan.preempt), f"step {steps}: preemptions differ"
        preemptions += len(plan.preempt)
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        steps += 1
    assert terminated
    return env.result().columns, steps, preemptions


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("name", SCHEDULERS)
def test_encoded_baseline_reproduces_native_results(name: str, workload: str) -> None:
    if importlib.util.find_spec(_module_of(name)) is None:
        pytest.skip(f"{_module_of(name)} (scheduler {name!r}) is not written yet")
    requests, blocks = WORKLOADS[workload]
    env_columns, steps, preemptions = drive_env(name, requests, blocks)
    native = simulate(
        requests,
        make_scheduler(name),
        SimulatedRunner(LinearCost()),
        EngineConfig(KVConfig(blocks), fast_forward=False),
    )
    differing = [k for k in native.columns if not np.array_equal(env_columns[k], native.columns[k], equal_nan=True)]
    assert not differing, f"columns differ after {steps} steps: {differing}"
    assert np.all(native.columns["state"] == 3)
    if workload == "kv-pressure":
        assert preemptions > 0, "the kv-pressure workload should make the scheduler preempt"


@pytest.mark.parametrize("name", EXTRA)
def test_other_baselines_are_expressible_too(name: str) -> None:
    if importlib.util.find_spec(_module_of(name)) is None:
        pytest.skip(f"{_module_of(name)} (scheduler {name!r}) is not written yet")
    requests, blocks = WORKLOADS["kv-pressure"]
    env_columns, _, _ = drive_env(name, requests, blocks)
    native = simulate(
        requests,
        make_scheduler(name),
        SimulatedRunner(LinearCost()),
        EngineConfig(KVConfig(blocks), fast_forward=False),
    )
    assert all(np.array_equal(env_columns[k], native.columns[k], equal_nan=True) for k in native.columns)
