"""VTC on the S-LoRA runtime: ordering, lift, exact charges, memory safety, RPM, the 2U bound, weights."""

from __future__ import annotations

import numpy as np
import pytest

from baselines._vtc_common import PROFILE_COEFFS, ClientQueues, worst_case_blocks
from baselines.vtc import RPM, VTC
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, REJECTED
from llmsched_gym.metrics.fairness import service_series
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import SimulationResult, simulate
from tests.helpers import LinearCost, assert_same_columns, result_hash

FAMILY = ["vtc", "vtc-weighted", "vtc-predict", "vtc-oracle", "vtc-profile", "lcf", "fcfs-vtc-runtime", "rpm-5"]


def req(i, t, p, o, client=0, **kw):
    return Request(i, t, p, o, client=client, **kw)


def drive(reqs, sched, kv=None, **cfg):
    """Run to completion step by step; returns the engine and the plans."""
    sched.reset(seed=0)
    config = EngineConfig(kv or KVConfig(512, 1), **cfg).with_requirements(sched.requirements)
    engine = Engine(reqs, SimulatedRunner(LinearCost()), config)
    plans = []
    while not engine.done:
        plan = sched.schedule(engine.view())
        plans.append(plan)
        engine.step(plan)
    return engine, plans


def random_workload(seed, n=120, clients=3, max_tokens=True):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.03, n))
    out = []
    for i, t in enumerate(arrivals):
        o = int(rng.integers(1, 120))
        mt = o + int(rng.integers(0, 20)) if max_tokens else None
        c = int(rng.integers(0, clients))
        out.append(req(i, float(t), int(rng.integers(1, 500)), o, c, max_tokens=mt, weight=1.0 + c))
    return out


def two_clients(rates, horizon, p, o, weights=(1.0, 1.0)):
    events = sorted(((k + 0.5) / r, c) for c, r in enumerate(rates) for k in range(int(horizon * r)))
    return [req(i, t, p, o, c, max_tokens=o, weight=weights[c]) for i, (t, c) in enumerate(events)]


def backlogged_service(res: SimulationResult) -> tuple[np.ndarray, np.ndarray]:
    """Sampled cumulative service of clients 0 and 1 while both have a request not yet dispatched (VTC's Q)."""
    times, service, _ = service_series(res)
    c = res.columns
    waits = []
    for k in (0, 1):
        mine = c["client"] == k
        waits.append(((c["arrival"][mine] <= times[:, None]) & (c["first_sched"][mine] > times[:, None])).any(1))
    both = waits[0] & waits[1]
    return service[both, 0], service[both, 1]


def sim(reqs, name, kv, **kw):
    cfg = EngineConfig(kv, recorder=RecorderConfig(sample_dt=0.05))
    return simulate(reqs, make_scheduler(name, **kw), SimulatedRunner(LinearCost()), cfg)


# ---- ordering and lift -------------------------------------------------------------------
def test_pick_is_min_counter_with_ties_to_first_seen():
    q = ClientQueues()
    for client, rid in ((5, 0), (3, 1), (9, 2)):
        q.arrive(client, rid)
    q.counters.update({5: 10.0, 3: 4.0, 9: 4.0})
    assert q.pick() == 3  # 3 and 9 tie at 4; 3 was seen first
    q.counters[3] = 11.0
    assert q.pick() == 9
    assert q.pop(9) == 2 and q.pick() == 5 and q.last_left == 9


@pytest.mark.parametrize(
    ("lift", "with_others", "expected"),
    [("paper", True, 7.0), ("paper", False, 12.0), ("code", True, 7.0), ("code", False, 1.0), ("none", True, 1.0)],
)
def test_lift_branches(lift, with_others, expected):
    q = ClientQueues(lift)
    q.arrive(0, 0)
    q.arrive(1, 1)
    q.arrive(2, 2)
    q.counters.update({0: 1.0, 1: 7.0, 2: 9.0})
    q.pop(0)
    if not with_others:
        q.pop(2)
        q.pop(1)  # client 1 leaves last
        q.counters[1] = 12.0  # the last-left client's counter *now* is used
    q.arrive(0, 3)
    assert q.counters[0] == expected


