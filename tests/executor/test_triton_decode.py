"""The Triton paged decode kernel against a dense reference (CUDA, or Triton's CPU interpreter)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmsched_gym.executor.triton_decode import choose_num_splits

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import torch
from llmsched_gym.executor.triton_decode import paged_decode
from llmsched_gym.executor.attention import gather_decode

def check(device, dtype, heads, kv_heads, dim, splits, tol):
    g = torch.Generator().manual_seed(0)
    pages, page = 48, 16
    kc = torch.randn(pages, page, kv_heads, dim, generator=g).to(device, dtype)
    vc = torch.randn(pages, page, kv_heads, dim, generator=g).to(device, dtype)
    lens = torch.tensor([1, 17, 100, 64, 190], dtype=torch.int32, device=device)
    bt = torch.stack([torch.randperm(pages, generator=g)[:12] for _ in range(5)]).to(device, torch.int32)
    q = torch.randn(5, heads, dim, generator=g).to(device, dtype)
    out = paged_decode(q, kc, vc, bt, lens, dim ** -0.5, num_splits=splits)
    ref = gather_decode(q.float(), kc.float(), vc.float(), bt, lens, dim ** -0.5)
    err = (out.float() - ref).abs().max().item()
    assert err < tol, (heads, kv_heads, dim, splits, err)

def run(device, dtypes):
    for dtype, tol in dtypes:
        for heads, kv_heads, dim in ((4, 4, 16), (8, 2, 64), (4, 1, 48), (32, 8, 128)):
            for splits in (1, 3):
                check(device, dtype, heads, kv_heads, dim, splits, tol)
    print("ok")
"""


def test_choose_num_splits() -> None:
    assert choose_num_splits(1, 32, 1024, 132) == 4
    assert choose_num_splits(128, 32, 1024, 132) == 1
    assert choose_num_splits(1, 8, 65536, 132) == 16
    assert choose_num_splits(1, 32, 16, 132) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_kernel_on_cuda() -> None:
    pytest.importorskip("triton")
    scope: dict[str, object] = {}
    exec(CHECK, scope)
    scope["run"]("cuda", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])  # type: ignore[operator]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_kernel_in_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    code = CHECK + "\nrun('cpu', [(torch.float32, 1e-4), (torch.float16, 2e-3)])\n"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


RUNNER_CHECK = """
import numpy as np, torch
torch.set_num_threads(1)
from llmsched_gym.executor.driver import ChunkedDriver
from llmsched_gym.executor.models import build_model
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from tests.executor.conftest import hf_greedy, make_prompts

model = build_model("tiny-llama", dtype="float32", device="cpu", seed=0)
lens, outs = [37, 5, 50, 16], [12, 9, 5, 14]
prompts = make_prompts(lens, seed=2)
expected = {rid: hf_greedy(model, p, outs[rid]) for rid, p in prompts.items()}
runner = LiveRunner(model, LiveRunnerConfig(num_blocks=7, keep_outputs=True), prompt_tokens=prompts)
runner.decode_impl = "triton"
runner.sm_count = 8
runner.warmup()
driver = ChunkedDriver(runner, lens, outs, num_blocks=7, token_budget=20, hold_prob=0.2, seed=3)
driver.run()
assert driver.preemptions > 0
for rid in prompts:
    np.testing.assert_array_equal(runner.outputs[rid], expected[rid])
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_runner_with_triton_decode_in_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER_CHECK], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
