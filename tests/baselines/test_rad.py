"""RAD (spec §8 project reconstruction) and rad-hybrid: mode cycles, tile-multiple prefill batches, caps."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.rad import PREFILL, RAD, RADHybrid
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.table import WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.schedulers import make_scheduler
from tests.baselines.test_sarathi import Spy, assert_all_finished, decode_mask, run, workload
from tests.helpers import assert_same_columns

SMALL = {"tile_tokens": 32, "decode_tile": 8, "max_prefills_per_cycle": 3, "prefill_token_cap": 200}


@pytest.mark.parametrize("blocks", [60, 400, 3000])
def test_prefill_batches_are_tile_multiples_unless_the_cycle_fits(blocks):
    sched = RAD(**SMALL)
    kinds = {"prefill": 0, "decode": 0, "trimmed": 0}

    def check(view: EngineView, plan: BatchPlan) -> None:
        if plan.is_idle:
            return
        dec = decode_mask(view, plan.ids)
        assert dec.all() or not dec.any(), "RAD never mixes prefills and decodes"
        if dec.all():
            kinds["decode"] += 1
            return
        kinds["prefill"] += 1
        assert sched.mode == PREFILL
        running = view.running
        prefilling = running[~decode_mask(view, running)]
        cycle = (
            set(prefilling.tolist()) | set(sched._starting) | {r for r in plan.as_dict() if view.state[r] == WAITING}
        )
        remaining = int(view.pending_array(np.array(sorted(cycle), dtype=np.int64)).sum())
        total = int(plan.tokens.sum())
        assert total <= 200
        if total != remaining:
            assert total % 32 == 0, f"trimmed prefill batch of {total} tokens is not a multiple of T"
            kinds["trimmed"] += 1
        assert sched.cycle_admitted <= 3 and len(cycle) <= 8

    res = run(Spy(sched, check), workload(0, pmax=300), blocks)
    assert_all_finished(res)
    assert kinds["prefill"] and kinds["decode"] and kinds["trimmed"]


def test_active_requests_stay_below_the_decode_tile():
    sched = RAD(tile_tokens=16, decode_tile=4, max_prefills_per_cycle=2, prefill_token_cap=64)

    def check(view: EngineView, plan: BatchPlan) -> None:
        new = sum(view.state[r] == WAITING for r in plan.as_dict())
        assert view.running.size - len(plan.preempt) + new + len(sched._starting) <= 4

    assert_all_finished(run(Spy(sched, check), workload(2, n=40, pmax=200), 300))


def test_cycle_admits_at_most_n_and_ends_before_decoding():
    reqs = workload(3, n=12, pmax=100, gap=0.0)  # all arrive at once
    sched = RAD(tile_tokens=32, decode_tile=8, max_prefills_per_cycle=3, prefill_token_cap=64)
    modes: list[str] = []

    def check(view: EngineView, plan: BatchPlan) -> None:
        modes.append(sched.mode)

    assert_all_finished(run(Spy(sched, check), reqs, 400))
    assert sched.cycles >= 4  # 12 requests, 3 per cycle
    assert modes[0] == PREFILL and "decode" in modes


def test_rad_hybrid_budget_is_tile_aligned():
    sched = RADHybrid(chunk_size=300, tile_tokens=128)
    assert sched.config.chunk_size == 256

    def check(view: EngineView, plan: BatchPlan) -> None:
        assert int(plan.tokens.sum()) <= 256

    assert_all_finished(run(Spy(sched, check), workload(4, n=40), 300))
    preset = make_scheduler("rad-hybrid")
    assert isinstance(preset, RADHybrid) and preset.config.chunk_size == 2048


@pytest.mark.parametrize(
    "bad",
    [{"max_prefills_per_cycle": 200}, {"prefill_token_cap": 64}, {"tile_tokens": 0}, {"max_model_len": 0}],
)
def test_config_validation(bad):
    with pytest.raises(ValueError, match="RADConfig"):
        RAD(**bad)
    with pytest.raises(ValueError, match="RADHybridConfig"):
        RADHybrid(chunk_size=100, tile_tokens=128)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("rad", {}),
        ("rad", SMALL),
        ("rad", {**SMALL, "max_model_len": 250}),
        ("rad-hybrid", {"chunk_size": 300, "tile_tokens": 64}),
    ],
)
@pytest.mark.parametrize("blocks", [60, 3000])
def test_fast_forward_matches_step_by_step(name, kwargs, blocks):
    reqs = workload(1, pmax=400)
    fast, slow = (run(make_scheduler(name, **kwargs), reqs, blocks, ff) for ff in (True, False))
    assert fast.iterations == slow.iterations and fast.decisions < slow.decisions
    assert_same_columns(fast, slow)
