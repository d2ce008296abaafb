"""Shared fixtures of the executor tests: a tiny fp32 model on the CPU and HF reference outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from llmsched_gym.executor.models import build_model

torch.set_num_threads(1)

Reference = Callable[[np.ndarray, int], np.ndarray]


def hf_greedy(model: Any, prompt: np.ndarray, n_new: int) -> np.ndarray:
    """Prompt followed by ``n_new`` greedy tokens from HF ``generate()`` (SDPA attention, no EOS stop)."""
    model.set_attn_implementation("sdpa")
    ids = torch.as_tensor(prompt, dtype=torch.long)[None]
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n_new,
        min_new_tokens=n_new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    result: np.ndarray = out[0].numpy().astype(np.int64)
    return result


def hf_logits(model: Any, tokens: np.ndarray) -> np.ndarray:
    """Logits of every position of ``tokens`` from one plain HF forward (SDPA)."""
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        out = model(input_ids=torch.as_tensor(tokens, dtype=torch.long)[None], use_cache=False)
    result: np.ndarray = out.logits[0].float().numpy()
    return result


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    return build_model("tiny-llama", dtype="float32", device="cpu", seed=0)


@pytest.fixture(scope="session")
def reference(tiny_model: torch.nn.Module) -> Reference:
    cache: dict[tuple[tuple[int, ...], int], np.ndarray] = {}

    def get(prompt: np.ndarray, n_new: int) -> np.ndarray:
        key = (tuple(int(t) for t in prompt), n_new)
        if key not in cache:
            cache[key] = hf_greedy(tiny_model, prompt, n_new)
        return cache[key]

    return get


def make_prompts(lengths: list[int], seed: int = 1, vocab: int = 256) -> dict[int, np.ndarray]:
    """Random prompts (ids 3..vocab-1) for engine ids 0..n-1."""
    rng = np.random.default_rng(seed)
    return {i: rng.integers(3, vocab, size=n).astype(np.int64) for i, n in enumerate(lengths)}
