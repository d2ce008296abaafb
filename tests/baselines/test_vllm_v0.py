"""vLLM V0 (spec §3): prefill-only iterations stall decodes, whole prompts, limits, newest-first preemption."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.vllm_v0 import VLLMV0
from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.core.table import FINISHED, REJECTED, WAITING
from llmsched_gym.core.view import EngineView
from llmsched_gym.schedulers import make_scheduler
from tests.baselines.test_sarathi import Spy, assert_all_finished, decode_mask, run, workload
from tests.helpers import LinearCost, assert_same_columns, make_requests, result_hash


@pytest.mark.parametrize("blocks", [60, 3000])
def test_prefill_only_iterations_stall_decodes_and_budget_holds(blocks):
    stalled: list[int] = []

    def check(view: EngineView, plan: BatchPlan) -> None:
        if plan.is_idle:
            return
        dec = decode_mask(view, plan.ids)
        tok = plan.as_dict()
        if not dec.all():
            assert not dec.any(), "a prefill iteration must not carry decodes"
            assert all(n == view.pending(r) for r, n in tok.items()), "prefills are whole prompts"
            assert all(view.state[r] == WAITING for r in tok), "only admissions prefill"
            assert sum(tok.values()) <= 700, "max_num_batched_tokens exceeded"
            assert len(view.running) + len(tok) <= 8, "max_num_seqs exceeded"
            stalled.append(int(decode_mask(view, view.running).sum()))
        else:
            assert plan.ids.size + len(plan.preempt) == view.running.size, "every running request decodes"

    res = run(Spy(VLLMV0(max_num_seqs=8, max_num_batched_tokens=700), check), workload(0, pmax=600), blocks)
    assert_all_finished(res)
    assert max(stalled) > 0, "some prefill iteration stalled running decodes"
    log = np.array(res.recorder.iterations)
    assert not np.any((log[:, 3] > 0) & (log[:, 4] > 0)), "no hybrid iteration in the engine log"


def test_preempts_the_newest_running_request_and_requeues_oldest_first():
    e = Engine(make_requests([(0.0, 16, 5)] * 3), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(3, 16, 0.0)))
    s = VLLMV0()
    e.step(s.schedule(e.view()))
    plan = s.schedule(e.view())
    assert plan.as_dict() == {0: 1} and plan.preempt == (2, 1)
    assert list(s.queue.items) == [1, 2]


def test_watermark_blocks_admission():
    # 100 blocks -> watermark 1. Request 0 holds 98 blocks; request 1 needs 2 and must wait.
    e = Engine(
        make_requests([(0.0, 98 * 16, 3), (0.0, 17, 3)]), SimulatedRunner(LinearCost()), EngineConfig(KVConfig(100))
    )
    s = VLLMV0(max_model_len=4096)
    assert s.schedule(e.view()).as_dict() == {0: 98 * 16}


def test_over_long_requests_are_rejected_with_reason():
    reqs = make_requests([(0.0, 500, 3), (0.0, 100, 3), (0.1, 300, 2)])
    res = run(VLLMV0(max_model_len=256), reqs, 200)
    assert res.columns["state"].tolist() == [REJECTED, FINISHED, REJECTED]
    assert "256" in res.reject_reason[0]


def test_default_limits():
    cfg = VLLMV0().config
    assert (cfg.max_num_seqs, cfg.batch_tokens, cfg.prompt_limit) == (256, 8192, 8192)
    assert VLLMV0(max_model_len=1024).config.batch_tokens == 2048
    assert VLLMV0(max_num_batched_tokens=512, max_model_len=1024).config.prompt_limit == 512
    with pytest.raises(ValueError, match="max_num_seqs"):
        VLLMV0(max_num_seqs=0)


def test_fcfs_threshold_alias_matches():
    reqs = workload(2, n=40)
    a, b = (run(make_scheduler(name), reqs, 300) for name in ("vllm-v0", "vllm-fcfs-threshold"))
    assert result_hash(a) == result_hash(b)


@pytest.mark.parametrize("blocks", [60, 3000])
def test_fast_forward_matches_step_by_step(blocks):
    reqs = workload(1)
    fast, slow = (run(make_scheduler("vllm-v0", max_num_seqs=16), reqs, blocks, ff) for ff in (True, False))
    assert fast.iterations == slow.iterations and fast.decisions < slow.decisions
    assert_same_columns(fast, slow)
