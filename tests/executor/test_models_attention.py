"""Model construction, safetensors loading, token histories and the attention function's torch paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llmsched_gym.core.request import Request
from llmsched_gym.errors import DeviceUnavailableError, UnknownNameError
from llmsched_gym.executor.attention import (
    ATTN_NAME,
    causal_attention,
    ensure_registered,
    gather_decode,
    paged_attention,
    select_impls,
)
from llmsched_gym.executor.history import TokenStore
from llmsched_gym.executor.models import (
    ModelShape,
    build_model,
    builtin_model_names,
    model_config,
    parameter_count,
    resolve_dtype,
)


def test_builtin_shapes() -> None:
    shapes = {name: ModelShape.of(model_config(name)) for name in builtin_model_names()}
    assert (shapes["llama-2-7b"].num_kv_heads, shapes["llama-2-7b"].head_dim) == (32, 128)
    assert (shapes["llama-3-8b"].num_kv_heads, shapes["llama-3-8b"].vocab_size) == (8, 128256)
    assert shapes["mistral-7b"].num_kv_heads == 8 and model_config("mistral-7b").sliding_window is None
    assert shapes["tiny-llama"].num_kv_heads == 2
    with pytest.raises(UnknownNameError, match="built-in models are"):
        model_config("gpt-5")


def test_dtype_and_device_errors() -> None:
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="int8"):
        resolve_dtype("int8")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="CUDA"):
            build_model("tiny-llama", device="cuda")


def test_safetensors_roundtrip(tiny_model: Any, tmp_path: Path) -> None:
    tiny_model.set_attn_implementation("sdpa")
    tiny_model.save_pretrained(tmp_path)
    loaded = build_model(None, dtype="float32", device="cpu", weights_dir=tmp_path, seed=123)
    assert parameter_count(loaded) == parameter_count(tiny_model)
    ids = torch.arange(3, 20)[None]
    with torch.no_grad():
        a = tiny_model(input_ids=ids).logits
        b = loaded(input_ids=ids).logits
    torch.testing.assert_close(a, b)
    other = model_config("tiny-llama")
    other.intermediate_size = 96
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        build_model(other, dtype="float32", device="cpu", weights_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no \*\.safetensors"):
        build_model("tiny-llama", dtype="float32", device="cpu", weights_dir=tmp_path / "nothing")


def test_token_store_semantics() -> None:
    reqs = [Request(id=42, arrival=0.0, prompt_len=6, output_len=3)]
    seen: list[tuple[int, int]] = []

    def source(rid: int, n: int) -> np.ndarray:
        seen.append((rid, n))
        return np.arange(n) + 10

    store = TokenStore(64, (0, 1, 2), seed=0, prompt_tokens=source, requests=reqs)
    assert store.tokens(0).tolist() == [10, 11, 12, 13, 14, 15] and seen == [(42, 6)]
    store.put(0, 6, 7)
    store.put(0, 7, 8)
    store.put(0, 6, 9)
    assert store.tokens(0).tolist()[-1] == 9 and store.length(0) == 7
    store.put(0, 500, 3)
    assert store.length(0) == 501
    assert store.forget(0) is not None and 0 not in store
    bad = TokenStore(16, (), seed=0, prompt_tokens={0: [3, 99]})
    with pytest.raises(ValueError, match="outside"):
        bad.tokens(0)


def test_attention_registration_and_guard() -> None:
    from transformers import AttentionInterface

    assert ensure_registered() == ensure_registered() == ATTN_NAME
    assert ATTN_NAME in AttentionInterface()
    q = torch.zeros(1, 4, 3, 8)
    with pytest.raises(RuntimeError, match="llmsched_meta"):
        paged_attention(torch.nn.Module(), q, q[:, :2], q[:, :2], None, 0.3)
    assert select_impls(torch.device("cpu"), torch.bfloat16) == ("torch", "torch")


def test_gather_decode_equals_causal_attention() -> None:
    torch.manual_seed(0)
    pages, page, kvh, dim = 6, 4, 2, 8
    k_cache, v_cache = torch.randn(pages, page, kvh, dim), torch.randn(pages, page, kvh, dim)
    tables = torch.tensor([[4, 1, 5], [2, 0, 3]], dtype=torch.int32)
    lens = torch.tensor([10, 3], dtype=torch.int32)
    q = torch.randn(2, 4, dim)
    out = gather_decode(q, k_cache, v_cache, tables, lens, dim**-0.5)
    for b in range(2):
        n = int(lens[b])
        k = k_cache[tables[b].long()].flatten(0, 1)[:n]
        v = v_cache[tables[b].long()].flatten(0, 1)[:n]
        ref = causal_attention(q[b : b + 1], k, v, dim**-0.5)
        torch.testing.assert_close(out[b], ref[0])
