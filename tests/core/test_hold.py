"""A held decision in compiled code equals repeating engine.step with the plan function's plans, event for event."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.sarathi import sarathi_plan
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.rules import WAITING
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.segment import (
    EV_ADMIT,
    EV_ARRIVAL,
    EV_EVICT,
    EV_FINISH,
    EV_FIRST_TOKEN,
    STOP_EVENT,
    STOP_IDLE,
    STOP_LIMIT,
    PlanInput,
    hold,
    specialize,
)
from llmsched_gym.costs.roofline import RooflineCostModel
from llmsched_gym.simulate import result_of
from tests.core.plans import priority_plan
from tests.core.test_fused import assert_identical

KERNELS = {"sarathi": specialize(sarathi_plan), "priority": specialize(priority_plan)}
PLANS = {"sarathi": sarathi_plan, "priority": priority_plan}


def workload(seed: int, n: int = 120, clients: int = 1) -> list[Request]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.02, n))
    lengths = [(int(rng.integers(1, 300)), int(rng.integers(1, 60))) for _ in range(n)]
    return [
        Request(i, float(a), p, o, client=i % clients)
        for i, (a, (p, o)) in enumerate(zip(arrivals, lengths, strict=True))
    ]


def params_of(name: str, n: int, seed: int) -> object:
    if name == "sarathi":
        return (256, 16)
    return (np.random.default_rng(seed + 7).random(n), 384)


def engine_of(reqs, blocks, ff, restart):
    cfg = EngineConfig(
        KVConfig(blocks, 16, 0.01),
        fast_forward=ff,
        restart_mode=restart,
        recorder=RecorderConfig(sample_dt=0.05),
        max_idle_decisions=100_000,
    )
    return Engine(reqs, SimulatedRunner(RooflineCostModel()), cfg)


def reference_hold(engine, plan, params, stop, max_iterations):
    """``engine.step(plan(engine.view()))`` until an event of ``stop`` or the iteration cap: the Python reference."""
    engine.view()
    n0, decisions, iterations, events = engine.table.n, 0, 0, 0
    seen = {k: [] for k in (EV_ADMIT, EV_FINISH, EV_EVICT, EV_FIRST_TOKEN)}
    t, pool = engine.table, engine.pool
    while True:
        view = engine.view()
        waiting = np.flatnonzero(t.state[: t.n] == WAITING)
        kv = (pool.free, pool.total, pool.block_size, engine.prompt_allocation, pool.watermark_blocks)
        inp = PlanInput(view.ints, view.floats, view.state, view.running.copy(), waiting, False, *kv, engine.now)
        out = plan(inp, params)
        if out.ids.size == 0:
            if engine.next_arrival_time is None:
                return STOP_IDLE, events, decisions, iterations, seen, range(n0, t.n)
            engine.step(BatchPlan.idle())
            decisions, events = decisions + 1, EV_ARRIVAL
        else:
            sensitive = bool(out.arrival_sensitive or stop & EV_ARRIVAL)
            repeat = min(int(out.repeat), max_iterations - iterations)
            victims = tuple(out.victims.tolist())
            plan_ = BatchPlan(out.ids, out.tokens, preempt=victims, repeat=repeat, arrival_sensitive=sensitive)
            was_waiting, emitted = t.state[out.ids] == WAITING, t.emitted[out.ids].copy()
            step = engine.step(plan_)
            decisions, iterations = decisions + 1, iterations + step.iterations
            found = {
                EV_EVICT: out.victims.tolist(),
                EV_ADMIT: out.ids[was_waiting].tolist(),
                EV_FINISH: list(step.finished),
                EV_FIRST_TOKEN: out.ids[(emitted == 0) & (t.emitted[out.ids] > 0)].tolist(),
            }
            nxt = engine.next_arrival_time
            events = EV_ARRIVAL if nxt is not None and nxt <= engine.now else 0
            for kind, ids in found.items():
                seen[kind] += ids
                events |= kind if ids else 0
        if events & stop:
            return STOP_EVENT, events, decisions, iterations, seen, range(n0, t.n)
        if iterations >= max_iterations:
            return STOP_LIMIT, events, decisions, iterations, seen, range(n0, t.n)


def run_both(name, seed, blocks, ff, restart, stop, max_iterations, clients=1):
    reqs = workload(seed, clients=clients)
    params = params_of(name, len(reqs), seed)
    fast, slow = engine_of(reqs, blocks, ff, restart), engine_of(reqs, blocks, ff, restart)
    holds = 0
    while not slow.done:
        ref = reference_hold(slow, PLANS[name], params, stop, max_iterations)
        got = hold(fast, KERNELS[name], params, stop=stop, max_iterations=max_iterations)
        seen = {EV_ADMIT: got.admitted, EV_FINISH: got.finished, EV_EVICT: got.evicted, EV_FIRST_TOKEN: got.first_token}
        assert (got.reason, got.events, got.decisions, got.iterations) == ref[:4], f"hold {holds}"
        assert {k: v.tolist() for k, v in seen.items()} == ref[4], f"hold {holds}"
        assert (got.arrived, got.now) == (ref[5], slow.now), f"hold {holds}"
        holds += 1
    assert fast.done
    return result_of(fast, name, 0.0), result_of(slow, name, 0.0), holds


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize("restart", ["recompute", "full"])
@pytest.mark.parametrize(
    ("blocks", "stop", "max_iterations"),
    [
        (60, EV_ARRIVAL | EV_FINISH | EV_FIRST_TOKEN | EV_EVICT, 1 << 30),  # KV pressure: every event ends a hold
        (60, EV_EVICT, 50),  # preemptions end a hold, else every 50 iterations
        (400, EV_FINISH, 1 << 30),  # completions only (arrivals are taken in by the loop)
        (400, 0, 7),  # a fixed number of iterations (stretches cut to fit)
    ],
)
def test_held_decisions_match_the_python_reference(name, ff, restart, blocks, stop, max_iterations):
    fast, slow, holds = run_both(name, 3, blocks, ff, restart, stop, max_iterations)
    assert_identical(fast, slow)
    assert fast.decisions == slow.decisions
    assert holds > 1


def test_priority_packer_preempts_under_kv_pressure():
    fast, _, _ = run_both("priority", 3, 60, True, "recompute", EV_EVICT, 1 << 30)
    assert fast.columns["preemptions"].sum() > 0


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_held_decisions_match_with_several_clients(name):  # per-client time series: samples taken in Python
    fast, slow, _ = run_both(name, 4, 80, True, "recompute", EV_ARRIVAL | EV_FINISH, 1 << 30, clients=3)
    assert_identical(fast, slow)
    assert fast.recorder.client_service
