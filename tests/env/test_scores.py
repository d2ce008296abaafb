"""Decoding rules of the "scores" action: serve order, hold, pause, preempt, caps, defaults and KV pressure."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.request import Request
from llmsched_gym.env.context import select_slots
from llmsched_gym.env.core import LLMSchedEnv
from tests.helpers import LinearCost


def make(prompts: list[int], *, blocks: int = 1000, slots: int = 4, out: int = 10, **kw: object) -> LLMSchedEnv:
    env = LLMSchedEnv("scores", cost_model=LinearCost(), num_blocks=blocks, slots=slots, **kw)  # type: ignore[arg-type]
    requests = [Request(i, 0.0, p, out) for i, p in enumerate(prompts)]
    env.reset(seed=0, options={"requests": [*requests, Request(len(prompts), 100.0, 16, 2)]})
    return env


def action(
    env: LLMSchedEnv, scores: dict[int, float], level: int = 2, caps: dict[int, float] | None = None
) -> np.ndarray:
    k = env.config.slots
    a = np.zeros(env.action_space.shape, dtype=np.float32)
    a[k + 1 :] = 1.0
    slot = {rid: i for i, rid in enumerate(env.ctx.slots.tolist())}
    for rid, s in scores.items():
        a[slot[rid]] = s
    for rid, c in (caps or {}).items():
        a[k + 1 + slot[rid]] = c
    a[k] = env.decoder.level_value(level)
    return a


def decode(env: LLMSchedEnv, a: np.ndarray) -> BatchPlan:
    return env.decoder.decode(a, env.ctx)


def test_positive_scores_are_served_highest_first_under_the_budget() -> None:
    env = make([100, 100, 100])
    plan = decode(env, action(env, {0: 0.2, 1: 0.9, 2: 0.0}, level=1))  # budget 128
    assert plan.ids.tolist() == [1, 0] and plan.tokens.tolist() == [100, 28]
    plan = decode(env, action(env, {0: 0.2, 1: 0.9, 2: 0.5}, level=0))  # budget 64
    assert plan.ids.tolist() == [1] and plan.tokens.tolist() == [64]


def test_caps_limit_chunks_and_zero_cap_leaves_a_row_out() -> None:
    env = make([300, 300])
    plan = decode(env, action(env, {0: 0.9, 1: 0.5}, level=2, caps={0: -0.5}))  # budget 256, cap 128
    assert plan.as_dict() == {0: 128, 1: 128}
    plan = decode(env, action(env, {0: 0.9, 1: 0.5}, level=2, caps={0: -1.0}))
    assert plan.as_dict() == {1: 256}


def test_hold_pause_and_preempt_thresholds() -> None:
    env = make([32, 32, 32])
    env.step(action(env, {0: 1.0, 1: 0.9, 2: 0.8}, level=2))  # all three prefill and emit token 1
    assert env.ctx.n_run_slots == 3
    plan = decode(env, action(env, {0: 0.5, 1: 0.0, 2: -0.95}))  # serve, pause, preempt
    assert plan.as_dict() == {0: 1}
    assert plan.preempt == (2,)
    plan = decode(env, action(env, {0: 0.5, 1: -0.5, 2: -0.8}, level=2))
    assert plan.preempt == ()


def test_preemption_can_be_disabled() -> None:
    env = make([32, 32], preempt_below=None)
    env.step(action(env, {0: 1.0, 1: 0.9}, level=2))
    assert decode(env, action(env, {0: 1.0, 1: -1.0}, level=2)).preempt == ()


def test_kv_pressure_preempts_the_lowest_score_running_request() -> None:
    env = make([64, 96], blocks=10)  # 4 + 6 blocks: the pool is full after admission
    env.step(action(env, {0: 1.0, 1: 0.9}, level=2))
    assert env.engine.pool.free == 0
    plan = decode(env, action(env, {0: 0.9, 1: 0.0}, level=2))  # request 0 needs a block for its decode
    assert plan.as_dict() == {0: 1} and plan.preempt == (1,)
    plan = decode(env, action(env, {0: 0.9, 1: 0.5}, level=2))  # a served lower-score row is the victim
    assert plan.as_dict() == {0: 1} and plan.preempt == (1,)
    env.step(action(env, {0: 0.9, 1: 0.5}, level=2))
    assert env.engine.table.preemptions[1] == 1


def test_waiting_requests_never_preempt_for_admission() -> None:
    env = make([60, 90, 32], blocks=10, slots=4)  # the running decodes need no new block
    env.step(action(env, {0: 1.0, 1: 0.9, 2: -0.5}, level=2))
    assert env.engine.pool.free == 0
    plan = decode(env, action(env, {0: 0.1, 1: 0.1, 2: 1.0}, level=2))
    assert plan.as_dict() == {0: 1, 1: 1} and plan.preempt == ()


def test_requests_outside_the_slots_follow_the_default() -> None:
    env = make([32, 32, 32, 32], slots=2)  # four waiting: slots show two of them
    assert env.ctx.slots.tolist() == [0, 1]
    plan = decode(env, action(env, {0: 1.0, 1: 1.0}, level=4))
    assert set(plan.as_dict()) == {0, 1}  # waiting requests outside the slots are not admitted
    env.step(action(env, {0: 1.0, 1: 1.0}, level=4))
    assert env.ctx.slots.tolist() == [0, 2]  # one running slot, one kept for the waiting queue
    env.step(action(env, {0: 1.0, 2: 1.0}, level=4))
    env.step(action(env, {0: 1.0, 3: 1.0}, level=4))
    assert env.ctx.running.size == 4 and env.ctx.slots.tolist() == [0, 1]
    plan = decode(env, action(env, {0: 0.0, 1: 1.0}, level=4))
    assert plan.ids.tolist() == [1, 2, 3]  # slot 0 paused; running requests outside the slots decode after


def test_nan_means_hold_and_the_clock_moves_to_the_next_arrival() -> None:
    env = make([32, 32])
    nan = np.full(env.action_space.shape, np.nan, dtype=np.float32)
    assert decode(env, nan).is_idle
    _, _, _, _, info = env.step(nan)
    assert info["time"] == 100.0 and info["tokens"] == 0


def test_a_stalling_action_falls_back_to_the_default_plan() -> None:
    env = LLMSchedEnv("scores", cost_model=LinearCost(), num_blocks=100)
    env.reset(seed=0, options={"requests": [Request(0, 0.0, 40, 3)]})
    hold = np.zeros(env.action_space.shape, dtype=np.float32)
    plan = decode(env, hold)  # nothing left to arrive: idling would stall
    assert plan.as_dict() == {0: 40}


def test_encode_plan_round_trips_and_names_what_it_cannot_express() -> None:
    env = make([300, 200, 100])
    plan = BatchPlan.of({2: 100, 0: 90, 1: 7})
    assert decode(env, env.encode_plan(plan)).as_dict() == plan.as_dict()
    assert decode(env, env.encode_plan(plan)).ids.tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="rejections"):
        env.encode_plan(BatchPlan.of({}, reject=[(0, "no")]))
    big = make([5000, 5000], blocks=2000)
    with pytest.raises(ValueError, match="largest budget level"):
        big.encode_plan(BatchPlan.of({0: 5000, 1: 5000}))
    small = make([32, 32, 32], slots=2)
    with pytest.raises(ValueError, match="outside the observation slots"):
        small.encode_plan(BatchPlan.of({2: 32}))
    nocaps = make([300, 300], chunk_caps=False)
    with pytest.raises(ValueError, match="chunk_caps"):
        nocaps.encode_plan(BatchPlan.of({0: 100, 1: 100}))


def test_select_slots_keeps_room_for_waiting_requests() -> None:
    run, wait = np.arange(40), np.arange(40, 100)
    slots, n_run = select_slots(run, wait, 32)
    assert n_run == 16 and slots.tolist() == list(range(16)) + list(range(40, 56))
    slots, n_run = select_slots(run[:5], wait, 32)
    assert n_run == 5 and slots.size == 32
    slots, n_run = select_slots(run, wait[:3], 32)
    assert n_run == 29 and slots[-3:].tolist() == [40, 41, 42]
