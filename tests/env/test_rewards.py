"""Each reward's episode return equals its objective computed from the run's final metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from llmsched_gym.env.core import LLMSchedEnv
from llmsched_gym.env.rewards import list_rewards, make_reward
from llmsched_gym.errors import UnknownNameError
from llmsched_gym.metrics.fairness import windowed_service_diff
from llmsched_gym.metrics.summary import per_request, summarize
from llmsched_gym.simulate import SimulationResult
from tests.env.conftest import requests_for
from tests.helpers import LinearCost

REQUESTS = requests_for(40, 9, span=20.0, prompt=(50, 1500), out=200)
REQUESTS[17] = dataclasses.replace(REQUESTS[17], prompt_len=6000)  # never fits 300 blocks: rejected on arrival
WEIGHTS = {"goodput": 1.0, "latency": 0.5, "throughput": 0.01, "fairness": 0.001}


def objective_from_metrics(name: str, res: SimulationResult) -> float:
    """The objectives written from the metrics module's point of view (independent of rewards.py)."""
    if name == "weighted":
        return sum(w * objective_from_metrics(n, res) for n, w in WEIGHTS.items())
    rows = per_request(res)
    if name == "goodput":
        return float(np.count_nonzero(rows["meets_slo"]))
    if name == "latency":
        end = np.where(np.isnan(rows["e2e_s"]), res.end_time - rows["arrival_s"], rows["e2e_s"])
        return -float(end.sum())
    if name == "throughput":
        return float(rows["emitted_tokens"].sum())
    if name == "service_gap":  # VTC's windowed service difference among backlogged clients, over the samples
        dt = res.recorder.config.sample_dt
        assert dt is not None
        return -1e-3 * dt * float(windowed_service_diff(res, 10.0)[1].sum())
    fairness = summarize(res).fairness
    assert fairness is not None
    present = np.unique(rows["client"])
    service = np.asarray(fairness.service_per_client)[present]
    return -float(service.max() - service.min())


def play(env: LLMSchedEnv, policy: Any, seed: int) -> tuple[float, dict[str, Any], bool]:
    env.reset(seed=seed, options={"requests": REQUESTS})
    total, done = 0.0, False
    rng = np.random.default_rng(seed)
    while not done:
        _, reward, terminated, truncated, info = env.step(policy(env, rng))
        total += reward
        done = terminated or truncated
    return total, info, terminated


def serve_all(env: LLMSchedEnv, rng: np.random.Generator) -> np.ndarray:
    action = np.ones(env.action_space.shape, dtype=np.float32)
    action[env.config.slots] = env.decoder.level_value(4)
    return action


def random_action(env: LLMSchedEnv, rng: np.random.Generator) -> np.ndarray:
    return env.action_space.sample()


@pytest.mark.parametrize("name", sorted(list_rewards()))
@pytest.mark.parametrize("mode", ["scores-finished", "scores-random-truncated", "knobs-random-truncated"])
def test_return_equals_objective_from_final_metrics(name: str, mode: str) -> None:
    action_mode = mode.split("-")[0]
    kwargs: dict[str, Any] = {"weights": WEIGHTS} if name == "weighted" else {}
    truncate = mode.endswith("truncated")
    env = LLMSchedEnv(
        action_mode,
        reward=name,
        reward_kwargs=kwargs,
        cost_model=LinearCost(),
        num_blocks=300,
        max_steps=400 if truncate else 100_000,
    )
    env.action_space.seed(1)
    policy = random_action if truncate else serve_all
    total, info, terminated = play(env, policy, 4)
    assert terminated != truncate
    res = env.result()
    expected = objective_from_metrics(name, res)
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert info["objective"] == pytest.approx(expected, rel=1e-9, abs=1e-6)
    if name == "latency" and not truncate:
        assert -total == pytest.approx(summarize(res).e2e["mean"] * (len(REQUESTS) - 1), rel=1e-9)
        assert summarize(res).rejected == 1


def test_latency_integral_is_exact_over_idle_gaps_and_agent_idles() -> None:
    """Arrivals inside an iteration and idle skips: the integral matches a brute-force step function."""
    env = LLMSchedEnv("scores", reward="latency", cost_model=LinearCost(base=0.2), num_blocks=500)
    env.reset(seed=0, options={"requests": REQUESTS})
    rng = np.random.default_rng(3)
    total, done = 0.0, False
    while not done:
        action = env.action_space.sample() if rng.random() < 0.5 else -np.ones(env.action_space.shape, np.float32) * 0.5
        _, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    c = env.result().columns
    grid = np.linspace(0.0, env.result().end_time, 200_001)
    inside = (c["arrival"][:, None] <= grid) & (grid < c["finish"][:, None])
    brute = -np.trapezoid(inside.sum(axis=0), grid)
    assert total == pytest.approx(brute, rel=2e-3)


def test_unknown_reward_and_bad_parameters_are_named() -> None:
    with pytest.raises(UnknownNameError, match="choose one of"):
        make_reward("speed")
    with pytest.raises(ValueError, match="scale"):
        make_reward("latency", scale=-1.0)
    with pytest.raises(ValueError, match="weights"):
        make_reward("weighted", weights={})
