"""Env -v1 against the schedulers: zero actions are base schedulers; the wrapper scores native runs."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.env.config import RESIDUAL_BASES
from llmsched_gym.env.player import PlayScheduler
from llmsched_gym.env.rewards import make_reward
from llmsched_gym.schedulers import REGISTRY, make_scheduler
from llmsched_gym.simulate import SimulationResult, simulate
from tests.env.conftest import requests_for
from tests.helpers import LinearCost

WORKLOADS = {
    "roomy": (requests_for(40, 1), 5000),
    "kv-pressure": (requests_for(40, 2), 150),
    "idle-gaps": (requests_for(14, 3, span=40.0, prompt=(200, 2000)), 400),
}


def native(name: str, requests: list[Request], blocks: int) -> SimulationResult:
    config = EngineConfig(KVConfig(blocks), recorder=RecorderConfig(iterations=False))
    return simulate(requests, make_scheduler(name), SimulatedRunner(LinearCost()), config)


def play(env: gymnasium.Env, requests: list[Request], action: Any) -> tuple[SimulationResult, float, float]:
    """Run one pinned episode with a constant action; returns the result, the return and the objective."""
    env.reset(seed=0, options={"requests": requests})
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return env.unwrapped.result(), total, info["objective"]


def same_columns(a: SimulationResult, b: SimulationResult) -> list[str]:
    """Columns that differ; ``tbt_sum`` to 1e-9 (stretches cut at other places sum the same gaps in another order)."""
    bad = [k for k in b.columns if k != "tbt_sum" and not np.array_equal(a.columns[k], b.columns[k], equal_nan=True)]
    if not np.allclose(a.columns["tbt_sum"], b.columns["tbt_sum"], rtol=1e-9, atol=0.0):
        bad.append("tbt_sum")
    return bad


def v1_env(mode: str, blocks: int, **kwargs: Any) -> gymnasium.Env:
    ids = {"knobs": "LLMSchedKnobs-v1", "residual": "LLMSchedResidual-v1", "priority": "LLMSchedPriority-v1"}
    return gymnasium.make(f"llmsched_gym/{ids[mode]}", cost_model=LinearCost(), num_blocks=blocks, **kwargs)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("base", sorted(RESIDUAL_BASES))
@pytest.mark.parametrize("mode", ["residual", "priority"])
def test_zero_residual_and_priority_actions_are_the_base_scheduler(mode: str, base: str, workload: str) -> None:
    requests, blocks = WORKLOADS[workload]
    env = v1_env(mode, blocks, base=base)
    result, _, _ = play(env, requests, np.zeros(env.action_space.shape, dtype=np.float32))
    assert not same_columns(result, native(base, requests, blocks))


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_zero_knobs_action_is_sarathi_serve(workload: str) -> None:
    requests, blocks = WORKLOADS[workload]
    env = v1_env("knobs", blocks)
    result, _, _ = play(env, requests, np.zeros(3, dtype=np.int64))
    assert not same_columns(result, native("sarathi", requests, blocks))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_scheduler_played_through_the_wrapper_scores_its_native_run(name: str) -> None:
    requests, blocks = WORKLOADS["kv-pressure"]
    env = PlayScheduler(v1_env("knobs", blocks), name)
    result, total, objective = play(env, requests, None)
    ref = native(name, requests, blocks)
    assert not same_columns(result, ref), name
    goodput = make_reward("goodput").episode_objective(ref)
    assert total == objective == goodput


def test_the_wrapper_applies_the_schedulers_engine_requirements() -> None:
    env = PlayScheduler(v1_env("knobs", 300), "vllm-v1")
    assert env.unwrapped.engine_config.allocation == "on_demand"
    env = PlayScheduler(v1_env("knobs", 300), "mcsf")
    assert env.unwrapped.engine_config.restart_mode == "full"
