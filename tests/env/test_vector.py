"""The env runs under Gymnasium's Sync/AsyncVectorEnv and Stable-Baselines3's vectorised envs."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from tests.env.conftest import ALL_IDS, SMALL_SPEC, make_env
from tests.helpers import LinearCost


def _factory(env_id: str):  # type: ignore[no-untyped-def]
    return lambda: make_env(env_id, max_steps=25)


@pytest.mark.parametrize("vector_cls", [gymnasium.vector.SyncVectorEnv, gymnasium.vector.AsyncVectorEnv])
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_vector_envs_step_through_episode_ends(env_id: str, vector_cls: type) -> None:
    envs = vector_cls([_factory(env_id), _factory(env_id)])
    obs, infos = envs.reset(seed=[1, 2])
    assert obs.shape == (2, *envs.single_observation_space.shape)
    envs.action_space.seed(0)
    ended = 0
    for _ in range(30):
        obs, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
        assert np.all(np.isfinite(rewards))
        ended += int(np.sum(terminated | truncated))
        if "episode_summary" in infos:
            assert infos["_episode_summary"].any()
    assert ended >= 2  # each env truncated after 25 steps
    envs.close()


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sb3_make_vec_env_with_subprocesses(env_id: str) -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(
        env_id,
        n_envs=2,
        seed=3,
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "fork"},
        env_kwargs={"cost_model": LinearCost(), "workload": SMALL_SPEC, "num_blocks": 3000, "max_steps": 20},
    )
    obs = venv.reset()
    assert obs.shape[0] == 2
    episodes = 0
    for _ in range(25):
        obs, rewards, _, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
        assert np.all(np.isfinite(rewards))
        episodes += sum("episode" in info and "episode_summary" in info for info in infos)
    assert episodes == 2  # Monitor's and the env's end-of-episode info, once per worker
    venv.close()


def test_maskable_ppo_learns_a_few_steps_on_knobs() -> None:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = make_env("llmsched_gym/LLMSchedKnobs-v0", max_steps=64)
    model = MaskablePPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    obs, _ = env.reset(seed=0)
    masks = get_action_masks(env)
    action, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert env.action_space.contains(action)
    env.close()
