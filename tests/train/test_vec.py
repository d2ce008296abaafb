"""The grouped vectorised environment in worker processes answers what SB3 and sb3-contrib ask of it."""

from __future__ import annotations

import pytest

pytest.importorskip("stable_baselines3")

from train.envs import TaskEnvFactory
from train.vec import GroupedVecEnv


@pytest.mark.parametrize("n_procs", [0, 1])
def test_has_attr_is_answered_in_and_out_of_process(n_procs: int) -> None:  # MaskablePPO asks for action_masks
    venv = GroupedVecEnv([TaskEnvFactory("slo-goodput", "train", "knobs")] * 2, n_procs=n_procs, seed=0)
    try:
        assert venv.has_attr("action_masks") and not venv.has_attr("no_such_attribute")
        venv.reset()
        masks = venv.env_method("action_masks")
        assert len(masks) == 2 and all(m.any() for m in masks)
    finally:
        venv.close()
