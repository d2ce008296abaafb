"""Orca (spec §5): hybrid FCFS batches of whole prompts, max-length reservation, no preemption."""

from __future__ import annotations

import pytest

from baselines.orca import Orca
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.table import FINISHED, REJECTED, WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.schedulers import make_scheduler
from tests.baselines.test_sarathi import Spy, assert_all_finished, decode_mask, run, workload
from tests.helpers import assert_same_columns


@pytest.mark.parametrize(("blocks", "max_model_len"), [(60, 8192), (300, 1024), (3000, 1024)])
def test_never_preempts_and_respects_reservations(blocks, max_model_len):
    reserve = min(-(-max_model_len // 16), blocks)
    hybrid: list[bool] = []

    def check(view: EngineView, plan: BatchPlan) -> None:
        assert not plan.preempt, "Orca never preempts"
        tok = plan.as_dict()
        new = [r for r in tok if view.state[r] == WAITING]
        assert all(tok[r] == view.pending(r) for r in new), "whole prompts"
        assert set(view.running.tolist()) <= tok.keys(), "every running request decodes"
        n_active = view.running.size + len(new)
        assert n_active <= 4 and n_active * reserve <= view.total_blocks, "batch cap or reservation exceeded"
        hybrid.append(bool(new) and bool(decode_mask(view, plan.ids).any()))

    res = run(Spy(Orca(max_num_seqs=4, max_model_len=max_model_len), check), workload(0, pmax=400), blocks)
    assert_all_finished(res)
    assert res.columns["preemptions"].sum() == 0
    assert any(hybrid) == (blocks // reserve > 1), "full prompts join running decodes when two fit"


def test_pool_smaller_than_reservation_runs_one_at_a_time():
    concurrency: list[int] = []

    def check(view: EngineView, plan: BatchPlan) -> None:
        concurrency.append(plan.ids.size)

    res = run(Spy(Orca(), check), workload(3, n=20, pmax=300), 60)
    assert_all_finished(res)
    assert max(concurrency) == 1


def test_requests_beyond_max_model_len_are_capped():
    res = run(Orca(max_model_len=200), workload(4, n=40, pmax=300, omax=150), 400)
    state = res.columns["state"]
    assert set(state.tolist()) <= {FINISHED, REJECTED} and (state == REJECTED).any()
    assert all("length capped" in why for why in res.reject_reason.values())


def test_config_validation():
    with pytest.raises(ValueError, match="max_num_seqs"):
        Orca(max_num_seqs=0)
    with pytest.raises(ValueError, match="max_model_len"):
        Orca(max_model_len=0)


@pytest.mark.parametrize(
    ("blocks", "kwargs"), [(60, {}), (400, {"max_model_len": 1024}), (400, {"max_model_len": 200})]
)
def test_fast_forward_matches_step_by_step(blocks, kwargs):
    reqs = workload(1, pmax=300)
    fast, slow = (run(make_scheduler("orca", **kwargs), reqs, blocks, ff) for ff in (True, False))
    assert fast.iterations == slow.iterations and fast.decisions < slow.decisions
    assert_same_columns(fast, slow)
