"""Observation values on a hand-built state: global counts, slot flags and slacks, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.env.core import LLMSchedEnv
from tests.helpers import LinearCost

SLO = SLOClass("s", ttft_s=1.0, tbt_s=0.1)


def features(env: LLMSchedEnv, obs: np.ndarray) -> dict[str, float]:
    return dict(zip(env.encoder.feature_names(), obs.tolist(), strict=True))  # type: ignore[attr-defined]


def test_global_and_slot_features_describe_the_state() -> None:
    env = LLMSchedEnv("scores", cost_model=LinearCost(), num_blocks=100, slots=4)
    requests = [Request(0, 0.0, 64, 5, slo=SLO, client=0), Request(1, 0.0, 32, 5, slo=SLO, client=1)]
    obs, _ = env.reset(seed=0, options={"requests": [*requests, Request(2, 50.0, 16, 1)]})
    f = features(env, obs)
    assert f["waiting_requests"] == pytest.approx(2 / 6) and f["running_requests"] == 0.0
    assert f["kv_utilisation"] == 0.0 and f["arrivals_done"] == 0.0 and f["slo_attainment"] == 1.0
    assert f["slot0.present"] == 1.0 and f["slot0.waiting"] == 1.0 and f["slot2.present"] == 0.0
    assert f["slot0.prompt_len"] == pytest.approx(math.log1p(64) / math.log1p(16384), rel=1e-6)
    assert f["slot0.ttft_slack"] == pytest.approx(1.0 / 2.0, rel=1e-6)  # 1 s of TTFT target left, scale 1 s
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    action[:2] = [1.0, 0.5]
    action[4] = env.decoder.level_value(2)
    action[5:] = 1.0
    obs, *_ = env.step(action)
    f = features(env, obs)
    assert f["running_requests"] == pytest.approx(2 / 6) and f["running_decodes"] == pytest.approx(2 / 6)
    assert f["kv_utilisation"] == pytest.approx(6 / 100, rel=1e-6)  # 4 + 2 blocks hold the two prompts
    assert f["slot0.running"] == 1.0 and f["slot0.decoding"] == 1.0 and f["slot0.remaining_prefill"] == 0.0
    assert -1.0 < f["slot0.tbt_slack"] < 1.0 and f["slot0.blocks_held"] > 0.0
    assert f["slot0.client_service"] != f["slot1.client_service"]  # different clients, different service
    assert env.observation_space.contains(obs)