def test_lift_never_lowers_a_counter():
    q = ClientQueues("paper")
    q.arrive(0, 0)
    q.arrive(1, 1)
    q.counters.update({0: 50.0, 1: 3.0})
    q.pop(0)
    q.arrive(0, 2)
    assert q.counters[0] == 50.0


def test_runtime_admits_min_counter_client_first():
    # The pool fits one request at a time; client 0's first request is served, then client 1 (lifted to
    # client 0's counter at arrival, then behind it after client 0's decode charges) goes before client 0's rest.
    reqs = [req(0, 0.0, 20, 10, 0, max_tokens=10), req(1, 0.0, 20, 10, 0, max_tokens=10)]
    reqs += [req(2, 0.001, 20, 10, 0, max_tokens=10), req(3, 0.002, 20, 10, 1, max_tokens=10)]
    engine, _ = drive(reqs, VTC(), KVConfig(40, 1))
    order = np.argsort(engine.table.first_sched[:4], kind="stable")
    assert order.tolist() == [0, 3, 1, 2]


@pytest.mark.parametrize(("lift", "lifted"), [("paper", True), ("code", False), ("none", False)])
def test_runtime_lift_from_last_client_when_queue_empty(lift, lifted):
    reqs = [req(0, 0.0, 30, 5, 0, max_tokens=5), req(1, 5.0, 10, 2, 1, max_tokens=2)]
    sched = VTC(lift=lift)
    engine, _ = drive(reqs, sched)
    expected_c0 = 30 + 2 * 4
    c = sched.counters(engine.view())
    assert c[0] == expected_c0
    assert c[1] == (expected_c0 if lifted else 0.0) + 10 + 2 * 1


# ---- charges -----------------------------------------------------------------------------
def test_charges_prompt_at_admission_then_two_per_decode_step():
    sched = VTC()
    config = EngineConfig(KVConfig(64, 1), fast_forward=False)
    engine = Engine([req(0, 0.0, 10, 5, max_tokens=5)], SimulatedRunner(LinearCost()), config)
    sched.reset(seed=0)
    seen = []
    while not engine.done:
        plan = sched.schedule(engine.view())
        seen.append((plan.as_dict(), sched.counters()[0]))
        engine.step(plan)
    assert seen == [({0: 10}, 10.0), ({0: 1}, 12.0), ({0: 1}, 14.0), ({0: 1}, 16.0), ({0: 1}, 18.0)]
    assert sched.counters(engine.view())[0] == 10 + 2 * (5 - 1)


@pytest.mark.parametrize("name", ["vtc", "vtc-weighted", "fcfs-vtc-runtime"])
@pytest.mark.parametrize("kv", [KVConfig(100, 16), KVConfig(1600, 1)])
def test_total_charges_are_exact_under_fast_forward(name, kv):
    reqs = random_workload(3, n=60)
    sched = make_scheduler(name, lift="none")  # no lift: counters are exactly the sum of charges
    engine, _ = drive(reqs, sched, kv)
    t = engine.table
    weight = t.weight[: t.n] if name == "vtc-weighted" else np.ones(t.n)
    expected = np.bincount(t.client[: t.n], weights=(t.prompt[: t.n] + 2.0 * (t.emitted[: t.n] - 1)) / weight)
    got = sched.counters(engine.view())
    assert all(t.state[: t.n] == FINISHED)
    assert got == pytest.approx({c: expected[c] for c in got}, rel=1e-12)


def test_weighted_charges_are_divided_by_weight():
    reqs = [req(0, 0.0, 32, 8, 0, max_tokens=8, weight=1.0), req(1, 0.0, 32, 8, 1, max_tokens=8, weight=4.0)]
    sched = VTC(weighted=True)
    engine, _ = drive(reqs, sched)
    assert sched.counters(engine.view()) == {0: 32 + 14.0, 1: (32 + 14.0) / 4}


