"""Configuration and registry errors name the bad value and the fix."""

from __future__ import annotations

import pytest

from llmsched_gym.env.config import EnvConfig, ObservationConfig
from llmsched_gym.env.core import LLMSchedEnv
from llmsched_gym.env.episodes import WorkloadSpec
from llmsched_gym.env.observation import GLOBAL_FEATURES, SLOT_FEATURES
from llmsched_gym.errors import UnknownNameError
from tests.helpers import LinearCost


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slots": 0}, "slots"),
        ({"budget_levels": (512, 256)}, "budget_levels"),
        ({"preempt_below": 0.5}, "preempt_below"),
        ({"deferral_levels": (1.5,)}, "deferral_levels"),
        ({"allocation": "eager"}, "allocation"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_time_s": -1.0}, "max_time_s"),
    ],
)
def test_env_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EnvConfig(**kwargs)  # type: ignore[arg-type]


def test_other_configs_and_registries_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="len_scale"):
        ObservationConfig(len_scale=1)
    with pytest.raises(ValueError, match="rate"):
        WorkloadSpec(rate=-1.0)
    with pytest.raises(UnknownNameError, match="action mode"):
        LLMSchedEnv("dials", cost_model=LinearCost(), num_blocks=10)
    with pytest.raises(UnknownNameError, match="observation"):
        LLMSchedEnv(observation="pixels", cost_model=LinearCost(), num_blocks=10)
    with pytest.raises(TypeError):
        LLMSchedEnv(cost_model=LinearCost(), num_blocks=10, no_such_field=1)


def test_observation_layouts() -> None:
    full = LLMSchedEnv(cost_model=LinearCost(), num_blocks=10, slots=5)
    assert full.observation_space.shape == (len(GLOBAL_FEATURES) + 5 * len(SLOT_FEATURES),)
    assert len(full.encoder.feature_names()) == full.observation_space.shape[0]  # type: ignore[attr-defined]
    small = LLMSchedEnv(observation="global", cost_model=LinearCost(), num_blocks=10)
    assert small.observation_space.shape == (len(GLOBAL_FEATURES),)
    obs, _ = small.reset(seed=0)
    assert small.observation_space.contains(obs)
    nocaps = LLMSchedEnv(cost_model=LinearCost(), num_blocks=10, chunk_caps=False, slots=5)
    assert nocaps.action_space.shape == (6,)
