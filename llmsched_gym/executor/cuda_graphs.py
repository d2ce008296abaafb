"""CUDA graphs of decode-only iterations, one per batch-size bucket, sharing one memory pool.

A decode iteration of a 32-layer model launches hundreds of kernels; eager PyTorch spends 25-35 ms of host
time on that (executor.md), more than the GPU work. A captured graph replays the whole forward (the Triton
paged decode kernel included, whose grid does not depend on context lengths) from static input buffers.
A batch of ``B`` rows runs in the smallest bucket ``>= B``; padding rows read and write only the KV
cache's scratch block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from llmsched_gym.executor.attention import META_KWARG, DecodeImpl, StepMetadata
from llmsched_gym.executor.kv_pool import KVCache

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(slots=True)
class _Captured:
    graph: torch.cuda.CUDAGraph
    logits: torch.Tensor
    tokens: torch.Tensor


class DecodeGraphs:
    """Captured decode forwards with static inputs.

    Args:
        model: The HF causal LM (attention implementation already set to the paged one).
        kv: The paged KV cache.
        max_blocks_per_seq: Block-table width (covers the longest context).
        buckets: Batch sizes to capture, e.g. :data:`DEFAULT_BUCKETS`.
        splits: Triton decode splits per bucket (1 where absent).
        decode_impl: Decode kernel inside the graphs (``"triton"``; ``"torch"`` reads the full table width).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        kv: KVCache,
        max_blocks_per_seq: int,
        buckets: tuple[int, ...],
        splits: dict[int, int],
        decode_impl: DecodeImpl = "triton",
    ) -> None:
        if not buckets or min(buckets) < 1:
            raise ValueError(f"DecodeGraphs: buckets={buckets} must be non-empty positive batch sizes")
        self.model = model
        self.kv = kv
        self.buckets = tuple(sorted(set(buckets)))
        self.splits = splits
        self.decode_impl: DecodeImpl = decode_impl
        dev = kv.k.device
        top = self.buckets[-1]
        self.scratch_slot = kv.scratch_block * kv.block_size
        self.input_ids = torch.zeros((1, top), dtype=torch.int64, device=dev)
        self.positions = torch.zeros((1, top), dtype=torch.int64, device=dev)
        self.slots = torch.full((top,), self.scratch_slot, dtype=torch.int64, device=dev)
        self.block_tables = torch.full((top, max_blocks_per_seq), kv.scratch_block, dtype=torch.int32, device=dev)
        self.seq_lens = torch.ones(top, dtype=torch.int32, device=dev)
        self._graphs: dict[int, _Captured] = {}
        self._pool: Any = None

    @property
    def max_batch(self) -> int:
        """Largest captured batch size."""
        return self.buckets[-1]

    def bucket_for(self, batch: int) -> int | None:
        """Smallest bucket holding ``batch`` rows, or ``None`` if it is larger than every bucket."""
        for b in self.buckets:
            if b >= batch:
                return b
        return None

    def capture_all(self) -> None:
        """Capture every bucket, largest first (the shared pool is sized by the first capture)."""
        for b in reversed(self.buckets):
            self._capture(b)

    def _forward(self, b: int, meta: StepMetadata) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(
            input_ids=self.input_ids[:, :b], position_ids=self.positions[:, :b], use_cache=False, **{META_KWARG: meta}
        )
        logits = out.logits[0]
        return logits, logits.argmax(-1)

    def _capture(self, b: int) -> _Captured:
        if b in self._graphs:
            return self._graphs[b]
        self._pad(0, b)
        meta = self.metadata(b)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(2):
                self._forward(b, meta)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self._pool):
            logits, tokens = self._forward(b, meta)
        if self._pool is None:
            self._pool = graph.pool()
        captured = _Captured(graph, logits, tokens)
        self._graphs[b] = captured
        return captured

    def metadata(self, b: int) -> StepMetadata:
        """Step metadata of bucket ``b`` over the static buffers."""
        return StepMetadata(
            kv=self.kv, slot_mapping=self.slots[:b], n_single=b, block_tables=self.block_tables[:b],
            seq_lens=self.seq_lens[:b], num_splits=self.splits.get(b, 1), q_lens=[], k_lens=[], cu_q=None,
            cu_k=None, kv_slots=None, decode_impl=self.decode_impl, prefill_impl="torch",
        )  # fmt: skip

    def _pad(self, lo: int, hi: int) -> None:
        """Make rows ``[lo, hi)`` padding rows (scratch block, length 1)."""
        self.input_ids[0, lo:hi] = 0
        self.positions[0, lo:hi] = 0
        self.slots[lo:hi] = self.scratch_slot
        self.block_tables[lo:hi, 0] = self.kv.scratch_block
        self.seq_lens[lo:hi] = 1

    def run(
        self,
        input_ids: npt.NDArray[np.int64],
        positions: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int64],
        block_tables: npt.NDArray[np.int32],
        seq_lens: npt.NDArray[np.int64],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Replay the bucket of ``len(input_ids)`` rows on these inputs.

        Returns:
            ``(tokens, logits)`` of the real rows: greedy tokens ``(B,)`` and logits ``(B, vocab)`` (device
            views into the graph's outputs, valid until the next replay).
        """
        n = int(input_ids.size)
        b = self.bucket_for(n)
        if b is None:
            raise ValueError(f"batch of {n} rows exceeds the largest CUDA-graph bucket {self.max_batch}")
        cap = self._capture(b)
        dev = self.input_ids.device
        width = block_tables.shape[1]
        self.input_ids[0, :n].copy_(torch.from_numpy(input_ids), non_blocking=False)
        self.positions[0, :n].copy_(torch.from_numpy(positions))
        self.slots[:n].copy_(torch.from_numpy(slots))
        self.block_tables[:n, :width].copy_(torch.from_numpy(np.ascontiguousarray(block_tables)).to(dev))
        self.seq_lens[:n].copy_(torch.from_numpy(seq_lens.astype(np.int32)))
        if n < b:
            self._pad(n, b)
        cap.graph.replay()
        return cap.tokens[:n], cap.logits[:n]
