"""Live serving through the real engine and schedulers, wall-clock helpers and timing records."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.request import Request
from llmsched_gym.executor.driver import make_work
from llmsched_gym.executor.history import TokenStore
from llmsched_gym.executor.live import RecordingRunner, WallClock, scale_arrivals, serve_live, write_timings
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from tests.executor.conftest import Reference


def _workload() -> list[Request]:
    lens = [(40, 12), (25, 20), (60, 8), (18, 16), (33, 10), (50, 14)]
    return [Request(id=100 + i, arrival=0.002 * i, prompt_len=p, output_len=o) for i, (p, o) in enumerate(lens)]


@pytest.mark.parametrize(("scheduler", "num_blocks"), [("vllm-v1", 64), ("vllm-v1", 9), ("sarathi", 64)])
def test_engine_serves_live_and_tokens_match_generate(
    tiny_model: torch.nn.Module, reference: Reference, scheduler: str, num_blocks: int
) -> None:
    from llmsched_gym.schedulers import make_scheduler

    reqs = _workload()
    cfg = LiveRunnerConfig(num_blocks=num_blocks, keep_outputs=True, seed=4)
    runner = LiveRunner(tiny_model, cfg, requests=reqs)
    recorder = RecordingRunner(runner)
    sched = (
        make_scheduler(scheduler, max_num_batched_tokens=32) if scheduler == "vllm-v1" else make_scheduler(scheduler)
    )
    result = serve_live(reqs, sched, recorder, EngineConfig(kv=KVConfig(num_blocks=num_blocks)), seed=0)
    assert result.columns["state"].tolist() == [3] * len(reqs)
    assert runner.blocks.num_free == num_blocks
    store = TokenStore(256, (1, 2), seed=4, requests=reqs)
    for rid, req in enumerate(reqs):
        expected = reference(store.tokens(rid).copy(), req.output_len)
        np.testing.assert_array_equal(runner.outputs[rid], expected, err_msg=f"engine id {rid}")
    ttft = result.columns["first_token"] - result.columns["arrival"]
    assert np.all(ttft > 0)
    assert len(recorder.records) == result.iterations
    assert abs(sum(r["seconds"] for r in recorder.records) - result.end_time) < result.end_time
    if num_blocks == 9:
        assert int(result.columns["preemptions"].sum()) > 0


def test_wall_clock_sleeps_until() -> None:
    clock = WallClock()
    assert clock.now() == 0.0
    clock.start()
    clock.sleep_until(0.02)
    assert clock.now() >= 0.02
    t = time.perf_counter()
    clock.sleep_until(0.0)
    assert time.perf_counter() - t < 0.01


def test_recording_runner_and_timings_file(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    runner = LiveRunner(tiny_model, LiveRunnerConfig(num_blocks=8), prompt_tokens={0: np.arange(3, 20)})
    rec = RecordingRunner(runner)
    rec.run(make_work([0], [10], [0], [False], [False]))
    rec.run(make_work([0], [7], [10], [False], [True]))
    rec.run(make_work([0], [1], [17], [True], [True]))
    rec.release(np.array([0]))
    rec.forget(np.array([0]))
    path = write_timings(tmp_path / "sub" / "t.jsonl", rec.records)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["prefill_tokens"] for x in lines] == [[10], [7], []]
    assert [x["prefill_context"] for x in lines] == [[0], [10], []]
    assert lines[2]["n_decodes"] == 1 and lines[2]["decode_context_sum"] == 17
    assert all(x["seconds"] > 0 for x in lines)
    with pytest.raises(NotImplementedError):
        rec.run_stretch(make_work([0], [1], [0], [True], [True]), 2)


def test_scale_arrivals() -> None:
    reqs = [Request(id=i, arrival=float(i), prompt_len=3, output_len=2) for i in range(3)]
    assert [r.arrival for r in scale_arrivals(reqs, 0.5)] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="time scale"):
        scale_arrivals(reqs, 0.0)
