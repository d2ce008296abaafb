"""GPU checks of the executor in bf16: logits against HF within a tolerance, graphs against eager.

bf16 greedy tokens can differ from a reference on near-ties, so these tests teacher-force: the HF
forward runs on the token sequence the executor produced and its logits are compared with the
executor's logits at every sampled position.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmsched_gym.executor.driver import ChunkedDriver
from llmsched_gym.executor.models import build_model
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from tests.executor.conftest import hf_logits, make_prompts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

LENS, OUTS = [300, 17, 1000, 64, 5, 513], [40, 60, 12, 33, 70, 20]


@pytest.fixture(scope="module")
def gpu_model() -> torch.nn.Module:
    return build_model("small-llama", dtype="bfloat16", device="cuda", seed=0)


def _serve(model: torch.nn.Module, graphs: bool, budget: int = 256, prefill_impl: str | None = None) -> LiveRunner:
    prompts = make_prompts(LENS, seed=9, vocab=2048)
    cfg = LiveRunnerConfig(num_blocks=512, cuda_graphs=graphs, record_logits=True, keep_outputs=True)
    runner = LiveRunner(model, cfg, prompt_tokens=prompts)
    if prefill_impl is not None:
        runner.prefill_impl = prefill_impl  # type: ignore[assignment]
    ChunkedDriver(runner, LENS, OUTS, num_blocks=512, token_budget=budget, hold_prob=0.1, seed=1).run()
    assert runner.blocks.num_free == 512
    return runner


def _max_logit_error(model: torch.nn.Module, runner: LiveRunner) -> float:
    worst = 0.0
    for rid, seq in runner.outputs.items():
        ref = hf_logits(model, seq)
        for pos, logits in runner.logits[rid]:
            worst = max(worst, float(np.abs(logits - ref[pos - 1]).max()))
    return worst


def test_logits_match_hf_in_bf16(gpu_model: torch.nn.Module) -> None:
    runner = _serve(gpu_model, graphs=True)
    assert runner.graphs is not None or runner.decode_impl == "torch"
    scale = max(float(np.abs(lg).max()) for logs in runner.logits.values() for _, lg in logs)
    assert _max_logit_error(gpu_model, runner) < 0.05 * max(scale, 1.0)


def _agreeing_logits(a: LiveRunner, b: LiveRunner) -> list[tuple[np.ndarray, np.ndarray]]:
    """Logit pairs at positions where both runs had produced the same tokens so far."""
    pairs = []
    for rid, seq_a in a.outputs.items():
        seq_b = b.outputs[rid]
        differ = np.flatnonzero(seq_a != seq_b)
        agree = int(differ[0]) if differ.size else seq_a.size
        lb = dict(b.logits[rid])
        pairs += [(lg, lb[pos]) for pos, lg in a.logits[rid] if pos <= agree]
    return pairs


def test_graphs_match_eager(gpu_model: torch.nn.Module) -> None:
    eager = _serve(gpu_model, graphs=False)
    graphed = _serve(gpu_model, graphs=True)
    pairs = _agreeing_logits(eager, graphed)
    assert len(pairs) >= len(OUTS)
    for x, y in pairs:
        np.testing.assert_allclose(x, y, atol=0.05, rtol=0.05)


def test_flash_prefill_matches_torch_path(gpu_model: torch.nn.Module) -> None:
    flash = _serve(gpu_model, graphs=True, budget=200)
    plain = _serve(gpu_model, graphs=True, budget=200, prefill_impl="torch")
    pairs = _agreeing_logits(flash, plain)
    assert len(pairs) >= len(OUTS)
    for x, y in pairs:
        np.testing.assert_allclose(x, y, atol=0.05, rtol=0.05)
