"""LiveRunner on the CPU with a tiny fp32 model: greedy tokens equal HF generate() in every batching regime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmsched_gym.core.protocols import Runner
from llmsched_gym.executor.driver import ChunkedDriver, make_work
from llmsched_gym.executor.models import build_model
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from tests.executor.conftest import Reference, hf_greedy, hf_logits, make_prompts


def _runner(model: torch.nn.Module, prompts: dict[int, np.ndarray], num_blocks: int = 64, **kw: object) -> LiveRunner:
    cfg = LiveRunnerConfig(num_blocks=num_blocks, block_size=16, keep_outputs=True, **kw)  # type: ignore[arg-type]
    return LiveRunner(model, cfg, prompt_tokens=prompts)


def _check_outputs(runner: LiveRunner, prompts: dict[int, np.ndarray], outs: list[int], reference: Reference) -> None:
    for rid, prompt in prompts.items():
        expected = reference(prompt, outs[rid])
        np.testing.assert_array_equal(runner.outputs[rid], expected, err_msg=f"request {rid}")


def test_runner_satisfies_protocol(tiny_model: torch.nn.Module) -> None:
    runner = _runner(tiny_model, make_prompts([4]))
    assert isinstance(runner, Runner)
    assert runner.supports_stretch is False
    work = make_work([0], [4], [0], [False], [True])
    with pytest.raises(NotImplementedError):
        runner.run_stretch(work, 2)


def test_whole_prefill_then_batched_decode(tiny_model: torch.nn.Module, reference: Reference) -> None:
    prompts = make_prompts([21, 7])
    runner = _runner(tiny_model, prompts)
    assert runner.run(make_work([0, 1], [21, 7], [0, 0], [False, False], [True, True])) > 0
    for step in range(5):
        runner.run(make_work([1, 0], [1, 1], [7 + step, 21 + step], [True, True], [True, True]))
    for rid, p in ((0, 21), (1, 7)):
        np.testing.assert_array_equal(runner.tokens(rid), reference(prompts[rid], 6)[: p + 6])


@pytest.mark.parametrize(("budget", "hold"), [(16, 0.0), (40, 0.3)])
def test_chunked_prefill_mixed_batches_and_holds(
    tiny_model: torch.nn.Module, reference: Reference, budget: int, hold: float
) -> None:
    lens, outs = [37, 5, 80, 16, 1, 50], [20, 9, 5, 30, 12, 3]
    prompts = make_prompts(lens, seed=2)
    runner = _runner(tiny_model, prompts)
    driver = ChunkedDriver(runner, lens, outs, num_blocks=64, token_budget=budget, hold_prob=hold, seed=5)
    driver.run()
    mixed = [w for w in driver.works if w.is_decode.any() and (w.n_tokens > 1).any()]
    assert mixed, "the workload should produce mixed decode + prefill-chunk iterations"
    assert any((w.samples & ~w.is_decode & (w.start > 0)).any() for w in driver.works), "final chunk over a prefix"
    _check_outputs(runner, prompts, outs, reference)
    assert runner.blocks.num_free == 64


def test_preemption_recompute_and_block_accounting(tiny_model: torch.nn.Module, reference: Reference) -> None:
    lens, outs = [30, 45, 12, 60, 25], [25, 18, 30, 10, 22]
    prompts = make_prompts(lens, seed=3)
    runner = _runner(tiny_model, prompts, num_blocks=12)
    driver = ChunkedDriver(runner, lens, outs, num_blocks=12, token_budget=24, hold_prob=0.15, seed=7)
    while driver.running or driver.waiting:
        driver.step()
        assert runner.blocks.num_used == driver.blocks_held()
        assert runner.blocks.held_by() == {r: -(-q.computed // 16) for r, q in enumerate(driver.reqs) if q.computed > 0}
    assert driver.preemptions > 0
    _check_outputs(runner, prompts, outs, reference)
    assert runner.blocks.num_free == 12
    assert not runner.store._tokens, "histories are dropped on forget"


def test_explicit_recompute_preemption(tiny_model: torch.nn.Module, reference: Reference) -> None:
    prompts = make_prompts([19])
    runner = _runner(tiny_model, prompts)
    runner.run(make_work([0], [19], [0], [False], [True]))
    for pos in range(19, 22):
        runner.run(make_work([0], [1], [pos], [True], [True]))
    runner.release(np.array([0]))
    assert runner.blocks.num_free == 64
    assert runner.store.length(0) == 23, "history survives release"
    runner.run(make_work([0], [10], [0], [False], [False]))
    runner.run(make_work([0], [13], [10], [False], [True]))  # re-prefill of prompt + 4 generated, samples #5
    runner.run(make_work([0], [1], [23], [True], [True]))
    np.testing.assert_array_equal(runner.tokens(0), reference(prompts[0], 6))


def test_full_restart_overwrites_history(tiny_model: torch.nn.Module, reference: Reference) -> None:
    prompts = make_prompts([9])
    runner = _runner(tiny_model, prompts)
    runner.run(make_work([0], [9], [0], [False], [True]))
    for pos in range(9, 13):
        runner.run(make_work([0], [1], [pos], [True], [True]))
    runner.release(np.array([0]))
    runner.run(make_work([0], [9], [0], [False], [True]))  # full restart: prompt again, token at 9 overwritten
    assert runner.store.length(0) == 10
    for pos in range(9, 14):
        runner.run(make_work([0], [1], [pos], [True], [True]))
    np.testing.assert_array_equal(runner.tokens(0), reference(prompts[0], 6))


def test_logits_match_hf_forward(tiny_model: torch.nn.Module) -> None:
    lens, outs = [33, 8, 20], [6, 10, 4]
    prompts = make_prompts(lens, seed=4)
    runner = _runner(tiny_model, prompts, record_logits=True)
    ChunkedDriver(runner, lens, outs, num_blocks=64, token_budget=12).run()
    for rid in prompts:
        full = hf_logits(tiny_model, runner.outputs[rid])
        for pos, logits in runner.logits[rid]:
            np.testing.assert_allclose(logits, full[pos - 1], atol=2e-5, rtol=1e-4)


def test_tiny_mistral_matches_generate() -> None:
    model = build_model("tiny-mistral", dtype="float32", device="cpu", seed=1)
    lens, outs = [26, 11], [7, 9]
    prompts = make_prompts(lens, seed=6)
    expected = {rid: hf_greedy(model, p, outs[rid]) for rid, p in prompts.items()}
    runner = _runner(model, prompts)
    ChunkedDriver(runner, lens, outs, num_blocks=64, token_budget=10).run()
    for rid in prompts:
        np.testing.assert_array_equal(runner.outputs[rid], expected[rid])


def test_row_errors_name_the_request(tiny_model: torch.nn.Module) -> None:
    runner = _runner(tiny_model, make_prompts([8]))
    with pytest.raises(ValueError, match="request 0: row starts at position 4"):
        runner.run(make_work([0], [2], [4], [False], [False]))
    with pytest.raises(ValueError, match=r"needs tokens \[0, 9\)"):
        runner.run(make_work([0], [9], [0], [False], [True]))
    unknown = LiveRunner(tiny_model, LiveRunnerConfig(num_blocks=8), prompt_tokens=lambda rid, n: np.arange(n) + 3)
    with pytest.raises(KeyError, match="no declared prompt length"):
        unknown.run(make_work([5], [3], [0], [False], [True]))


def test_default_prompts_from_requests(tiny_model: torch.nn.Module) -> None:
    from llmsched_gym.core.request import Request

    reqs = [Request(id=10 + i, arrival=0.0, prompt_len=5 + i, output_len=2) for i in range(3)]
    runner = LiveRunner(tiny_model, LiveRunnerConfig(num_blocks=8, seed=3), requests=reqs)
    again = LiveRunner(tiny_model, LiveRunnerConfig(num_blocks=8, seed=3), requests=reqs)
    for rid in range(3):
        toks = runner.tokens(rid)
        assert toks.size == 5 + rid
        assert not np.isin(toks, [1, 2]).any(), "special tokens are avoided"
        np.testing.assert_array_equal(toks, again.tokens(rid))
    assert not np.array_equal(runner.tokens(0), runner.tokens(1)[:5])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="num_blocks=0"):
        LiveRunnerConfig(num_blocks=0)
    with pytest.raises(ValueError, match="block_size=0"):
        LiveRunnerConfig(num_blocks=4, block_size=0)
