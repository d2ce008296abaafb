"""Sarathi-Serve (spec §6): decode-first hybrid batches, budget, watermark, preemption, SPF, dynamic chunking."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from baselines._queue import decode_block_needs
from baselines.sarathi import SarathiConfig, SarathiServe
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import Scheduler
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import SimulationResult, simulate
from tests.helpers import LinearCost, assert_same_columns, make_requests

Check = Callable[[EngineView, BatchPlan], None]


class Spy:
    """Wraps a scheduler and checks every plan against the view it was made from."""

    def __init__(self, inner: Scheduler, check: Check) -> None:
        self.inner, self.check = inner, check
        self.name, self.requirements = inner.name, inner.requirements

    def reset(self, *, seed: int | None = None) -> None:
        self.inner.reset(seed=seed)

    def schedule(self, view: EngineView) -> BatchPlan:
        plan = self.inner.schedule(view)
        self.check(view, plan)
        return plan


def workload(seed: int, n: int = 80, pmax: int = 600, omax: int = 100, gap: float = 0.03) -> list[Request]:
    rng = np.random.default_rng(seed)
    arr = np.cumsum(rng.exponential(gap, n))
    return make_requests([(float(a), int(rng.integers(1, pmax)), int(rng.integers(1, omax))) for a in arr])


def run(sched: Scheduler, reqs: list[Request], blocks: int, ff: bool = True) -> SimulationResult:
    return simulate(reqs, sched, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(blocks), fast_forward=ff))


def decode_mask(view: EngineView, ids: np.ndarray) -> np.ndarray:
    return (view.pending_array(ids) == 1) & (view.generated[ids] >= 1)


def assert_all_finished(res: SimulationResult) -> None:
    assert np.all(res.columns["state"] == FINISHED)


@pytest.mark.parametrize("blocks", [60, 2000])
def test_decode_first_budget_and_watermark(blocks):
    chunk = 96

    def check(view: EngineView, plan: BatchPlan) -> None:
        tok = plan.as_dict()
        running = view.running
        survivors = running[~np.isin(running, plan.preempt)]
        ready = survivors[decode_mask(view, survivors)]
        assert all(tok.get(int(r)) == 1 for r in ready), "every surviving decode is scheduled first"
        if sum(tok.values()) > chunk:
            assert plan.ids.size == int(decode_mask(view, plan.ids).sum()), "only decodes may overrun"
            overruns.append(1)
        admitted = [r for r in tok if view.state[r] == WAITING]
        if admitted:
            freed = int(view.blocks[list(plan.preempt)].sum()) if plan.preempt else 0
            dec = np.array([r for r in tok if r in set(ready.tolist())], dtype=np.int64)
            need = int(decode_block_needs(view, dec).sum())
            after = view.free_blocks + freed - need - sum(view.admission_blocks(r) for r in admitted)
            assert after >= view.watermark_blocks, "admission broke the watermark"

    overruns: list[int] = []
    sched = SarathiServe(chunk_size=chunk, max_num_seqs=32)
    res = run(Spy(sched, check), workload(0, pmax=400), blocks)
    assert_all_finished(res)
    assert sched.budget_overruns == len(overruns)


def test_preempts_the_youngest_running_request():
    e = Engine(make_requests([(0.0, 16, 5)] * 3), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(3, 16, 0.0)))
    s = SarathiServe()
    e.step(s.schedule(e.view()))  # three whole 16-token prompts fill the three blocks
    plan = s.schedule(e.view())  # every decode now needs a block
    assert plan.as_dict() == {0: 1}
    assert plan.preempt == (2, 1)
    assert list(s.queue.items) == [1, 2]


@pytest.mark.parametrize(("order", "expected"), [("fcfs", {0: 120}), ("spf", {1: 50, 2: 70})])
def test_admission_order(order, expected):
    e = Engine(
        make_requests([(0.0, 300, 2), (0.0, 50, 2), (0.0, 100, 2)]),
        SimulatedRunner(LinearCost()),
        EngineConfig(KVConfig(100)),
    )
    assert SarathiServe(chunk_size=120, order=order).schedule(e.view()).as_dict() == expected


def test_dynamic_chunk_schedule_matches_code_rounding():
    assert SarathiConfig(dynamic_chunking=True, chunk_low=100, chunk_high=1000, chunk_stages=4).chunk_schedule() == (
        992,
        704,
        384,
        96,
    )
    assert SarathiConfig().chunk_schedule() == tuple(range(2048, 0, -128))


def test_dynamic_chunks_shrink_with_progress():
    sched = SarathiServe(dynamic_chunking=True, chunk_low=128, chunk_high=1024, chunk_stages=4, chunk_max_tokens=2048)
    chunks: list[int] = []

    def check(view: EngineView, plan: BatchPlan) -> None:
        chunks.extend(int(n) for n in plan.tokens if n > 1)

    res = run(Spy(sched, check), make_requests([(0.0, 3000, 2)]), 400, ff=False)
    assert_all_finished(res)
    assert chunks[:5] == [1024, 416, 416, 128, 128] and sum(chunks) == 3000


def test_default_is_not_dynamic():
    sched = SarathiServe()
    assert not sched.config.dynamic_chunking and sched._chunks == (512,)


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_size": 0},
        {"order": "lifo"},
        {"chunk_low": 0},
        {"chunk_low": 300, "chunk_high": 200},
        {"chunk_stages": 0},
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError, match="SarathiConfig"):
        SarathiServe(**bad)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("sarathi", {}),
        ("sarathi-spf", {}),
        (
            "sarathi",
            {"dynamic_chunking": True, "chunk_low": 32, "chunk_high": 256, "chunk_stages": 5, "chunk_max_tokens": 600},
        ),
        (
            "sarathi-spf",
            {
                "dynamic_chunking": True,
                "chunk_low": 20,
                "chunk_high": 100,
                "chunk_stages": 3,
                "chunk_max_tokens": 90,
                "max_model_len": 500,
            },
        ),
        ("sarathi", {"tile_align": True, "chunk_size": 100}),
    ],
)
@pytest.mark.parametrize("blocks", [80, 3000])
def test_fast_forward_matches_step_by_step(name, kwargs, blocks):
    reqs = workload(1)
    fast, slow = (run(make_scheduler(name, **kwargs), reqs, blocks, ff) for ff in (True, False))
    assert fast.iterations == slow.iterations
    assert_same_columns(fast, slow)


@pytest.mark.parametrize(("blocks", "seed"), [(40, 3), (120, 4), (3000, 5)])
def test_compiled_fast_path_makes_the_same_plans_as_the_python_path(blocks, seed):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.03, 120))
    reqs = make_requests([(float(a), int(rng.integers(1, 500)), int(rng.integers(1, 80))) for a in arrivals])
    plans = []
    for compiled in (True, False):
        sched = SarathiServe(compiled=compiled)
        sched.reset(seed=0)
        engine = Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(blocks, 16, 0.01)))
        seen = []
        while not engine.done:
            plan = sched.schedule(engine.view())
            seen.append((plan.as_dict(), plan.preempt, plan.repeat, plan.arrival_sensitive))
            engine.step(plan)
        plans.append(seen)
    assert plans[0] == plans[1]
