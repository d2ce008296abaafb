"""Running a policy on one episode of an environment (evaluation and validation share it)."""

from __future__ import annotations

from typing import Any


def run_policy(env: Any, policy: Any, seed: int, *, deterministic: bool = True) -> float:
    """The episode objective of ``policy`` on the episode ``env.reset(seed=seed)`` draws.

    ``policy`` is anything with SB3's ``predict(obs, deterministic=...)`` (MaskablePPO also gets the env's
    ``action_masks()``); sampled runs (``deterministic=False``) draw from the policy's own generator.
    """
    obs, _ = env.reset(seed=seed)
    masked = _is_maskable(policy)
    while True:
        if masked:
            action, _ = policy.predict(obs, deterministic=deterministic, action_masks=env.unwrapped.action_masks())
        else:
            action, _ = policy.predict(obs, deterministic=deterministic)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            objective: float = info["objective"]
            return objective


def _is_maskable(policy: Any) -> bool:
    try:
        from sb3_contrib import MaskablePPO
    except ImportError:  # pragma: no cover - sb3-contrib is part of the train extra
        return False
    return isinstance(policy, MaskablePPO)
