"""The "knobs" action: budget levels, prefill orderings, decode deferral, admission hold and masks."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.env.core import LLMSchedEnv
from llmsched_gym.env.knobs import ORDERINGS
from tests.helpers import LinearCost

SLOW = SLOClass("slow", ttft_s=30.0, tbt_s=10.0)
FAST = SLOClass("fast", ttft_s=0.5, tbt_s=0.05)


def make(requests: list[Request], **kw: object) -> LLMSchedEnv:
    env = LLMSchedEnv("knobs", cost_model=LinearCost(), num_blocks=2000, **kw)  # type: ignore[arg-type]
    env.reset(seed=0, options={"requests": requests})
    return env


def decode(env: LLMSchedEnv, action: list[int]) -> BatchPlan:
    return env.decoder.decode(np.array(action), env.ctx)


WAITING = [
    Request(0, 0.0, 300, 5, client=0, slo=SLOW),
    Request(1, 0.0, 100, 5, client=1, slo=SLOW),
    Request(2, 0.0, 200, 5, client=2, slo=FAST),
]


@pytest.mark.parametrize(("ordering", "first"), [(0, 0), (1, 1), (2, 2), (3, 2)])
def test_each_ordering_picks_its_head(ordering: int, first: int) -> None:
    env = make(WAITING)
    if ORDERINGS[ordering] == "least_service":
        env.tracker.service[:3] = [50.0, 40.0, 10.0]
    plan = decode(env, [0, ordering, 0, 0])  # budget 64: only the head gets tokens
    assert plan.as_dict() == {first: 64}


def test_budget_levels_and_admission_hold() -> None:
    env = make(WAITING)
    assert decode(env, [4, 0, 0, 0]).as_dict() == {0: 300, 1: 100, 2: 112}  # budget 512, FCFS
    env.step(np.array([0, 0, 0, 0]))
    held = decode(env, [4, 0, 0, 1])
    assert held.as_dict() == {0: 300 - 64}  # the partial prefill continues, nothing new is admitted


def test_deferral_puts_decodes_with_slack_after_prefills() -> None:
    env = make([Request(0, 0.0, 32, 50, slo=SLOW), Request(1, 0.0, 32, 50, slo=SLOW), Request(2, 0.5, 400, 5)])
    env.step(np.array([4, 0, 0, 0]))  # both prefill; request 2 arrives later
    while env.ctx.waiting.size == 0:
        env.step(np.array([4, 0, 0, 0]))
    assert decode(env, [0, 0, 0, 0]).as_dict() == {0: 1, 1: 1, 2: 62}
    assert decode(env, [0, 0, 1, 0]).as_dict() == {2: 64}  # deferred decodes get no budget left
    assert decode(env, [1, 0, 1, 0]).as_dict() == {2: 128}


def test_out_of_range_and_non_finite_knobs_are_clipped() -> None:
    env = make(WAITING)
    assert decode(env, [99, -3, 50, 7]).as_dict() == decode(env, [10, 0, 3, 1]).as_dict()
    assert decode(env, [np.nan, np.inf, -np.inf, np.nan]).as_dict() == decode(env, [0, 0, 0, 0]).as_dict()


def test_action_masks_follow_the_state() -> None:
    env = make(WAITING)
    masks = env.action_masks()
    nvec = env.action_space.nvec
    assert masks.shape == (int(nvec.sum()),) and masks.dtype == np.bool_
    assert not masks[-1]  # hold is invalid while nothing is running
    env.step(np.array([4, 0, 0, 0]))
    masks = env.action_masks()
    assert masks[-1]
    n_levels = int(nvec[0])
    assert masks[:n_levels].all()  # a few decodes: every budget level holds them


def test_action_masks_need_knobs_mode() -> None:
    env = LLMSchedEnv("scores", cost_model=LinearCost(), num_blocks=100)
    env.reset(seed=0)
    with pytest.raises(NotImplementedError, match="knobs"):
        env.action_masks()
    knobs = make(WAITING)
    with pytest.raises(NotImplementedError, match="scores"):
        knobs.encode_plan(BatchPlan.idle())
