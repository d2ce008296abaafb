"""The fused compiled step and staged arrivals: identical results to the classic path, clear misuse errors."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import RequestTable
from llmsched_gym.costs.roofline import RooflineCostModel
from llmsched_gym.errors import InvalidPlanError, KVCapacityError
from llmsched_gym.schedulers import REGISTRY, make_scheduler
from llmsched_gym.simulate import SimulationResult, run_engine, simulate
from tests.baselines.test_registry import random_workload
from tests.helpers import LinearCost, make_requests

NAMES = sorted(REGISTRY)


def assert_identical(a: SimulationResult, b: SimulationResult) -> None:
    """Every column, the iteration log, the time series and the TBT samples are equal."""
    assert (a.iterations, a.end_time) == (b.iterations, b.end_time)
    for col, arr in b.columns.items():
        np.testing.assert_array_equal(a.columns[col], arr, err_msg=col)
    assert a.reject_reason == b.reject_reason
    assert a.recorder.iterations == b.recorder.iterations
    assert a.recorder.samples == b.recorder.samples
    (va, wa), (vb, wb) = a.recorder.tbt_samples(), b.recorder.tbt_samples()
    order_a, order_b = np.lexsort((wa, va)), np.lexsort((wb, vb))
    np.testing.assert_array_equal(va[order_a], vb[order_b])
    np.testing.assert_array_equal(wa[order_a], wb[order_b])


def run(name: str, compiled: bool, blocks: int, seed: int) -> SimulationResult:
    cfg = EngineConfig(
        KVConfig(blocks, 16, 0.01), compiled=compiled, max_idle_decisions=20_000, recorder=RecorderConfig(sample_dt=0.5)
    )
    runner = SimulatedRunner(RooflineCostModel())
    return simulate(random_workload(seed, n=60), make_scheduler(name), runner, cfg, seed=seed)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("blocks", "seed"), [(60, 1), (400, 2)])
def test_compiled_engine_gives_the_classic_results_for_every_scheduler(name, blocks, seed):
    assert_identical(run(name, True, blocks, seed), run(name, False, blocks, seed))


def test_runner_exposes_the_compiled_form_only_for_models_that_have_one():
    assert SimulatedRunner(RooflineCostModel()).compiled_cost is not None
    assert SimulatedRunner(LinearCost()).compiled_cost is None
    engine = Engine([], SimulatedRunner(RooflineCostModel()), EngineConfig(KVConfig(8), compiled=False))
    assert engine.compiled_cost is None


def _engine(blocks: int = 64) -> Engine:
    reqs = make_requests([(0.0, 40, 3), (0.0, 20, 2), (5.0, 10, 2)])
    return Engine(reqs, SimulatedRunner(RooflineCostModel()), EngineConfig(KVConfig(blocks, 16, 0.0)))


def test_fused_step_hands_invalid_plans_to_the_classic_checks_unchanged():
    engine = _engine()
    engine.view()
    before = engine.table.computed[:2].copy()
    with pytest.raises(InvalidPlanError, match="appears twice"):
        engine.step(BatchPlan(np.array([0, 0]), np.array([1, 1])))
    with pytest.raises(InvalidPlanError, match="asks 99 of 40"):
        engine.step(BatchPlan(np.array([0]), np.array([99])))
    np.testing.assert_array_equal(engine.table.computed[:2], before)


def test_fused_step_hands_kv_shortfalls_to_the_classic_path():
    engine = _engine(blocks=3)
    engine.view()
    with pytest.raises(KVCapacityError, match="needs 5 new blocks but 3 are free"):
        engine.step(BatchPlan.of({0: 40, 1: 20}))
    assert engine.pool.free == 3


def test_staged_requests_stay_invisible_until_they_arrive():
    engine = _engine()
    engine.stage(8)
    t = engine.table
    assert (t.n, t.rows) == (0, 3)
    assert engine.next_arrival_time == 0.0
    assert engine.stage_horizon == float("inf")
    view = engine.view()
    assert view.n_arrived == 2 and not engine.done
    with pytest.raises(InvalidPlanError, match="id 2 has not arrived"):
        engine.step(BatchPlan.of({2: 10}))
    run_engine(engine, make_scheduler("vllm-v1"))
    assert engine.done and engine.next_arrival_time is None
    assert engine.table.finish[2] > 5.0


def test_table_refuses_to_add_past_staged_rows():
    table = RequestTable()
    table.stage(make_requests([(0.0, 5, 1)])[0])
    with pytest.raises(RuntimeError, match="1 staged rows must arrive first"):
        table.add(make_requests([(1.0, 5, 1)])[0])
    assert table.arrive() == 0
    with pytest.raises(RuntimeError, match="no staged row"):
        table.arrive()


@pytest.mark.parametrize("compiled", [True, False])
def test_rejected_plan_loses_no_events_and_is_not_counted(compiled):
    reqs = make_requests([(0.0, 40, 3), (0.0, 20, 2)])
    engine = Engine(reqs, SimulatedRunner(RooflineCostModel()), EngineConfig(KVConfig(64), compiled=compiled))
    assert list(engine.view().arrived) == [0, 1]
    with pytest.raises(InvalidPlanError):
        engine.step(BatchPlan.of({0: 1000}))
    assert list(engine.view().arrived) == [0, 1]
    assert engine.decisions == 0


def test_table_columns_are_rows_of_its_two_arrays_and_survive_growth():
    table = RequestTable(capacity=16)
    reqs = make_requests([(float(i), 10 + i, 1 + i % 3) for i in range(40)])
    for r in reqs:
        table.add(r)
    assert table.capacity >= 40
    assert np.shares_memory(table.prompt, table.ints) and np.shares_memory(table.arrival, table.floats)
    np.testing.assert_array_equal(table.prompt[:40], [r.prompt_len for r in reqs])
    np.testing.assert_array_equal(table.arrival[:40], [r.arrival for r in reqs])
    assert np.isnan(table.finish[40:]).all() and (table.mark[40:] == -1).all()
