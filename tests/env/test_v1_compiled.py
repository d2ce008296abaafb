"""The compiled -v1 step (EnvConfig.compiled) plays the same episodes as the Python reference (run_held).

Observations, terminations, events and every integer statistic are equal exactly. Rewards and the float entries of
``info`` are equal to 1e-9 relative: the compiled step integrates requests in the system from per-request arrival
and end times and sums the sampled service gaps once per step, where the reference sums them iteration by
iteration (the same terms in another order).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
import pytest

from llmsched_gym.core.commit import EV_ARRIVAL, EV_EVICT, EV_FINISH, EV_FIRST_TOKEN
from llmsched_gym.costs import make_cost_model
from llmsched_gym.env.events import DecisionEvents
from llmsched_gym.env.held_compiled import stop_mask
from llmsched_gym.tasks import TASKS
from tests.env.conftest import requests_for

MODES = ("residual", "priority", "knobs")
REL = 1e-9
_VOLATILE = ("wall_s",)  # wall-clock time of the run, in the final summary


def actions(env: gymnasium.Env, kind: str, n: int, seed: int) -> list[Any]:
    """``n`` actions: the zero action, or uniform random ones from a seeded generator."""
    space = env.action_space
    rng = np.random.default_rng(seed)
    if kind == "zero":
        return [np.zeros(space.shape, space.dtype)] * n
    if isinstance(space, gymnasium.spaces.MultiDiscrete):
        return [rng.integers(0, space.nvec) for _ in range(n)]
    return [rng.uniform(-1.0, 1.0, space.shape).astype(np.float32) for _ in range(n)]


def episode(env: gymnasium.Env, acts: list[Any], seed: int, options: dict[str, Any] | None = None) -> list[Any]:
    """Every ``(obs, info)`` and step tuple of one episode (or ``len(acts)`` steps)."""
    out: list[Any] = [env.reset(seed=seed, options=options)]
    for a in acts:
        step = env.step(a)
        out.append(step)
        if step[2] or step[3]:
            break
    return out


def close(a: Any, b: Any) -> bool:
    """Equal, floats to ``REL`` relative (NaN equals NaN), dicts and sequences entry by entry."""
    if isinstance(a, dict):
        keys = set(a) - set(_VOLATILE)
        return keys == set(b) - set(_VOLATILE) and all(close(a[k], b[k]) for k in keys)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)
    return bool(a == b)


def assert_same_episode(fast: list[Any], ref: list[Any]) -> None:
    assert len(fast) == len(ref)
    assert np.array_equal(fast[0][0], ref[0][0]) and fast[0][1] == ref[0][1]
    for i, (f, r) in enumerate(zip(fast[1:], ref[1:], strict=True)):
        assert np.array_equal(f[0], r[0]), f"observation of step {i}"
        assert close(f[1], r[1]), f"reward of step {i}: {f[1]} vs {r[1]}"
        assert (f[2], f[3]) == (r[2], r[3]), f"termination of step {i}"
        assert close(f[4], r[4]), f"info of step {i}"
        assert f[4]["event"] == r[4]["event"] and f[4]["iterations"] == r[4]["iterations"]


@pytest.mark.parametrize("kind", ["zero", "random"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("task", sorted(TASKS))
def test_compiled_step_plays_the_reference_episode_on_every_task(task: str, mode: str, kind: str) -> None:
    fast_env = TASKS[task].make_env("train", mode, compiled=True)
    ref_env = TASKS[task].make_env("train", mode, compiled=False)
    acts = actions(fast_env, kind, 400, seed=11)
    fast, ref = episode(fast_env, acts, seed=5), episode(ref_env, acts, seed=5)
    assert fast[-1][2] or fast[-1][3]
    assert_same_episode(fast, ref)
    counts = fast_env.unwrapped.hold_counts
    assert counts.compiled + counts.handed_back == len(fast) - 1 and counts.python == 0
    assert ref_env.unwrapped.hold_counts.python == len(ref) - 1


@pytest.mark.parametrize("reward", ["latency", "throughput", "fairness", "weighted"])
def test_compiled_step_books_every_reward_like_the_reference(reward: str) -> None:
    task = TASKS["kv-latency"]
    envs = [task.make_env("train", "priority", compiled=c, reward=reward, reward_kwargs={}) for c in (True, False)]
    acts = actions(envs[0], "random", 400, seed=3)
    fast, ref = (episode(env, acts, seed=7) for env in envs)
    assert_same_episode(fast, ref)
    total = sum(s[1] for s in fast[1:])
    assert math.isclose(total, fast[-1][4]["objective"], rel_tol=1e-9, abs_tol=1e-9)


EVENT_SETS = {
    "every-event": DecisionEvents(first_token=True, max_iterations=64),
    "arrival-kv": DecisionEvents(completion=False, kv_shortfall=True, max_iterations=1 << 20),
    "first-token": DecisionEvents(arrival=False, completion=False, kv_shortfall=False, first_token=True),
    "one-iteration": DecisionEvents(max_iterations=1),
}


@pytest.mark.parametrize("events", sorted(EVENT_SETS))
@pytest.mark.parametrize("mode", MODES)
def test_compiled_step_ends_at_the_reference_events(mode: str, events: str) -> None:
    cost = make_cost_model("roofline")
    kwargs = {"cost_model": cost, "num_blocks": 300, "events": EVENT_SETS[events], "reward": "weighted"}
    ids = {"knobs": "LLMSchedKnobs-v1", "residual": "LLMSchedResidual-v1", "priority": "LLMSchedPriority-v1"}
    envs = [gymnasium.make(f"llmsched_gym/{ids[mode]}", compiled=c, **kwargs) for c in (True, False)]
    options = {"requests": requests_for(60, 4, span=3.0, clients=3)}
    acts = actions(envs[0], "random", 3000, seed=1)
    fast, ref = (episode(env, acts, seed=0, options=options) for env in envs)
    assert_same_episode(fast, ref)
    assert fast[-1][2]
    assert len({s[4]["event"] for s in fast[1:]}) > 1


def test_decision_events_map_to_the_loops_stop_bits() -> None:
    assert stop_mask(DecisionEvents()) == EV_ARRIVAL | EV_FINISH | EV_EVICT
    assert stop_mask(DecisionEvents(False, False, True, False)) == EV_FIRST_TOKEN
    assert stop_mask(TASKS["slo-goodput"].make_env("train").unwrapped.config.events) == 0


def test_cost_models_without_a_compiled_form_hold_in_python() -> None:
    from tests.helpers import LinearCost

    env = gymnasium.make("llmsched_gym/LLMSchedKnobs-v1", cost_model=LinearCost(), num_blocks=400)
    env.reset(seed=0, options={"requests": requests_for(20, 2)})
    env.step(np.zeros(3, np.int64))
    counts = env.unwrapped.hold_counts
    assert (counts.compiled, counts.handed_back, counts.python) == (0, 0, 1)


def test_scores_decisions_hold_in_python() -> None:
    env = TASKS["slo-goodput"].make_env("train", "scores")
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))
    assert env.unwrapped.hold_counts.python == 1 and env.unwrapped.hold_counts.compiled == 0
