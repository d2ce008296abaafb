"""Episodes: workloads drawn from np_random, pinned by options, trace windows, starts and ends."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.request import Request
from llmsched_gym.env.core import LLMSchedEnv
from llmsched_gym.env.episodes import WorkloadMix, WorkloadSpec
from llmsched_gym.workloads import resolve_trace_file
from tests.helpers import LinearCost

SPECS = (WorkloadSpec(rate=4.0, n_requests=20), WorkloadSpec(name="wait-p512d20", rate=3.0, n_requests=15))


def make(**kw: object) -> LLMSchedEnv:
    kw.setdefault("workload", SPECS)
    return LLMSchedEnv("scores", cost_model=LinearCost(), num_blocks=2000, **kw)  # type: ignore[arg-type]


def test_reset_draws_workload_and_load_from_np_random() -> None:
    env = make(load_range=(0.5, 2.0))
    draws = [env.reset(seed=s)[1] for s in range(12)]
    assert {d["workload"] for d in draws} == {"synthetic-sharegpt", "wait-p512d20"}
    assert all(0.5 <= d["load"] <= 2.0 for d in draws)
    assert env.reset(seed=3)[1] == draws[3]
    env.reset(seed=3)
    first = env.engine.table.prompt[: env.engine.table.n].copy()
    env.reset(seed=3)
    assert np.array_equal(first, env.engine.table.prompt[: env.engine.table.n])


def test_options_pin_the_workload_and_load() -> None:
    env = make()
    _, info = env.reset(seed=0, options={"workload": "wait-p512d20", "load": 1.0})
    assert info == {"workload": "wait-p512d20", "load": 1.0, "requests": 15}
    _, info = env.reset(seed=0, options={"workload": 0})
    assert info["workload"] == "synthetic-sharegpt"
    requests = [Request(0, 1.5, 40, 3), Request(1, 2.0, 40, 3)]
    _, info = env.reset(options={"requests": requests})
    assert info["requests"] == 2 and env.engine.now == 1.5  # the clock starts at the first arrival
    with pytest.raises(ValueError, match="not understood"):
        env.reset(options={"rate": 3})
    with pytest.raises(ValueError, match="configured workloads"):
        env.reset(options={"workload": "nope"})
    with pytest.raises(ValueError, match="load"):
        env.reset(options={"load": -1.0})


def test_idle_skips_keep_the_decision_events_visible() -> None:
    env = make()
    env.reset(options={"requests": [Request(0, 0.0, 16, 1), Request(1, 10.0, 16, 1)]})
    _, _, _, _, info = env.step(np.ones(env.action_space.shape, dtype=np.float32))
    view = env.view()
    assert info["time"] == 10.0 and info["finished"] == 1
    assert view.finished == (0,) and list(view.arrived) == [1]


def test_load_factor_scales_the_arrival_rate() -> None:
    mix = WorkloadMix((WorkloadSpec(rate=2.0, n_requests=400, slo=()),))
    slow = mix.sample(np.random.default_rng(0), load=0.5).requests
    fast = mix.sample(np.random.default_rng(0), load=2.0).requests
    assert slow[-1].arrival / fast[-1].arrival == pytest.approx(4.0, rel=0.3)
    assert all(r.slo is None for r in slow)


def test_predictions_feed_the_predicted_remaining_feature() -> None:
    env = make(workload=WorkloadSpec(rate=4.0, n_requests=10, predict_eps=0.0), slots=4)
    obs, _ = env.reset(seed=0)
    t = env.engine.table
    assert np.array_equal(t.predicted[: t.n], t.target[: t.n])
    names = env.encoder.feature_names()  # type: ignore[attr-defined]
    assert obs[names.index("slot0.predicted_remaining")] > 0.0
    env_plain = make(workload=WorkloadSpec(rate=4.0, n_requests=10), slots=4)
    obs, _ = env_plain.reset(seed=0)
    assert obs[names.index("slot0.predicted_remaining")] == 0.0


def test_empty_workload_terminates_at_once() -> None:
    env = make()
    obs, _ = env.reset(options={"requests": []})
    assert env.observation_space.contains(obs)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated and reward == 0.0 and "episode_summary" in info


def test_time_horizon_truncates() -> None:
    env = make(max_time_s=1.0)
    env.reset(seed=0)
    truncated = terminated = False
    while not (truncated or terminated):
        _, _, terminated, truncated, info = env.step(np.ones(env.action_space.shape, dtype=np.float32))
    assert truncated and info["time"] >= 1.0


def test_trace_window_draws_a_window_of_a_timestamped_trace() -> None:
    try:
        resolve_trace_file("azure2023_AzureLLMInferenceTrace_conv.csv")
    except FileNotFoundError:
        pytest.skip("the Azure 2023 conversation trace is not available")
    spec = WorkloadSpec(name="azure-conv-2023", rate=None, n_requests=None, window_s=60.0)
    mix = WorkloadMix((spec,), load_range=(2.0, 2.0))
    a = mix.sample(np.random.default_rng(0)).requests
    b = mix.sample(np.random.default_rng(1)).requests
    assert a and b and a != b
    assert max(r.arrival for r in a) < 30.0  # a 60 s window at load 2
    assert [r.id for r in a] == list(range(len(a)))