def test_moving_average_prediction_charged_at_admission_and_refunded():
    # Requests of one client, far apart: predictions 0, then 5, then (4*5 + 3)/5 = 4.6 -> 5.
    reqs = [req(0, 0.0, 10, 5, max_tokens=5), req(1, 10.0, 10, 3, max_tokens=3), req(2, 20.0, 10, 9, max_tokens=9)]
    sched = VTC(predictor="moving_average")
    engine = Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(64, 1)))
    sched.reset(seed=0)
    after_admission, totals = [], []
    while not engine.done:
        plan = sched.schedule(engine.view())
        if plan.ids.size and np.all(engine.table.state[plan.ids] == 1):
            after_admission.append(sched.counters()[0])
        engine.step(plan)
        if engine.events_finished:
            totals.append(sched.counters(engine.view())[0])
    assert after_admission == [10.0, 18 + 10 + 2 * 5, 34 + 10 + 2 * 5]
    assert totals == [18.0, 18 + 20 - 2 * (5 - 3), 34 + 20 + 2 * (8 - 5)]


def test_oracle_charges_true_length_up_front():
    sched = VTC(predictor="oracle", max_tokens_from="oracle")  # no max_tokens: the true length bounds memory
    engine, _ = drive([req(0, 0.0, 10, 7)], sched)
    assert sched.counters(engine.view())[0] == 10 + 2 * 7


def test_profile_cost_charges_h_of_prompt_and_outputs():
    sched = VTC(cost="profile")
    engine, _ = drive([req(0, 0.0, 100, 20, max_tokens=20)], sched)
    a, b, c, d, e = PROFILE_COEFFS
    h = a * 100 + b * 19 + c * 100 * 19 + d * 19 * 19 + e
    assert sched.counters(engine.view())[0] == pytest.approx(h, rel=1e-12)


# ---- runtime cadence and memory ----------------------------------------------------------
def test_prefill_only_admission_every_max_wait_tokens_decodes():
    reqs = [req(0, 0.0, 10, 40, 0, max_tokens=40), req(1, 0.0001, 10, 5, 1, max_tokens=5)]
    for wait in (10, 3):
        sched = VTC(max_wait_tokens=wait)
        sched.reset(seed=0)
        engine = Engine(reqs, SimulatedRunner(LinearCost()), EngineConfig(KVConfig(512, 1)))
        while not engine.done:
            plan = sched.schedule(engine.view())
            if 1 in plan.as_dict() and engine.table.state[1] == 1:
                assert plan.as_dict() == {1: 10}  # prefill-only: request 0 stalls
                assert engine.table.emitted[0] == 1 + wait  # its prefill token, then `wait` decodes
            engine.step(plan)
        assert engine.table.emitted[:2].tolist() == [40, 5]


