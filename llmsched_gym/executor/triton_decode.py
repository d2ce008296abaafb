"""A split-K paged decode attention kernel in Triton (one query token per sequence).

Each program handles one sequence, one KV head (all query heads of its GQA group) and one split of the
sequence's context; a second kernel merges the splits with their log-sum-exp. Contexts are read page by
page through the block table, ``BLOCK_N`` tokens per tile (4 pages of 16 by default). The split length is
computed inside the kernel from the sequence length, so one launch configuration (fixed grid) serves any
context: the property CUDA graphs need.

Triton is optional: :func:`triton_available` tells whether the kernels can run; callers fall back to a
gather + SDPA path otherwise. With ``TRITON_INTERPRET=1`` set before import, the kernels run on CPU tensors
(used by the tests on machines without a GPU).
"""

from __future__ import annotations

import math

import torch

try:  # Triton ships with CUDA builds of torch; CPU builds usually lack it.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None
    tl = None

LOG2E = 1.4426950408889634


def triton_available() -> bool:
    """Whether Triton is importable (the kernels then run on CUDA, or on CPU under ``TRITON_INTERPRET=1``)."""
    return triton is not None


def choose_num_splits(batch: int, kv_heads: int, max_context: int, sm_count: int, block_n: int = 64) -> int:
    """Splits per sequence so that about two programs per SM run, bounded by the context and 16.

    The result is a power of two (one compiled kernel variant each: 1, 2, 4, 8 or 16).

    Args:
        batch: Sequences in the launch.
        kv_heads: KV heads of the model (programs per sequence and split).
        max_context: Longest context the launch may see (a split shorter than 4 tiles is not worth it).
        sm_count: Streaming multiprocessors of the GPU.
        block_n: Tokens per tile.
    """
    want = math.ceil(2 * sm_count / max(1, batch * kv_heads))
    cap = max(1, max_context // (4 * block_n))
    best = max(1, min(want, cap, 16))
    return 1 << (best.bit_length() - 1)


if triton is not None:

    @triton.jit
    def _decode_split_kernel(  # type: ignore[no-untyped-def]
        q_ptr, k_ptr, v_ptr, bt_ptr, lens_ptr, o_ptr, lse_ptr,
        stride_qb, stride_qh, stride_kblk, stride_kpos, stride_kh, stride_bt,
        stride_ob, stride_oh, stride_os, stride_lb, stride_lh,
        scale_log2,
        GROUP: tl.constexpr, GROUP_P: tl.constexpr, HEAD_DIM: tl.constexpr, HEAD_DIM_P: tl.constexpr,
        PAGE: tl.constexpr, BLOCK_N: tl.constexpr, NUM_SPLITS: tl.constexpr, USE_DOT: tl.constexpr,
    ):  # fmt: skip
        """Attention of one sequence's query heads of one KV head over one split of its context."""
        b = tl.program_id(0)
        kvh = tl.program_id(1)
        split = tl.program_id(2)
        seq_len = tl.load(lens_ptr + b)
        per_split = tl.cdiv(tl.cdiv(seq_len, NUM_SPLITS), BLOCK_N) * BLOCK_N
        lo = split * per_split
        hi = tl.minimum(lo + per_split, seq_len)
        g = tl.arange(0, GROUP_P)
        d = tl.arange(0, HEAD_DIM_P)
        gmask = g < GROUP
        dmask = d < HEAD_DIM
        heads = kvh * GROUP + g
        qmask = gmask[:, None] & dmask[None, :]
        q = tl.load(q_ptr + b * stride_qb + heads[:, None] * stride_qh + d[None, :], mask=qmask, other=0.0)
        m_i = tl.full([GROUP_P], float("-inf"), tl.float32)
        l_i = tl.zeros([GROUP_P], tl.float32)
        acc = tl.zeros([GROUP_P, HEAD_DIM_P], tl.float32)
        offs = tl.arange(0, BLOCK_N)
        for start in range(lo, hi, BLOCK_N):
            t = start + offs
            tmask = t < hi
            blk = tl.load(bt_ptr + b * stride_bt + t // PAGE, mask=tmask, other=0).to(tl.int64)
            base = blk * stride_kblk + (t % PAGE) * stride_kpos + kvh * stride_kh
            kvmask = tmask[:, None] & dmask[None, :]
            k = tl.load(k_ptr + base[:, None] + d[None, :], mask=kvmask, other=0.0)
            v = tl.load(v_ptr + base[:, None] + d[None, :], mask=kvmask, other=0.0)
            if USE_DOT:
                s = tl.dot(q.to(k.dtype), tl.trans(k)).to(tl.float32)
            else:
                s = tl.sum(q.to(tl.float32)[:, None, :] * k.to(tl.float32)[None, :, :], axis=2)
            s = tl.where(tmask[None, :], s * scale_log2, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            if USE_DOT:
                pv = tl.dot(p.to(v.dtype), v).to(tl.float32)
            else:
                pv = tl.sum(p[:, :, None] * v.to(tl.float32)[None, :, :], axis=1)
            acc = acc * alpha[:, None] + pv
            m_i = m_new
        l_safe = tl.where(l_i > 0.0, l_i, 1.0)
        out = acc / l_safe[:, None]
        o_off = b * stride_ob + heads[:, None] * stride_oh + split * stride_os + d[None, :]
        tl.store(o_ptr + o_off, out.to(o_ptr.dtype.element_ty), mask=qmask)
        if NUM_SPLITS > 1:
            lse = m_i + tl.log2(l_i)
            tl.store(lse_ptr + b * stride_lb + heads * stride_lh + split, lse, mask=gmask)

    @triton.jit
    def _combine_kernel(  # type: ignore[no-untyped-def]
        o_ptr, lse_ptr, out_ptr,
        stride_ob, stride_oh, stride_os, stride_lb, stride_lh, stride_outb, stride_outh,
        HEAD_DIM: tl.constexpr, HEAD_DIM_P: tl.constexpr, NUM_SPLITS: tl.constexpr, SPLITS_P: tl.constexpr,
    ):  # fmt: skip
        """Merge the splits of one (sequence, head) weighted by their log-sum-exp."""
        b = tl.program_id(0)
        h = tl.program_id(1)
        s = tl.arange(0, SPLITS_P)
        d = tl.arange(0, HEAD_DIM_P)
        smask = s < NUM_SPLITS
        dmask = d < HEAD_DIM
        lse = tl.load(lse_ptr + b * stride_lb + h * stride_lh + s, mask=smask, other=float("-inf"))
        w = tl.exp2(lse - tl.max(lse, axis=0))
        o_off = b * stride_ob + h * stride_oh + s[:, None] * stride_os + d[None, :]
        o = tl.load(o_ptr + o_off, mask=smask[:, None] & dmask[None, :], other=0.0)
        res = tl.sum(o * w[:, None], axis=0) / tl.sum(w, axis=0)
        tl.store(out_ptr + b * stride_outb + h * stride_outh + d, res.to(out_ptr.dtype.element_ty), mask=dmask)


SPLIT_CHOICES = (1, 2, 4, 8, 16)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def paged_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    num_splits: int = 1,
    block_n: int = 64,
) -> torch.Tensor:
    """Decode attention of one query token per sequence over its paged context.

    Args:
        q: Queries ``(batch, heads, head_dim)`` (last dimension contiguous).
        k_cache: Key pages ``(pages, page_size, kv_heads, head_dim)``, contiguous.
        v_cache: Value pages, same shape as ``k_cache``.
        block_tables: ``(batch, width)`` int32 physical page ids of each sequence.
        seq_lens: ``(batch,)`` int32 context lengths (the new token included), each >= 1.
        scale: Softmax scale (``head_dim ** -0.5``).
        num_splits: Splits of each context (see :func:`choose_num_splits`).
        block_n: Tokens per tile, a multiple of the page size and at least 16.

    Returns:
        Attention output ``(batch, heads, head_dim)`` in ``q``'s dtype.
    """
    if triton is None:
        raise RuntimeError("paged_decode needs Triton; install triton or use the torch attention path")
    batch, heads, dim = q.shape
    _, page, kv_heads, _ = k_cache.shape
    group = heads // kv_heads
    use_dot = group > 1
    group_p = max(16, _next_pow2(group)) if use_dot else 1
    dim_p = max(16, _next_pow2(dim))
    out = torch.empty_like(q)
    if num_splits > 1:
        part = torch.empty((batch, heads, num_splits, dim), dtype=torch.float32, device=q.device)
        lse = torch.empty((batch, heads, num_splits), dtype=torch.float32, device=q.device)
    else:
        part, lse = out.unsqueeze(2), torch.empty((1, 1), dtype=torch.float32, device=q.device)
    _decode_split_kernel[(batch, kv_heads, num_splits)](
        q, k_cache, v_cache, block_tables, seq_lens, part, lse,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), block_tables.stride(0),
        part.stride(0), part.stride(1), part.stride(2), lse.stride(0), lse.stride(1),
        scale * LOG2E,
        GROUP=group, GROUP_P=group_p, HEAD_DIM=dim, HEAD_DIM_P=dim_p,
        PAGE=page, BLOCK_N=block_n, NUM_SPLITS=num_splits, USE_DOT=use_dot,
    )  # fmt: skip
    if num_splits > 1:
        _combine_kernel[(batch, heads)](
            part, lse, out,
            part.stride(0), part.stride(1), part.stride(2), lse.stride(0), lse.stride(1), out.stride(0), out.stride(1),
            HEAD_DIM=dim, HEAD_DIM_P=dim_p, NUM_SPLITS=num_splits, SPLITS_P=max(2, _next_pow2(num_splits)),
        )  # fmt: skip
    return out
