"""Property-based tests of the engine's invariants under random workloads and random valid plans."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, REJECTED, RUNNING, WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.costs.roofline import RooflineCostModel
from tests.helpers import LinearCost, make_requests


class RandomScheduler:
    """Random valid plans: random subsets, random chunk sizes, occasional preemptions and idles."""

    name = "random"

    def __init__(self, engine: Engine, rng: np.random.Generator, repeat: bool) -> None:
        self.engine, self.rng, self.repeat = engine, rng, repeat

    def schedule(self, view: EngineView) -> BatchPlan:
        rng = self.rng
        running = view.running.tolist()
        preempt = [r for r in running if rng.random() < 0.05]
        free = view.free_blocks + int(sum(view.blocks[r] for r in preempt))
        tokens: dict[int, int] = {}
        candidates = [r for r in running if r not in preempt] + view.waiting.tolist()
        rng.shuffle(candidates)
        for rid in candidates:
            if rng.random() < 0.3:
                continue  # paused this iteration
            n = int(rng.integers(1, view.pending(rid) + 1))
            need = int(self.engine.blocks_needed(np.array([rid]), np.array([n]))[0])
            if need <= free:
                tokens[rid] = n
                free -= need
        repeat = int(rng.integers(1, 50)) if self.repeat else 1
        wake = view.now + 0.01 if not tokens else None
        return BatchPlan.of(
            tokens, preempt=preempt, wake_at=wake, repeat=repeat, arrival_sensitive=bool(rng.random() < 0.5)
        )


workloads = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 120), st.integers(1, 40)), min_size=1, max_size=25
).map(lambda xs: sorted(xs, key=lambda x: x[0]))


def check_invariants(engine: Engine, last_now: float) -> None:
    t = engine.table
    n = t.n
    held = int(t.blocks[:n].sum())
    assert held + engine.pool.free == engine.pool.total
    assert 0 <= engine.pool.free <= engine.pool.total
    bs = engine.pool.block_size
    run = t.state[:n] == RUNNING
    assert np.all(t.blocks[:n][run] >= -(-t.computed[:n][run] // bs))
    assert np.all(t.blocks[:n][~run] == 0)
    assert np.all(t.emitted[:n] <= t.target[:n])
    assert np.all(t.computed[:n] <= t.prompt[:n] + t.generated[:n])
    assert engine.now >= last_now
    assert engine.n_waiting == int(np.count_nonzero(t.state[:n] == WAITING))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=workloads,
    blocks=st.integers(4, 40),
    block_size=st.sampled_from([1, 4, 16]),
    allocation=st.sampled_from(["prompt", "on_demand"]),
    restart=st.sampled_from(["recompute", "full"]),
    repeat=st.booleans(),
    compiled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_valid_plans_keep_every_invariant(
    specs, blocks, block_size, allocation, restart, repeat, compiled, seed
):
    reqs = make_requests(specs)
    cfg = EngineConfig(
        KVConfig(num_blocks=blocks, block_size=block_size, watermark=0.0),
        allocation=allocation,
        restart_mode=restart,
        max_idle_decisions=100_000,
    )
    cost = RooflineCostModel() if compiled else LinearCost()  # the roofline has a compiled form: fused steps
    engine = Engine(reqs, SimulatedRunner(cost), cfg)
    assert (engine.compiled_cost is not None) == compiled
    sched = RandomScheduler(engine, np.random.default_rng(seed), repeat)
    last = engine.now
    for _ in range(20_000):
        if engine.done:
            break
        plan = sched.schedule(engine.view())
        engine.step(plan)
        check_invariants(engine, last)
        last = engine.now
    assert engine.done
    t = engine.table
    n = t.n
    assert n == len(reqs)
    states = t.state[:n]
    assert np.all((states == FINISHED) | (states == REJECTED))
    fin = states == FINISHED
    assert np.all(t.emitted[:n][fin] == t.target[:n][fin])
    assert np.all(t.generated[:n][fin] == t.target[:n][fin])
    assert np.all(t.finish[:n][fin] >= t.first_token[:n][fin])
    assert np.all(t.first_token[:n][fin] >= t.arrival[:n][fin])
    for rid in np.flatnonzero(states == REJECTED):
        assert t.reject_reason[int(rid)]
    assert engine.pool.free == engine.pool.total
    assert not np.any(states == WAITING)