def test_worst_case_blocks_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, bs = int(rng.integers(1, 90)), int(rng.choice([1, 3, 16]))
        cur, rem = rng.integers(1, 400, n), rng.integers(0, 200, n)
        brute = max(sum(-(-(c + t) // bs) for c, r in zip(cur, rem, strict=True) if r >= t) for t in set(rem))
        assert worst_case_blocks(cur, rem, bs) == brute


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize(("kv", "seed"), [(KVConfig(100, 16), 1), (KVConfig(1000, 1), 2), (KVConfig(3000, 16), 3)])
def test_all_finish_without_overflow_or_preemption(name, kv, seed):
    engine, _ = drive(random_workload(seed, n=40), make_scheduler(name), kv, overflow="error")
    st = engine.table.state[: engine.table.n]
    assert np.all((st == FINISHED) | (st == REJECTED))
    assert name.startswith("rpm") or np.all(st == FINISHED)
    assert engine.table.preemptions[: engine.table.n].sum() == 0


def test_unbounded_requests_use_max_new_tokens_and_safety_net():
    reqs = random_workload(4, n=25, max_tokens=False)
    reqs.append(req(len(reqs), 10.0, 600, 10))  # 600 + max_new_tokens 1024 never fits 100 x 16
    sched = VTC()
    engine, _ = drive(reqs, sched, KVConfig(100, 16), overflow="error")
    assert engine.table.state[len(reqs) - 1] == REJECTED
    assert "never below the pool" in engine.table.reject_reason[len(reqs) - 1]
    sched2 = VTC(max_new_tokens=16)  # under-estimates: the safety net preempts instead of overflowing
    engine2, _ = drive(random_workload(4, n=60, max_tokens=False), sched2, KVConfig(60, 16), overflow="error")
    assert np.all(engine2.table.state[: engine2.table.n] == FINISHED)
    assert sched2.safety_preemptions > 0


def test_oracle_bound_needs_no_max_tokens():
    engine, _ = drive(random_workload(5, max_tokens=False), VTC(max_tokens_from="oracle"), KVConfig(100, 16))
    assert np.all(engine.table.state[: engine.table.n] == FINISHED)
    assert engine.table.preemptions[: engine.table.n].sum() == 0


# ---- RPM ---------------------------------------------------------------------------------
def test_rpm_rejects_the_request_over_the_limit_within_60s():
    reqs = [req(i, float(i), 10, 3, 0, max_tokens=3) for i in range(6)]
    reqs += [req(6, 6.0, 10, 3, 1, max_tokens=3), req(7, 64.5, 10, 3, 0, max_tokens=3)]
    engine, _ = drive(reqs, RPM(limit=5))
    st = engine.table.state[:8]
    assert st.tolist() == [FINISHED] * 5 + [REJECTED, FINISHED, FINISHED]
    assert "rate limit" in engine.table.reject_reason[5]


# ---- fairness guarantees -----------------------------------------------------------------
def test_two_client_service_gap_within_2u_and_fcfs_exceeds_it():
    kv = KVConfig(1024, 1)
    two_u = 2 * max(64, 2 * kv.capacity_tokens)
    reqs = two_clients((20.0, 10.0), 5.0, 64, 64)
    gaps = {}
    for name in ("vtc", "fcfs-vtc-runtime"):
        s0, s1 = backlogged_service(sim(reqs, name, kv))
        assert s0.size > 50
        gaps[name] = float((s0 - s1).max() - (s0 - s1).min())
    assert gaps["vtc"] <= two_u < gaps["fcfs-vtc-runtime"], gaps


def test_weighted_service_follows_weights_under_overload():
    reqs = two_clients((1000.0, 1000.0), 0.1, 32, 32, weights=(1.0, 2.0))
    s0, s1 = backlogged_service(sim(reqs, "vtc-weighted", KVConfig(512, 1)))
    assert s1[-1] / s0[-1] == pytest.approx(2.0, rel=0.15)


# ---- determinism, fast-forward, config ---------------------------------------------------
@pytest.mark.parametrize("name", ["vtc", "vtc-predict", "rpm-20"])
@pytest.mark.parametrize("kv", [KVConfig(100, 16), KVConfig(2000, 16)])
def test_fast_forward_matches_step_by_step(name, kv):
    reqs = random_workload(6, n=60)
    fast, slow = (
        simulate(reqs, make_scheduler(name), SimulatedRunner(LinearCost()), EngineConfig(kv, fast_forward=ff))
        for ff in (True, False)
    )
    assert fast.iterations == slow.iterations
    assert_same_columns(fast, slow)


def test_same_seed_same_hash_and_reset_clears_state():
    sched = make_scheduler("vtc-oracle", noise=0.5)

    def run(seed):
        cfg = EngineConfig(KVConfig(200, 16))
        return simulate(random_workload(7, n=60), sched, SimulatedRunner(LinearCost()), cfg, seed=seed)

    first, again = result_hash(run(0)), result_hash(run(0))
    assert first == again
    assert result_hash(run(1)) != first


def test_counters_are_a_copy():
    sched = VTC()
    drive([req(0, 0.0, 5, 2, max_tokens=2)], sched)
    sched.counters()[0] = -1.0
    assert sched.counters()[0] == 5 + 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lift": "max"}, "lift='max'"),
        ({"cost": "quadratic"}, "cost='quadratic'"),
        ({"ordering": "lifo"}, "ordering='lifo'"),
        ({"max_wait_tokens": 0}, "max_wait_tokens=0"),
        ({"noise": 0.5}, "noise=0.5"),
        ({"max_tokens_from": "guess"}, "max_tokens_from='guess'"),
        ({"predictor": "crystal_ball"}, "predictor='crystal_ball'"),
    ],
)
def test_config_errors_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VTC(**kwargs)


def test_rpm_config_error():
    with pytest.raises(ValueError, match="limit=0"):
        RPM(limit=0)
