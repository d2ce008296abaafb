"""Random, NaN, infinite and out-of-range actions never crash or corrupt the engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched_gym.env.core import LLMSchedEnv
from tests.env.conftest import check_engine_invariants, requests_for
from tests.helpers import LinearCost

SPECIAL = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 1.0, -1.0, -0.9, 2.5, -7.0])


def wild_action(env: LLMSchedEnv, rng: np.random.Generator) -> np.ndarray:
    """An action of the right shape drawn from normal, special and out-of-range values."""
    shape = env.action_space.shape
    kind = rng.integers(4)
    if kind == 0:
        return env.action_space.sample()
    if kind == 1:
        return rng.choice(SPECIAL, size=shape)
    if kind == 2:
        return rng.normal(0.0, 5.0, size=shape)
    return rng.integers(-10, 20, size=shape).astype(np.float64)


def run_wild(mode: str, seed: int, slots: int, blocks: int, steps: int) -> None:
    env = LLMSchedEnv(mode, cost_model=LinearCost(), slots=slots, num_blocks=blocks, reward="weighted")
    env.action_space.seed(seed)
    requests = requests_for(40, seed, span=5.0, prompt=(16, 1200), out=150)
    obs, _ = env.reset(seed=seed, options={"requests": requests})
    rng = np.random.default_rng(seed)
    now = 0.0
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(wild_action(env, rng))
        now = check_engine_invariants(env, now)
        assert env.observation_space.contains(obs)
        assert np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset(options={"requests": requests})
            now = 0.0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["scores", "knobs"]),
    seed=st.integers(0, 2**16),
    slots=st.sampled_from([1, 4, 32]),
    blocks=st.integers(80, 600),
)
def test_wild_actions_keep_engine_invariants(mode: str, seed: int, slots: int, blocks: int) -> None:
    run_wild(mode, seed, slots, blocks, steps=150)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=9, max_size=9))
def test_any_float_vector_decodes_to_a_valid_plan(values: list[float]) -> None:
    env = LLMSchedEnv("scores", cost_model=LinearCost(), slots=4, num_blocks=120)
    env.reset(seed=1, options={"requests": requests_for(12, 1, span=0.5)})
    for _ in range(5):
        env.step(np.ones(9, dtype=np.float32))  # get some requests running
    now = check_engine_invariants(env, 0.0)
    for _ in range(3):
        env.step(np.asarray(values, dtype=np.float32))
        now = check_engine_invariants(env, now)


@pytest.mark.parametrize("mode", ["scores", "knobs"])
def test_wrong_shape_is_a_clear_error_and_leaves_the_env_usable(mode: str) -> None:
    env = LLMSchedEnv(mode, cost_model=LinearCost(), num_blocks=500)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected"):
        env.step(np.zeros(3))
    env.step(env.action_space.sample())
    check_engine_invariants(env, 0.0)
