"""The registered paged attention function and the per-iteration metadata it reads.

One packed forward runs all rows of an iteration as a single sequence of ``T`` tokens: first the rows
with one query token (decodes, and 1-token prefill remainders), then the multi-token rows (prefill
chunks). HF's attention modules call :func:`paged_attention` (registered under :data:`ATTN_NAME`) with
the layer's projected, rotated Q/K/V; the :class:`StepMetadata` passed to ``model(...)`` as the
:data:`META_KWARG` keyword reaches it through HF's ``**kwargs``. The function writes the new K/V into the
paged pool and computes attention:

* single-token rows: the Triton paged decode kernel on CUDA (fp16/bf16), else a gather + SDPA path;
* multi-token rows: variable-length FlashAttention (``aten._flash_attention_forward``, causal aligned
  bottom-right over each row's cached prefix) on CUDA (fp16/bf16), else plain torch SDPA per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from llmsched_gym.executor.kv_pool import KVCache
from llmsched_gym.executor.triton_decode import paged_decode, triton_available

ATTN_NAME = "llmsched_paged"
"""Name of the attention implementation in transformers' ``AttentionInterface``."""

META_KWARG = "llmsched_meta"
"""Keyword argument of ``model(...)`` carrying the :class:`StepMetadata`."""

DecodeImpl = Literal["triton", "torch"]
PrefillImpl = Literal["flash", "torch"]


@dataclass(slots=True)
class StepMetadata:
    """Everything the attention function needs for one packed forward (device tensors unless noted).

    Attributes:
        kv: The paged KV cache.
        slot_mapping: ``(T,)`` int64 pool slot of every new token.
        n_single: Number of leading single-token rows.
        block_tables: ``(n_single, width)`` int32 block tables of the single-token rows.
        seq_lens: ``(n_single,)`` int32 context length of each single-token row, new token included.
        num_splits: Context splits of the Triton decode kernel.
        q_lens: Host list: query tokens of each multi-token row.
        k_lens: Host list: context length of each multi-token row (cached prefix plus its tokens).
        cu_q: ``(rows + 1,)`` int32 cumulative query lengths of the multi-token rows.
        cu_k: ``(rows + 1,)`` int32 cumulative context lengths of the multi-token rows.
        kv_slots: ``(sum(k_lens),)`` int64 slots of the multi-token rows' contexts, or ``None`` when no row
            has a cached prefix (the new K/V are then used directly).
        decode_impl: Kernel of the single-token rows.
        prefill_impl: Kernel of the multi-token rows.
    """

    kv: KVCache
    slot_mapping: torch.Tensor
    n_single: int
    block_tables: torch.Tensor | None
    seq_lens: torch.Tensor | None
    num_splits: int
    q_lens: list[int]
    k_lens: list[int]
    cu_q: torch.Tensor | None
    cu_k: torch.Tensor | None
    kv_slots: torch.Tensor | None
    decode_impl: DecodeImpl
    prefill_impl: PrefillImpl


def select_impls(device: torch.device, dtype: torch.dtype) -> tuple[DecodeImpl, PrefillImpl]:
    """The fastest kernels available for ``device`` and ``dtype`` (torch paths on CPU or for fp32)."""
    fast = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    decode: DecodeImpl = "triton" if fast and triton_available() else "torch"
    prefill: PrefillImpl = "flash" if fast else "torch"
    return decode, prefill


