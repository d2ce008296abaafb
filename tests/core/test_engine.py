"""Behaviour of the engine: plan validation, preemption, idling, rejection, fast-forward exactness."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, REJECTED, RUNNING, WAITING
from llmsched_gym.errors import InvalidPlanError, KVCapacityError, LivelockError, TraceFormatError
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from tests.helpers import LinearCost, assert_same_columns, make_requests, result_hash


def engine_for(specs, blocks=64, **kw):
    return Engine(make_requests(specs), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(blocks, 16, 0.0), **kw))


def test_prefill_then_decodes_emit_exactly_output_tokens():
    e = engine_for([(0.0, 40, 3)])
    e.view()
    e.step(BatchPlan.of({0: 40}))
    assert e.table.emitted[0] == 1 and e.table.computed[0] == 40
    e.step(BatchPlan.of({0: 1}))
    e.step(BatchPlan.of({0: 1}))
    assert e.table.state[0] == FINISHED and e.table.emitted[0] == 3
    assert e.pool.free == e.pool.total


def test_chunked_prefill_emits_first_token_only_on_last_chunk():
    e = engine_for([(0.0, 40, 2)])
    e.view()
    e.step(BatchPlan.of({0: 16}))
    assert e.table.emitted[0] == 0
    e.step(BatchPlan.of({0: 24}))
    assert e.table.emitted[0] == 1
    assert e.table.first_token[0] == pytest.approx(e.now)


def test_recompute_preemption_reprefills_prompt_plus_generated_without_reemitting():
    e = engine_for([(0.0, 20, 5)])
    e.view()
    e.step(BatchPlan.of({0: 20}))
    e.step(BatchPlan.of({0: 1}))
    assert e.table.generated[0] == 2
    e.step(BatchPlan.of({}, preempt=[0]))
    assert e.table.state[0] == WAITING and e.table.computed[0] == 0 and e.table.blocks[0] == 0
    v = e.view()
    assert v.pending(0) == 22
    e.step(BatchPlan.of({0: 22}))
    assert e.table.emitted[0] == 3 and e.table.preemptions[0] == 1 and e.table.wasted[0] == 21


def test_full_restart_regenerates_without_emitting_until_caught_up():
    e = engine_for([(0.0, 20, 5)], restart_mode="full")
    e.view()
    e.step(BatchPlan.of({0: 20}))
    e.step(BatchPlan.of({0: 1}))
    e.step(BatchPlan.of({}, preempt=[0]))
    assert e.view().pending(0) == 20
    e.step(BatchPlan.of({0: 20}))
    assert e.table.emitted[0] == 2
    e.step(BatchPlan.of({0: 1}))
    assert e.table.emitted[0] == 2 and e.table.generated[0] == 2
    e.step(BatchPlan.of({0: 1}))
    assert e.table.emitted[0] == 3


@pytest.mark.parametrize(
    ("plan", "rule"),
    [
        (BatchPlan.of({5: 1}), "schedule known requests"),
        (BatchPlan.of({0: 0}), "tokens available"),
        (BatchPlan.of({0: 41}), "tokens available"),
        (BatchPlan.of({0: 4}, preempt=[0]), "both preempted and run"),
        (BatchPlan.of({}, preempt=[0]), "preempt only running"),
        (BatchPlan.of({}, reject=[(7, "x")]), "reject known requests"),
    ],
)
def test_invalid_plans_raise_naming_the_rule(plan, rule):
    e = engine_for([(0.0, 40, 2)])
    e.view()
    with pytest.raises(InvalidPlanError, match=rule):
        e.step(plan)


def test_plan_needing_more_blocks_than_free_raises_with_shortfall():
    e = engine_for([(0.0, 40, 2), (0.0, 40, 2)], blocks=4, allocation="on_demand")
    e.view()
    with pytest.raises(KVCapacityError, match="shortfall 2"):
        e.step(BatchPlan.of({0: 40, 1: 40}))


def test_evict_newest_repairs_overflow_lifo():
    e = engine_for([(0.0, 32, 10), (0.0, 32, 10)], blocks=4, overflow="evict_newest")
    e.view()
    e.step(BatchPlan.of({0: 32}))
    e.step(BatchPlan.of({1: 32}))
    e.step(BatchPlan.of({0: 1, 1: 1}))  # both need a third block: 1 (newest) is evicted
    assert e.table.state[1] == WAITING and e.table.preemptions[1] == 1
    assert e.view().evicted == (1,)
    assert e.table.state[0] == RUNNING


def test_idle_plan_skips_to_next_arrival_or_wake_up():
    e = engine_for([(0.0, 10, 1), (5.0, 10, 1)])
    e.view()
    e.step(BatchPlan.of({0: 10}))
    e.step(BatchPlan.idle(wake_at=2.0))
    assert e.now == 2.0
    e.step(BatchPlan.idle())
    assert e.now == 5.0 and e.view().n_arrived == 2


def test_idle_forever_raises_livelock():
    e = engine_for([(0.0, 10, 1)], max_idle_decisions=50)
    e.view()
    with pytest.raises(LivelockError, match="stalled"):
        e.step(BatchPlan.idle())
    with pytest.raises(LivelockError, match="no progress in 51"):
        for _ in range(100):
            e.step(BatchPlan.idle(wake_at=e.now + 1.0))


def test_request_that_can_never_fit_is_rejected_with_reason():
    e = engine_for([(0.0, 2000, 10), (0.0, 10, 1)], blocks=8)
    e.view()
    assert e.table.state[0] == REJECTED
    assert "can never fit" in e.table.reject_reason[0]
    assert e.unfinished == 1


def test_unsorted_arrivals_raise_trace_format_error():
    reqs = [Request(0, 1.0, 10, 1), Request(1, 0.5, 10, 1)]
    engine = Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(64)))
    with pytest.raises(TraceFormatError, match="sorted by arrival"):
        engine.step(BatchPlan.idle())


def _workload(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(0.04, n))
    return make_requests([(float(a), int(rng.integers(1, 700)), int(rng.integers(1, 150))) for a in arr])


@pytest.mark.parametrize("name", ["sarathi", "sarathi-spf", "vllm-v1"])
@pytest.mark.parametrize("blocks", [300, 2000])
def test_fast_forward_matches_step_by_step(name, blocks):
    reqs = _workload(1)
    results = []
    for ff in (True, False):
        cfg = EngineConfig(KVConfig(blocks), fast_forward=ff)
        results.append(simulate(reqs, make_scheduler(name), SimulatedRunner(LinearCost()), cfg))
    fast, slow = results
    assert fast.decisions < slow.decisions
    assert_same_columns(fast, slow)


@pytest.mark.parametrize("name", ["sarathi", "vllm-v1"])
def test_same_seed_gives_identical_results(name):
    cfg = EngineConfig(KVConfig(400))
    hashes = {
        result_hash(simulate(_workload(7), make_scheduler(name), SimulatedRunner(LinearCost()), cfg)) for _ in range(2)
    }
    assert len(hashes) == 1
    other = result_hash(simulate(_workload(8), make_scheduler(name), SimulatedRunner(LinearCost()), cfg))
    assert other not in hashes
