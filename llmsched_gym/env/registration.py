"""Gymnasium registration of the versioned environment ids (one per action mode and version)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gymnasium.envs.registration import register, registry

ENTRY_POINT = "llmsched_gym.env.core:LLMSchedEnv"

ENV_IDS: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "llmsched_gym/LLMSchedScores-v0": ("scores", 0),
        "llmsched_gym/LLMSchedKnobs-v0": ("knobs", 0),
        "llmsched_gym/LLMSchedResidual-v1": ("residual", 1),
        "llmsched_gym/LLMSchedPriority-v1": ("priority", 1),
        "llmsched_gym/LLMSchedKnobs-v1": ("knobs", 1),
        "llmsched_gym/LLMSchedScores-v1": ("scores", 1),
    }
)
"""Registered ids and their ``(action mode, version)``."""


def register_envs() -> None:
    """Register every id in :data:`ENV_IDS` with Gymnasium (idempotent).

    Called when :mod:`llmsched_gym.env` is imported, so ``import llmsched_gym.env`` is enough before
    ``gymnasium.make("llmsched_gym/LLMSchedResidual-v1")``; ``gymnasium.make("llmsched_gym.env:llmsched_gym/...")``
    imports it on the fly.
    """
    for env_id, (mode, version) in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=ENTRY_POINT, kwargs={"action_mode": mode, "version": version})
