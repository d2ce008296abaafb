"""Every registered scheduler completes random workloads, never mutates the view, and is deterministic."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import COLUMN_NAMES, FINISHED, REJECTED
from llmsched_gym.schedulers import REGISTRY, list_schedulers, make_scheduler
from llmsched_gym.simulate import simulate
from tests.helpers import LinearCost, make_requests, result_hash

NAMES = sorted(REGISTRY)


def random_workload(seed: int, n: int = 40, clients: int = 3):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.05, n))
    specs = [(float(a), int(rng.integers(1, 300)), int(rng.integers(1, 60))) for a in arrivals]
    reqs = make_requests(specs)
    out = []
    for r in reqs:
        c = int(rng.integers(0, clients))
        out.append(
            type(r)(
                r.id,
                r.arrival,
                r.prompt_len,
                r.output_len,
                client=c,
                max_tokens=r.output_len + 20,
                predicted_output_len=r.output_len,
                type_label=int(r.output_len > 30),
            )
        )
    return out


def table_digest(engine: Engine) -> str:
    h = hashlib.sha256()
    t = engine.table
    for name in COLUMN_NAMES:
        h.update(np.ascontiguousarray(getattr(t, name)[: t.n]).tobytes())
    h.update(str((engine.now, engine.pool.free, sorted(engine.running_ids().tolist()))).encode())
    return h.hexdigest()


def test_every_registered_scheduler_has_a_description():
    assert set(list_schedulers()) == set(REGISTRY)
    assert all(desc for desc in list_schedulers().values())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("blocks", "seed"), [(60, 1), (400, 2)])
def test_scheduler_serves_random_workload_without_mutating_the_view(name, blocks, seed):
    sched = make_scheduler(name)
    sched.reset(seed=seed)
    cfg = EngineConfig(KVConfig(blocks, 16, 0.01), max_idle_decisions=20_000).with_requirements(sched.requirements)
    engine = Engine(random_workload(seed), SimulatedRunner(LinearCost()), cfg)
    for _ in range(200_000):
        if engine.done:
            break
        view = engine.view()
        before = table_digest(engine)
        plan = sched.schedule(view)
        assert table_digest(engine) == before, f"{name} mutated engine state while scheduling"
        engine.step(plan)
    assert engine.done, f"{name} did not finish the workload"
    states = engine.table.state[: engine.table.n]
    assert np.all((states == FINISHED) | (states == REJECTED))
    assert engine.pool.free == engine.pool.total


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_is_deterministic(name):
    cfg = EngineConfig(KVConfig(200, 16, 0.01), max_idle_decisions=20_000)
    runs = [
        result_hash(simulate(random_workload(5), make_scheduler(name), SimulatedRunner(LinearCost()), cfg, seed=3))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
