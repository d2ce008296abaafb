"""The compiled rule plan function makes the Python rule's decision at every iteration."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.segment import PlanInput
from llmsched_gym.env._rule_plan import PLAN_OK, pack_params, rule_plan_fn
from llmsched_gym.env.features import PRIORITY_FEATURES
from llmsched_gym.env.rule import ORDERINGS, RuleParams, RuleQueue, client_service, rule_plan
from tests.env.conftest import requests_for
from tests.helpers import LinearCost


def params_for(kind: str, ordering: str, engine: Engine, rng: np.random.Generator) -> RuleParams:
    o = ORDERINGS.index(ordering)
    if kind == "plain":
        return RuleParams(512, o)
    if kind == "theta":
        return RuleParams(256, o, defer_theta=0.5)
    if kind == "weights":
        w = rng.uniform(-1, 1, len(PRIORITY_FEATURES))
        return RuleParams(384, o, weights=tuple(float(x) for x in w))
    t = engine.table
    ids = [r for r in range(t.n) if t.state[r] in (1, 2)]
    prio = {r: float(rng.uniform(-1, 1)) for r in ids if rng.random() < 0.5}
    deferred = frozenset(r for r in ids if t.state[r] == 2 and rng.random() < 0.3)
    return RuleParams(768, o, deferred=deferred, priority=prio)


@pytest.mark.parametrize("blocks", [5000, 300])
@pytest.mark.parametrize("kind", ["plain", "theta", "weights", "residual"])
@pytest.mark.parametrize("ordering", ORDERINGS)
def test_compiled_rule_equals_the_python_rule_at_every_iteration(ordering: str, kind: str, blocks: int) -> None:
    rng = np.random.default_rng(len(ordering) + blocks)
    requests = requests_for(50, 3, clients=4)
    engine = Engine(requests, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(blocks), fast_forward=False))
    queue = RuleQueue()
    checked = 0
    params = params_for(kind, ordering, engine, rng)
    while not engine.done and checked < 400:
        view = engine.view()
        queue.sync(view)
        if checked % 7 == 0:
            params = params_for(kind, ordering, engine, rng)
        t, pool = engine.table, engine.pool
        waiting = np.array(queue.items, dtype=np.int64)
        kv = (pool.free, pool.total, pool.block_size, engine.prompt_allocation, pool.watermark_blocks)
        inp = PlanInput(t.ints, t.floats, t.state, view.running, waiting, False, *kv, engine.now)
        out = rule_plan_fn(inp, pack_params(params))
        plan = rule_plan(view, queue, params, client_service(view))
        if plan.reject:
            assert out[0] != PLAN_OK
        else:
            assert out[0] == PLAN_OK
            assert out[1].tolist() == plan.ids.tolist() and out[2].tolist() == plan.tokens.tolist()
            assert out[3].tolist() == sorted(plan.preempt)
            assert (out[4], out[5]) == (plan.repeat, plan.arrival_sensitive)
        engine.step(plan)
        checked += 1
    assert checked > 30
