"""Gymnasium's and Stable-Baselines3's environment checkers pass for every registered id."""

from __future__ import annotations

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

from llmsched_gym.env.core import LLMSchedEnv
from tests.env.conftest import ALL_IDS, SMALL_SPEC


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_and_sb3_checkers_pass(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(env_id, workload=SMALL_SPEC)  # the registered defaults: roofline cost, H100 KV pool
    assert isinstance(env.unwrapped, LLMSchedEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_module_prefixed_id_imports_and_registers(env_id: str) -> None:
    env = gymnasium.make(f"llmsched_gym.env:{env_id}", workload=SMALL_SPEC)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert info["requests"] == SMALL_SPEC.n_requests
    env.close()
