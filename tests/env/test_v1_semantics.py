"""Env -v1 semantics: events, return == objective, encode_plan, per-class info, priority rules."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.env.events import DecisionEvents
from llmsched_gym.env.features import PRIORITY_FEATURES
from llmsched_gym.env.player import PlayScheduler
from llmsched_gym.schedulers import make_scheduler
from tests.env.conftest import requests_for
from tests.helpers import LinearCost

V1_IDS = (
    "llmsched_gym/LLMSchedResidual-v1",
    "llmsched_gym/LLMSchedPriority-v1",
    "llmsched_gym/LLMSchedKnobs-v1",
    "llmsched_gym/LLMSchedScores-v1",
)


def env_of(env_id: str, blocks: int = 800, **kwargs: Any) -> gymnasium.Env:
    return gymnasium.make(env_id, cost_model=LinearCost(), num_blocks=blocks, **kwargs)


def episode(env: gymnasium.Env, requests: list[Request], seed: int = 0) -> tuple[float, dict[str, Any], list[str]]:
    """A pinned episode with random actions: ``(return, last info, events)``."""
    env.reset(seed=seed, options={"requests": requests})
    env.action_space.seed(seed)
    total, events, done, info = 0.0, [], False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        events.append(info["event"])
        done = terminated or truncated
    return total, info, events


@pytest.mark.parametrize("env_id", V1_IDS)
@pytest.mark.parametrize(
    ("reward", "kwargs", "shaping"),
    [("goodput", {}, None), ("goodput", {}, "ttft"), ("goodput", {"credit": "first_token"}, None),
     ("latency", {}, None), ("throughput", {}, None), ("fairness", {}, None), ("service_gap", {}, None)],
)  # fmt: skip
def test_episode_return_equals_the_objective(
    env_id: str, reward: str, kwargs: dict[str, Any], shaping: str | None
) -> None:
    env = env_of(env_id, reward=reward, reward_kwargs=kwargs, shaping=shaping, sample_dt=0.5)
    total, info, _ = episode(env, requests_for(40, 5))
    assert total == pytest.approx(info["objective"], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("max_steps", [3, 9])
def test_first_token_credit_keeps_the_return_exact_when_truncated(max_steps: int) -> None:
    env = env_of("llmsched_gym/LLMSchedKnobs-v1", reward_kwargs={"credit": "first_token"}, max_steps=max_steps)
    total, info, events = episode(env, requests_for(40, 6))
    assert len(events) == max_steps
    assert total == info["objective"]


def test_shaping_charges_a_missed_ttft_deadline_before_the_request_finishes() -> None:
    slo = SLOClass("tight", ttft_s=0.05, tbt_s=10.0)
    requests = [Request(i, 0.01 * i, 3000, 200, slo=slo) for i in range(12)]  # arrivals end decisions
    env = env_of("llmsched_gym/LLMSchedKnobs-v1", blocks=4000, shaping="ttft")
    env.reset(seed=0, options={"requests": requests})
    rewards, finished = [], 0
    while not finished:
        _, reward, _, _, info = env.step(np.zeros(3, dtype=np.int64))
        rewards.append(reward)
        finished = info["finished"]
    assert min(rewards) < 0.0  # deadlines passed and were charged before any request finished


@pytest.mark.parametrize("env_id", V1_IDS)
def test_default_events_give_tens_to_a_few_hundred_decisions_per_200_requests(env_id: str) -> None:
    _, _, events = episode(env_of(env_id, blocks=3000), requests_for(200, 7, span=60.0))
    assert 20 <= len(events) <= 500
    assert events[-1] == "done"
    assert set(events) <= {"arrival", "completion", "kv_shortfall", "max_iterations", "done"}


def test_each_event_ends_a_decision_only_when_enabled() -> None:
    requests = requests_for(30, 8, span=5.0)
    only_cap = DecisionEvents(arrival=False, completion=False, kv_shortfall=False, max_iterations=7)
    env = env_of("llmsched_gym/LLMSchedKnobs-v1", events=only_cap)
    _, _, events = episode(env, requests)
    assert set(events) <= {"max_iterations", "done"}
    first = DecisionEvents(arrival=False, completion=False, first_token=True, kv_shortfall=False, max_iterations=10**6)
    _, _, events = episode(env_of("llmsched_gym/LLMSchedKnobs-v1", events=first), requests)
    assert set(events) <= {"first_token", "done"} and "first_token" in events


def test_decisions_hold_for_at_most_max_iterations() -> None:
    env = env_of("llmsched_gym/LLMSchedKnobs-v1", events=DecisionEvents(max_iterations=3))
    env.reset(seed=0, options={"requests": requests_for(30, 9)})
    last, done = 0, False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.int64))
        assert info["iterations"] - last <= 3
        last, done = info["iterations"], terminated or truncated


def test_encode_plan_round_trips_with_running_requests_outside_the_slots() -> None:
    env = env_of("llmsched_gym/LLMSchedScores-v1", blocks=6000, slots=4)
    env.reset(seed=0, options={"requests": requests_for(40, 10, span=0.5, prompt=(20, 200), out=300)})
    base = env.unwrapped
    rng = np.random.default_rng(0)
    checked = outside = 0
    for _ in range(60):
        action = rng.uniform(-0.4, 1.0, env.action_space.shape).astype(np.float32)
        action[base.decoder.k + 1 :] = 1.0
        plan = base.decoder.decide(action, base.ctx).plan(base.ctx.view)
        outside += int(base.ctx.running.size > base.ctx.n_run_slots)
        decoded = base.decoder.decide(base.encode_plan(plan), base.ctx).plan(base.ctx.view)
        assert decoded.ids.tolist() == plan.ids.tolist() and decoded.tokens.tolist() == plan.tokens.tolist()
        checked += 1
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert checked > 10 and outside > 5  # the plans really had running requests outside the 4 slots


def test_encode_plan_names_the_request_it_cannot_express() -> None:
    env = env_of("llmsched_gym/LLMSchedScores-v1", blocks=6000, slots=2)
    env.reset(seed=0, options={"requests": requests_for(30, 11, span=0.2, prompt=(20, 100), out=300)})
    base = env.unwrapped
    for _ in range(20):
        env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    running = base.ctx.running
    outside = [r for r in running.tolist() if r not in set(base.ctx.slots.tolist())]
    assert outside
    from llmsched_gym.core.plan import BatchPlan

    plan = BatchPlan.of({outside[0]: 1})  # serving only an outside request is not the default treatment
    with pytest.raises(ValueError, match="outside the slots"):
        base.encode_plan(plan)


def test_slo_classes_are_reported_in_the_order_the_workload_gives_them() -> None:
    from llmsched_gym.env.episodes import WorkloadSpec

    classes = (SLOClass("zeta", ttft_s=1.0, tbt_s=0.1), SLOClass("alpha", ttft_s=2.0, tbt_s=0.5))
    spec = WorkloadSpec(rate=4.0, n_requests=30, slo=classes)
    env = env_of("llmsched_gym/LLMSchedKnobs-v1", workload=spec)
    env.reset(seed=1)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.int64))
        done = terminated or truncated
    assert list(info["slo_classes"]) == ["zeta", "alpha"]
    assert sum(c["finished"] for c in info["slo_classes"].values()) == 30
    assert env.unwrapped.engine.table.slo_names == ["zeta", "alpha"]


def test_priority_weight_on_missed_deadlines_moves_late_requests_to_the_back() -> None:
    slo = SLOClass("c", ttft_s=0.5, tbt_s=10.0)
    early = [Request(i, 0.0, 2000, 50, slo=slo) for i in range(20)]
    late = [Request(20, 0.6, 10, 5, slo=slo)]  # short and on time: SPF already puts it first
    env = env_of("llmsched_gym/LLMSchedPriority-v1", blocks=200, base="sarathi-spf")
    action = np.zeros(len(PRIORITY_FEATURES) + 2, dtype=np.float32)
    action[PRIORITY_FEATURES.index("ttft_missed")] = -1.0
    env.reset(seed=0, options={"requests": early + late})
    while env.unwrapped.engine.now < 0.7:
        env.step(action)
    view = env.unwrapped.ctx.view
    waiting = env.unwrapped.decoder.waiting_order(view, env.unwrapped.tracker.service)
    order = env.unwrapped.decoder.queue.items
    assert waiting.size >= 2 and order
    late_ones = [r for r in waiting.tolist() if view.now > view.arrival[r] + 0.5]
    held = env.unwrapped.decoder.decide(action, env.unwrapped.ctx)
    from llmsched_gym.env.rule import admission_order

    admitted = admission_order(env.unwrapped.decoder.queue, held.params, view, env.unwrapped.tracker.service)
    assert admitted[-len(late_ones) :] == sorted(admitted[-len(late_ones) :], key=admitted.index)
    assert set(admitted[-len(late_ones) :]) == set(late_ones)


def test_baselines_played_in_v1_and_native_agree_for_a_multi_client_fairness_objective() -> None:
    requests = requests_for(40, 12, clients=4)
    env = PlayScheduler(env_of("llmsched_gym/LLMSchedKnobs-v1", reward="service_gap", sample_dt=0.5), "vtc-chunked")
    env.reset(seed=0, options={"requests": requests})
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(None)
        total += reward
        done = terminated or truncated
    assert total == pytest.approx(info["objective"], rel=1e-9)
    assert make_scheduler("vtc-chunked").name == "vtc-chunked"