def ensure_registered() -> str:
    """Register :func:`paged_attention` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, paged_attention)
    return ATTN_NAME


def paged_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over the paged KV cache, in transformers' attention-function convention.

    Args:
        module: The attention module (its ``layer_idx`` selects the cache layer).
        query: ``(1, heads, T, head_dim)``.
        key: ``(1, kv_heads, T, head_dim)`` (new tokens only).
        value: Same shape as ``key``.
        attention_mask: Ignored (no mask is built for a custom implementation).
        scaling: Softmax scale.
        dropout: Must be 0 (inference only).
        **kwargs: Must hold the :class:`StepMetadata` under :data:`META_KWARG`.

    Returns:
        ``(output, None)`` with output ``(1, T, heads, head_dim)``.
    """
    meta = kwargs.get(META_KWARG)
    if not isinstance(meta, StepMetadata):
        raise RuntimeError(
            f"attention implementation {ATTN_NAME!r} needs `{META_KWARG}=StepMetadata` in model(...); "
            "run the model through LiveRunner, or switch back with model.set_attn_implementation('sdpa')"
        )
    layer = int(getattr(module, "layer_idx", 0))
    scale = float(scaling if scaling is not None else query.shape[-1] ** -0.5)
    q = query[0].transpose(0, 1)
    k = key[0].transpose(0, 1)
    v = value[0].transpose(0, 1)
    meta.kv.write(layer, meta.slot_mapping, k, v)
    ns = meta.n_single
    if ns == q.shape[0]:
        out = _single_rows(q, layer, scale, meta)
    elif ns == 0:
        out = _multi_rows(q, k, v, layer, scale, meta)
    else:
        out = torch.cat(
            (_single_rows(q[:ns], layer, scale, meta), _multi_rows(q[ns:], k[ns:], v[ns:], layer, scale, meta))
        )
    return out.unsqueeze(0), None


def _single_rows(q: torch.Tensor, layer: int, scale: float, meta: StepMetadata) -> torch.Tensor:
    """Attention of one-token rows over their paged contexts."""
    assert meta.block_tables is not None and meta.seq_lens is not None
    k_cache, v_cache = meta.kv.layer(layer)
    if meta.decode_impl == "triton":
        return paged_decode(q, k_cache, v_cache, meta.block_tables, meta.seq_lens, scale, meta.num_splits)
    return gather_decode(q, k_cache, v_cache, meta.block_tables, meta.seq_lens, scale)


def gather_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Reference decode attention: gather each row's pages, mask past its length, SDPA (graph-safe).

    Args:
        q: ``(batch, heads, head_dim)``.
        k_cache: ``(pages, page_size, kv_heads, head_dim)``.
        v_cache: Same shape as ``k_cache``.
        block_tables: ``(batch, width)`` int32.
        seq_lens: ``(batch,)`` int32 context lengths.
        scale: Softmax scale.

    Returns:
        ``(batch, heads, head_dim)``.
    """
    batch, width = block_tables.shape
    page = k_cache.shape[1]
    k = k_cache[block_tables.long()].flatten(1, 2).transpose(1, 2)
    v = v_cache[block_tables.long()].flatten(1, 2).transpose(1, 2)
    pos = torch.arange(width * page, device=q.device)
    mask = (pos[None, :] < seq_lens[:, None]).view(batch, 1, 1, width * page)
    out = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    return out.squeeze(2)


def _multi_rows(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: int, scale: float, meta: StepMetadata
) -> torch.Tensor:
    """Causal attention of multi-token rows over their cached prefixes and their own tokens."""
    if meta.kv_slots is not None:
        k, v = meta.kv.gather(layer, meta.kv_slots)
    if meta.prefill_impl == "flash":
        assert meta.cu_q is not None and meta.cu_k is not None
        out = torch.ops.aten._flash_attention_forward(
            q.contiguous(), k.contiguous(), v.contiguous(), meta.cu_q, meta.cu_k, max(meta.q_lens), max(meta.k_lens),
            0.0, True, False, scale=scale,
        )  # fmt: skip
        return out[0]
    outs = []
    q_off = k_off = 0
    for nq, nk in zip(meta.q_lens, meta.k_lens, strict=True):
        outs.append(causal_attention(q[q_off : q_off + nq], k[k_off : k_off + nk], v[k_off : k_off + nk], scale))
        q_off += nq
        k_off += nk
    return torch.cat(outs)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of the last ``len(q)`` positions of a sequence over all its ``len(k)`` positions.

    Args:
        q: ``(n, heads, head_dim)`` queries of positions ``len(k) - n ... len(k) - 1``.
        k: ``(len, kv_heads, head_dim)``.
        v: Same shape as ``k``.
        scale: Softmax scale.

    Returns:
        ``(n, heads, head_dim)``.
    """
    n, ctx = q.shape[0], k.shape[0]
    rows = torch.arange(n, device=q.device)[:, None] + (ctx - n)
    mask = torch.arange(ctx, device=q.device)[None, :] <= rows
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=mask, scale=scale, enable_gqa=True
    )
    return out.transpose(0, 1)
