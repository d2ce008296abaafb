"""SLAI (spec §7): Eq. 8 deadlines, critical-first decodes, deferral, preemption victims, ordering, offsets."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.slai import SLAI
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.view import EngineView
from llmsched_gym.schedulers import make_scheduler
from tests.baselines.test_sarathi import Spy, assert_all_finished, decode_mask, run
from tests.helpers import LinearCost, make_requests

PAYING = SLOClass("paying", tbt_s=0.03)
FREE = SLOClass("free", tbt_s=0.5)


def engine(specs: list[tuple[float, int, int]], blocks: int = 400, slo: list[SLOClass] | None = None) -> Engine:
    slos: list[SLOClass | None] = list(slo) if slo else [None] * len(specs)
    reqs = [Request(i, a, p, o, slo=s) for i, ((a, p, o), s) in enumerate(zip(specs, slos, strict=True))]
    return Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(blocks, 16, 0.0)))


def mixed_workload(seed: int, n: int = 60) -> list[Request]:
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(0.02, n))
    return [
        Request(i, float(a), int(rng.integers(1, 400)), int(rng.integers(1, 80)), slo=PAYING if i % 3 == 0 else FREE)
        for i, a in enumerate(arr)
    ]


def test_lst_follows_eq8_and_deferred_decode_runs_once_critical():
    e = engine([(0.0, 10, 5), (0.0, 1000, 2)])
    s = SLAI(token_budget=64, fixed_offset=2.0, time_between_tokens=0.2)
    assert s.schedule(e.view()).as_dict() == {0: 10, 1: 54}  # SPF: the short prompt first
    e.step(BatchPlan.of({0: 10, 1: 54}))
    v = e.view()
    end, dur = v.now, v.last_iteration_time
    assert s.schedule(v).as_dict() == {1: 64}  # the paused prefill takes the budget; the decode waits
    assert s.paused_decodes() == [(pytest.approx(end + 0.2 - 2.0 * dur), 0)]
    lst = s.paused_decodes()[0][0]
    while True:
        e.step(BatchPlan.of({1: 64}))
        plan = s.schedule(e.view())
        if 0 in plan.as_dict():
            break
        assert e.now < lst
    assert e.now >= lst and plan.as_dict() == {0: 1, 1: 63}  # critical: before the paused prefill


@pytest.mark.parametrize("blocks", [60, 400])
def test_defers_only_non_critical_decodes_and_respects_limits(blocks):
    budget, cap = 48, 6
    deferred: list[int] = []
    sched = SLAI(token_budget=budget, limit_total_decodes=cap, max_num_seqs=10)

    def check(view: EngineView, plan: BatchPlan) -> None:
        tok = plan.as_dict()
        n_dec = int(decode_mask(view, plan.ids).sum()) if tok else 0
        assert sum(tok.values()) <= budget and n_dec <= cap, "token budget or decode cap exceeded"
        assert view.running.size - len(plan.preempt) + sum(view.state[r] == 1 for r in tok) <= 10
        full = sum(tok.values()) == budget or n_dec == cap
        for lst, rid in sched.paused_decodes():
            assert rid not in tok
            assert lst > view.now or full, f"critical decode {rid} deferred with budget left"
            deferred.append(rid)

    res = run(Spy(sched, check), mixed_workload(0), blocks, ff=False)
    assert_all_finished(res)
    assert deferred, "the workload must make SLAI defer some decodes"


def test_decode_preempts_the_paused_prefill_then_itself():
    e = engine([(0.0, 16, 5), (0.0, 40, 2)], blocks=4)
    s = SLAI(token_budget=32, fcfs=True, fixed_offset=1.0, time_between_tokens=0.001)
    e.step(s.schedule(e.view()))  # {0: 16, 1: 16}: request 1 holds 3 blocks, the pool is full
    plan = s.schedule(e.view())
    assert plan.as_dict() == {0: 1} and plan.preempt == (1,)
    assert s.preempted_prefills == 1

    e = engine([(0.0, 16, 5), (0.0, 16, 5)], blocks=2)
    s = SLAI(token_budget=32, fixed_offset=1.0, time_between_tokens=0.001)
    e.step(s.schedule(e.view()))
    plan = s.schedule(e.view())  # no paused prefill: the first decode preempts itself, never the other
    assert plan.as_dict() == {1: 1} and plan.preempt == (0,)
    assert s.preempted_decodes == 1


@pytest.mark.parametrize(
    ("kwargs", "order"),
    [
        ({}, [3, 2, 1, 0]),
        ({"user_priority": False}, [1, 3, 2, 0]),
        ({"fcfs": True, "user_priority": False}, [0, 1, 2, 3]),
    ],
)
def test_waiting_order(kwargs, order):
    e = engine([(0.0, 300, 2), (0.0, 50, 2), (0.0, 200, 2), (0.0, 100, 2)], slo=[FREE, FREE, PAYING, PAYING])
    assert SLAI(token_budget=2000, **kwargs).schedule(e.view()).ids.tolist() == order


@pytest.mark.parametrize(
    ("kwargs", "offset"),
    [({"memory_limit": 0.01}, 10.0), ({"memory_limit": 1.0}, 5.0), ({"fixed_offset": 3.0, "memory_limit": 0.01}, 3.0)],
)
def test_offset_policy(kwargs, offset):
    e = engine([(0.0, 100, 5)])
    s = SLAI(**kwargs)
    e.step(s.schedule(e.view()))
    s.schedule(e.view())
    assert s.offset == offset


def test_mean_batch_time_and_single_iteration_plans():
    repeats: list[int] = []
    sched = SLAI(token_budget=64)

    def check(view: EngineView, plan: BatchPlan) -> None:
        repeats.append(plan.repeat)

    res = run(Spy(sched, check), make_requests([(0.01 * i, 50 + 7 * i, 10) for i in range(15)]), 200)
    assert_all_finished(res)
    assert set(repeats) == {1}
    durations = np.array([it[1] for it in res.recorder.iterations])
    assert sched.mean_batch_time == pytest.approx(durations[:-1].mean())


@pytest.mark.parametrize("name", ["slai", "slai-fcfs-fixed", "slai-spf-fixed", "slai-spf-dynamic"])
def test_registry_presets_finish_on_tight_pools(name):
    res = run(make_scheduler(name), mixed_workload(1, n=40), 60)
    assert_all_finished(res)


def test_config_validation_and_reset():
    with pytest.raises(ValueError, match="token_budget"):
        SLAI(token_budget=0)
    with pytest.raises(ValueError, match="memory_limit"):
        SLAI(memory_limit=1.5)
    s = SLAI()
    run(s, make_requests([(0.0, 30, 3)]), 50)
    s.reset()
    assert s.mean_batch_time == 0.0 and not s.paused_decodes() and not s._waiting
