"""Nested WAIT (spec §11): calibrated/fluid/code thresholds, blindness to true lengths, LIFO repair, release."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from baselines._nested_plan import theta_root
from baselines.nested_wait import NestedWAIT, NestedWAITConfig, build_plan
from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.simulate import simulate
from tests.helpers import LinearCost, make_requests, result_hash


class UnitCost:
    """Every iteration takes 1 s."""

    def iteration_time(self, batch: BatchSummary) -> float:
        return 1.0

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        return np.ones(k)


class BlindView:
    """The engine view with the true output length made unreadable."""

    def __init__(self, view: EngineView) -> None:
        self._view = view

    def __getattr__(self, name: str) -> object:
        if name.startswith("oracle"):
            raise AssertionError(f"Nested WAIT read the true output length through view.{name}")
        return getattr(self._view, name)


def workload(seed: int, n: int = 40) -> list[Request]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.05, n))
    return [Request(i, float(a), int(rng.integers(1, 300)), int(rng.integers(1, 90))) for i, a in enumerate(arrivals)]


def drive_blind(reqs: list[Request], sched: NestedWAIT, blocks: int) -> Engine:
    sched.reset(seed=0)
    cfg = EngineConfig(KVConfig(blocks, 16, 0.0), max_idle_decisions=50_000).with_requirements(sched.requirements)
    engine = Engine(reqs, SimulatedRunner(LinearCost()), cfg)
    for _ in range(200_000):
        if engine.done:
            break
        engine.step(sched.schedule(BlindView(engine.view())))  # type: ignore[arg-type]
    return engine


DIST = ((10, 0.5), (30, 0.5))


# ---- thresholds ----------------------------------------------------------------------------
def test_calibrated_reproduces_the_paper_example():
    # WAIT §6.1: segments 1–20 and 21–50, continuation 0.3, tl = 30: 20 n1 + 30 n2 = 30, n2 = 0.3 n1 -> 21 and 9.
    cfg = NestedWAITConfig(tl=30, boundaries=(20, 50), output_dist=((20, 0.7), (50, 0.3)), eta=0.0)
    plan = build_plan(cfg)
    assert plan.p == pytest.approx((0.3,))
    assert plan.n == pytest.approx((30 / 29, 9 / 29))
    assert plan.budgets == (21, 9)
    assert plan.caps[0] == (1,) * 19 + (2,)  # 21 over 20 stages, the extra unit on the last stage
    assert plan.caps[1] == (1,) * 30  # 9 over 30 stages, clamped to >= 1
    assert plan.gates == (1, 1)


def test_stage_caps_never_decrease_inside_a_segment():
    cfg = NestedWAITConfig(tl=45, boundaries=(20, 50), output_dist=((20, 0.7), (50, 0.3)), eta=0.0)
    for caps in build_plan(cfg).caps:
        assert all(a <= b for a, b in pairwise(caps))


def test_equal_width_segments_and_uniform_default():
    cfg = NestedWAITConfig(num_segments=3, horizon=90)
    assert cfg.bounds() == (30, 60, 90)
    assert cfg.survival(30) == pytest.approx(2 / 3)
    assert NestedWAITConfig().bounds() == (171, 341, 512)
    assert build_plan(NestedWAITConfig(num_segments=2, horizon=10)).p == pytest.approx((0.5,))


def test_code_variant_budgets_by_hand():
    # Λ = (1, 0.5), δ = (10, 20): L_k = 40·δΛ/20 = (20, 20), n = (ceil(20/10), ceil(20/20)) = (2, 1).
    plan = build_plan(NestedWAITConfig(thresholds="code", tl=40, boundaries=(10, 30), output_dist=DIST))
    assert plan.budgets == (20, 20) and plan.remain
    assert plan.caps == ((2,) * 10, (1,) * 20)
    assert plan.gates == (0, 1)


def test_fluid_mode_by_hand():
    # q = 0.5 + 0.1, W = 25·11 + 0.6·(20 + 20.5)·20 = 761, n1 = 1.1·Λ d0 / (1 − Λ d1 W).
    kw: dict[str, Any] = {
        "boundaries": (10, 30),
        "output_dist": DIST,
        "eta": 0.1,
        "d0": 0.01,
        "d1": 1e-4,
        "prompt_len": 20,
    }
    plan = build_plan(NestedWAITConfig(thresholds="fluid", arrival_rate=2.0, **kw), capacity_tokens=1e6)
    n1 = 1.1 * 2 * 0.01 / (1 - 2 * 1e-4 * 761)
    assert plan.n == pytest.approx((n1, 0.6 * n1))
    with pytest.raises(ValueError, match="no stable thresholds"):
        build_plan(NestedWAITConfig(thresholds="fluid", arrival_rate=20.0, **kw), capacity_tokens=1e6)
    with pytest.raises(ValueError, match="exceeds C=10"):
        build_plan(NestedWAITConfig(thresholds="fluid", arrival_rate=2.0, **kw), capacity_tokens=10)
    with pytest.raises(ValueError, match=r"p_2=0\.5 < n_2/n_1=0\.5"):
        build_plan(NestedWAITConfig(thresholds="fluid", arrival_rate=2.0, **{**kw, "eta": 0.0}), capacity_tokens=1e6)


def test_buffer_check_eq14():
    sched = NestedWAIT(tl=40, boundaries=(10, 30), output_dist=DIST, d0=0.05, prompt_len=20)
    plan = sched.plan
    assert plan is not None
    n1, n2 = plan.n
    theta = theta_root(n1, n2, 0.5)
    assert -theta * n2 + n1 * math.log(0.5 + 0.5 * math.exp(theta)) == pytest.approx(0.0, abs=1e-9)
    m_pi = n1 * 25 * 11 + n2 * 40.5 * 20
    need = m_pi + 30 * (n2 + math.log(2 * (1 + 100 / 0.05) / 0.01) / theta)
    assert sched.buffer_check(1e6, 100.0, 0.01) == pytest.approx(need)
    assert sched.buffer_check(1e6, 100.0, 0.1) < need
    with pytest.raises(ValueError, match="required"):
        sched.buffer_check(need - 1, 100.0, 0.01)
    with pytest.raises(ValueError, match="needs d0"):
        NestedWAIT().buffer_check(1e6, 100.0, 0.01)


# ---- behaviour -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["calibrated", "code", "fluid"])
@pytest.mark.parametrize(("blocks", "restart"), [(60, "full"), (60, "recompute"), (400, "recompute")])
def test_never_reads_true_lengths_and_finishes(mode, blocks, restart):
    kw: dict[str, object] = {"thresholds": mode, "horizon": 90, "restart_mode": restart}
    if mode == "fluid":
        kw.update(d0=0.01, d1=1e-7, arrival_rate=20.0, prompt_len=300, capacity_tokens=10**6)
    engine = drive_blind(workload(11), NestedWAIT(**kw), blocks)  # type: ignore[arg-type]
    assert engine.done
    assert np.all(engine.table.state[: engine.table.n] == FINISHED)


def test_lifo_repair_evicts_the_newest_unselected_boundary_resident():
    reqs = make_requests([(0.0, 16, 50)] * 4)
    engine = Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(8, 16, 0.0), overflow="evict_newest"))
    engine.view()
    engine.step(BatchPlan.of({0: 16, 1: 16, 2: 16}))  # three residents at g = 1, one block each
    # Segments [0, 1) and [1, 50); caps 1 per stage; C = 4 blocks.
    sched = NestedWAIT(tl=50, boundaries=(1, 50), output_dist=[(50, 1.0)], capacity_tokens=64)
    assert sched.plan is not None and sched.plan.gates == (1, 1)
    sched.reset()
    plan = sched.schedule(engine.view())
    # used 3 + growth of request 0 (1) + admission of request 3 (1) = 5 > 4: evict request 2 (newest, unselected).
    assert plan.as_dict() == {0: 1, 3: 16}
    assert plan.preempt == (2,)
    engine.step(plan)
    assert engine.table.state[2] == WAITING and sched.repairs == 1
    assert not engine.events_evicted  # the engine's fallback was not needed


def test_segment_gate_holds_until_release_timeout():
    # Gate of segment 1 is 2: a lone request waits for the 1-s release.
    reqs = make_requests([(0.0, 16, 8), (5.0, 16, 8)])
    sched = NestedWAIT(tl=20, boundaries=(5, 10), output_dist=[(10, 1.0)])
    assert sched.plan is not None and sched.plan.gates[0] == 2
    res = simulate(reqs, sched, SimulatedRunner(UnitCost()), EngineConfig(KVConfig(100, 16, 0.0)))
    assert res.columns["first_sched"][0] == 1.0
    assert sched.releases >= 1
    assert np.all(res.columns["state"] == FINISHED)


def test_flush_without_timeout():
    reqs = make_requests([(0.0, 16, 8), (0.3, 16, 8), (0.4, 16, 30)])
    sched = NestedWAIT(tl=40, boundaries=(5, 10), output_dist=[(10, 1.0)], release_timeout_s=None)
    res = simulate(reqs, sched, SimulatedRunner(UnitCost()), EngineConfig(KVConfig(100, 16, 0.0)))
    assert res.columns["first_sched"].min() == 0.4  # gate 4 never met: the flush at the last arrival starts all
    assert np.all(res.columns["state"] == FINISHED)  # request 2 runs past the horizon in the last segment


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"thresholds": "x"}, "thresholds='x'"),
        ({"eta": 1.0}, "eta=1.0"),
        ({"boundaries": (5, 5)}, r"boundaries=\(5, 5\)"),
        ({"output_dist": [(0, 1.0)]}, "output_dist"),
        ({"thresholds": "fluid"}, "needs d0"),
        ({"release_timeout_s": -1.0}, "release_timeout_s=-1.0"),
        ({"restart_mode": "none"}, "restart_mode='none'"),
    ],
)
def test_config_errors_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NestedWAIT(**kwargs)


def test_deterministic_and_requirements():
    sched = NestedWAIT(restart_mode="full")
    assert (sched.requirements.overflow, sched.requirements.restart_mode) == ("evict_newest", "full")
    cfg = EngineConfig(KVConfig(60, 16, 0.0))
    hashes = {result_hash(simulate(workload(2), sched, SimulatedRunner(LinearCost()), cfg)) for _ in range(2)}
    assert len(hashes) == 1
