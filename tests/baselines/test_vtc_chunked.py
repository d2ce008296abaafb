"""VTC ordering on the Sarathi-Serve engine: admission order, per-chunk charges, lift, the 2U bound, weights."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.vtc_chunked import VTCChunked
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate
from tests.baselines.test_vtc import backlogged_service, drive, random_workload, req, sim, two_clients
from tests.helpers import LinearCost, assert_same_columns, result_hash


def test_admission_loop_picks_min_counter_and_counters_move_inside_it():
    reqs = [req(0, 0.0, 64, 4, 0), req(1, 0.0, 64, 4, 0), req(2, 0.0, 64, 4, 0), req(3, 0.0, 64, 4, 1)]
    sched = VTCChunked()
    engine, plans = drive(reqs, sched, KVConfig(256, 16))
    assert list(plans[0].as_dict()) == [0, 3, 1, 2]  # 0 (tie, seen first), 3 (counter 0 < 64), 1 (64 = 64), 2
    assert np.all(engine.table.state[:4] == FINISHED)


def test_one_admission_per_iteration_when_the_budget_is_full():
    reqs = [req(0, 0.0, 64, 4, 0), req(1, 0.0, 64, 4, 0), req(2, 0.0, 64, 4, 0), req(3, 0.0, 64, 4, 1)]
    engine, _ = drive(reqs, VTCChunked(chunk_size=64), KVConfig(256, 16))
    order = np.argsort(engine.table.first_sched[:4], kind="stable")
    assert order.tolist() == [0, 3, 1, 2]


def test_prompt_charged_per_chunk_and_decodes_two_each():
    sched = VTCChunked(chunk_size=40)
    config = EngineConfig(KVConfig(64, 16), fast_forward=False)
    engine = Engine([req(0, 0.0, 100, 4)], SimulatedRunner(LinearCost()), config)
    sched.reset(seed=0)
    seen = []
    while not engine.done:
        plan = sched.schedule(engine.view())
        seen.append((plan.as_dict()[0], sched.counters()[0]))
        engine.step(plan)
    assert seen == [(40, 40.0), (40, 80.0), (20, 100.0), (1, 102.0), (1, 104.0), (1, 106.0)]


@pytest.mark.parametrize("kv", [KVConfig(24, 16), KVConfig(600, 1)])
def test_reprefill_after_preemption_is_not_charged(kv):
    reqs = random_workload(11, n=40)
    sched = VTCChunked(lift="none", weighted=False, chunk_size=128)
    engine, _ = drive([r for r in reqs if r.prompt_len + r.output_len < 300], sched, kv, overflow="error")
    t = engine.table
    assert t.preemptions[: t.n].sum() > 0
    assert np.all(t.state[: t.n] == FINISHED)
    expected = np.bincount(t.client[: t.n], weights=t.prompt[: t.n] + 2.0 * (t.emitted[: t.n] - 1))
    got = sched.counters(engine.view())
    assert got == pytest.approx({c: expected[c] for c in got}, rel=1e-12)


@pytest.mark.parametrize(("lift", "lifted"), [("paper", True), ("code", False), ("none", False)])
def test_lift_from_last_client_when_queue_empty(lift, lifted):
    reqs = [req(0, 0.0, 30, 5, 0), req(1, 5.0, 10, 2, 1)]
    sched = VTCChunked(lift=lift)
    engine, _ = drive(reqs, sched)
    assert sched.counters(engine.view()) == {0: 38.0, 1: (38.0 if lifted else 0.0) + 12.0}


def test_weights_divide_charges_by_default():
    reqs = [req(0, 0.0, 32, 8, 0, weight=1.0), req(1, 0.0, 32, 8, 1, weight=4.0)]
    sched = make_scheduler("vtc-chunked")
    engine, _ = drive(reqs, sched)
    assert sched.counters(engine.view()) == {0: 46.0, 1: 46.0 / 4}


def test_two_client_service_gap_within_2u():
    kv = KVConfig(64, 16)
    two_u = 2 * max(64, 2 * kv.capacity_tokens)
    s0, s1 = backlogged_service(sim(two_clients((20.0, 10.0), 5.0, 64, 64), "vtc-chunked", kv))
    assert s0.size > 50
    assert (s0 - s1).max() - (s0 - s1).min() <= two_u


def test_weighted_service_follows_weights_under_overload():
    reqs = two_clients((1000.0, 1000.0), 0.1, 32, 32, weights=(1.0, 2.0))
    s0, s1 = backlogged_service(sim(reqs, "vtc-chunked", KVConfig(32, 16)))
    assert s1[-1] / s0[-1] == pytest.approx(2.0, rel=0.15)


@pytest.mark.parametrize(("kv", "seed"), [(KVConfig(100, 16), 1), (KVConfig(1000, 1), 2), (KVConfig(3000, 16), 3)])
def test_all_finish_on_random_workloads(kv, seed):
    engine, _ = drive(random_workload(seed, n=60), VTCChunked(), kv, overflow="error")
    assert np.all(engine.table.state[: engine.table.n] == FINISHED)


@pytest.mark.parametrize("kv", [KVConfig(100, 16), KVConfig(2000, 16)])
def test_fast_forward_matches_step_by_step(kv):
    reqs = random_workload(6, n=80)
    fast, slow = (
        simulate(reqs, make_scheduler("vtc-chunked"), SimulatedRunner(LinearCost()), EngineConfig(kv, fast_forward=ff))
        for ff in (True, False)
    )
    assert fast.iterations == slow.iterations and fast.decisions < slow.decisions
    assert_same_columns(fast, slow)


def test_same_seed_same_hash():
    sched = VTCChunked()

    def run():
        cfg = EngineConfig(KVConfig(200, 16))
        return result_hash(simulate(random_workload(7, n=60), sched, SimulatedRunner(LinearCost()), cfg))

    assert run() == run()


def test_max_model_len_rejects_and_dynamic_chunking_passes_through():
    reqs = [req(0, 0.0, 50, 3, 0), req(1, 0.0, 500, 3, 1)]
    engine, _ = drive(reqs, VTCChunked(max_model_len=100), KVConfig(256, 16))
    assert engine.table.state[:2].tolist() == [FINISHED, 4]
    engine, _ = drive(random_workload(9, n=30), VTCChunked(dynamic_chunking=True, chunk_low=32), KVConfig(200, 16))
    assert np.all(engine.table.state[: engine.table.n] == FINISHED)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="lift='sometimes'"):
        VTCChunked(lift="sometimes")
    with pytest.raises(ValueError, match="w_p=-1"):
        VTCChunked(w_p=-1)
