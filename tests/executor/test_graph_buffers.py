"""The decode-graph bookkeeping (buckets, static buffers, padding rows) with graph replay emulated eagerly on CPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from llmsched_gym.executor.cuda_graphs import DecodeGraphs, _Captured
from llmsched_gym.executor.driver import ChunkedDriver
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from tests.executor.conftest import Reference, make_prompts


class _EagerGraph:
    """Stands in for a CUDA graph: ``replay`` recomputes the captured forward into the same output tensors."""

    def __init__(self, graphs: DecodeGraphs, b: int, logits: torch.Tensor, tokens: torch.Tensor) -> None:
        self.graphs, self.b, self.logits, self.tokens = graphs, b, logits, tokens
        self.replays = 0

    def replay(self) -> None:
        with torch.inference_mode():
            logits, tokens = self.graphs._forward(self.b, self.graphs.metadata(self.b))
        self.logits.copy_(logits)
        self.tokens.copy_(tokens)
        self.replays += 1


def _fake_capture(self: DecodeGraphs, b: int) -> _Captured:
    if b not in self._graphs:
        self._pad(0, b)
        with torch.inference_mode():
            logits, tokens = self._forward(b, self.metadata(b))
        self._graphs[b] = _Captured(_EagerGraph(self, b, logits, tokens), logits, tokens)  # type: ignore[arg-type]
    return self._graphs[b]


def test_decode_graph_buffers_reproduce_generate(
    tiny_model: Any, reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DecodeGraphs, "_capture", _fake_capture)
    lens, outs = [37, 5, 80, 16, 1, 50, 9], [20, 9, 5, 30, 12, 3, 15]
    prompts = make_prompts(lens, seed=8)
    runner = LiveRunner(tiny_model, LiveRunnerConfig(num_blocks=12, keep_outputs=True), prompt_tokens=prompts)
    width = runner.blocks.max_blocks_per_seq
    runner.graphs = DecodeGraphs(tiny_model, runner.kv, width, (1, 2, 4), {}, decode_impl="torch")
    driver = ChunkedDriver(runner, lens, outs, num_blocks=12, token_budget=24, hold_prob=0.25, seed=2)
    driver.run()
    assert driver.preemptions > 0
    used = {b: c.graph.replays for b, c in runner.graphs._graphs.items()}  # type: ignore[attr-defined]
    assert used.get(4, 0) > 0 and used.get(1, 0) > 0, used
    for rid, prompt in prompts.items():
        np.testing.assert_array_equal(runner.outputs[rid], reference(prompt, outs[rid]), err_msg=f"request {rid}")
    assert runner.blocks.num_free == 12
    assert runner.graphs.bucket_for(3) == 4 and runner.graphs.bucket_for(5) is None
