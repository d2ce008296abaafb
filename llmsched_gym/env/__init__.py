"""The Gymnasium environment of llmsched-gym (see ``docs/env.md``).

Importing this package registers the ids of :data:`ENV_IDS` (``LLMSchedResidual-v1``, ``LLMSchedKnobs-v1``,
``LLMSchedScores-v1`` and the -v0 ids).
The environment classes are imported on first use, so the import itself stays light.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmsched_gym.env.registration import ENV_IDS, register_envs

if TYPE_CHECKING:
    from llmsched_gym.env.config import EnvConfig, ObservationConfig
    from llmsched_gym.env.core import LLMSchedEnv
    from llmsched_gym.env.episodes import WorkloadMix, WorkloadSampler, WorkloadSpec
    from llmsched_gym.env.rewards import make_reward

_LAZY = MappingProxyType(
    {
        "EnvConfig": "llmsched_gym.env.config",
        "ObservationConfig": "llmsched_gym.env.config",
        "LLMSchedEnv": "llmsched_gym.env.core",
        "WorkloadMix": "llmsched_gym.env.episodes",
        "WorkloadSampler": "llmsched_gym.env.episodes",
        "WorkloadSpec": "llmsched_gym.env.episodes",
        "make_reward": "llmsched_gym.env.rewards",
    }
)

__all__ = [
    "ENV_IDS",
    "EnvConfig",
    "LLMSchedEnv",
    "ObservationConfig",
    "WorkloadMix",
    "WorkloadSampler",
    "WorkloadSpec",
    "make_reward",
    "register_envs",
]


def __getattr__(name: str) -> Any:
    """Import the public classes lazily."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmsched_gym.env' has no attribute {name!r}")


register_envs()
