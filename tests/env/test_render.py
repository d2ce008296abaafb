"""Render modes: an ANSI dashboard and an RGB picture (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.env.core import LLMSchedEnv
from tests.env.conftest import ALL_IDS, make_env
from tests.helpers import LinearCost


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_ansi_dashboard_describes_the_state(env_id: str) -> None:
    env = make_env(env_id, render_mode="ansi")
    env.reset(seed=0)
    for _ in range(20):
        env.step(env.action_space.sample())
    text = env.render()
    assert isinstance(text, str)
    assert "KV [" in text and "waiting=" in text and "slot" in text
    env.close()


def test_rgb_picture_has_the_declared_shape_and_shows_kv_use() -> None:
    env = make_env(render_mode="rgb_array", slots=8)
    env.reset(seed=0)
    before = env.render()
    for _ in range(30):
        env.step(np.ones(env.action_space.shape, dtype=np.float32))
    after = env.render()
    assert before.shape == after.shape == (16 + 6 * 8 + 16, 256, 3)
    assert after.dtype == np.uint8
    assert not np.array_equal(before, after)


def test_no_render_mode_renders_nothing_and_bad_mode_is_refused() -> None:
    env = make_env()
    env.reset(seed=0)
    assert env.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        LLMSchedEnv(render_mode="human", cost_model=LinearCost())
