"""The paged KV cache: a block manager (the engine's accounting, with physical ids) and the KV tensors.

The block manager holds, for each request with KV, ``ceil(cached_tokens / block_size)`` physical blocks,
out of a fixed number given at construction, exactly the accounting of
:class:`llmsched_gym.core.kv.BlockPool` in on-demand mode (in prompt-allocation mode the engine reserves
more than the executor uses, so the executor never runs out when the engine's plan fits). Block tables
live in one preallocated ``int32`` array, one row per request holding KV, so per-iteration metadata is
built with array indexing, never per-token Python loops.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from llmsched_gym.errors import KVCapacityError
from llmsched_gym.executor.models import ModelShape

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


def expand_ranges(lo: I64, hi: I64) -> tuple[I64, I64]:
    """Concatenate the integer ranges ``[lo[i], hi[i])`` without a Python loop.

    Returns:
        ``(row, value)``: for every element of the concatenation, the index ``i`` of its range and its value.
    """
    lengths = hi - lo
    total = int(lengths.sum())
    row = np.repeat(np.arange(lo.size, dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths
    value = np.arange(total, dtype=np.int64) - np.repeat(offsets - lo, lengths)
    return row, value


class BlockManager:
    """Physical KV blocks per request, allocated on demand and freed on release.

    Args:
        num_blocks: Blocks in the pool (the engine's ``KVConfig.num_blocks``).
        block_size: Tokens per block (the engine's ``KVConfig.block_size``).
        max_blocks_per_seq: Width of a block table (``ceil(max_context / block_size)``).
        max_seqs: Requests that may hold KV at the same time.
    """

    def __init__(self, num_blocks: int, block_size: int, max_blocks_per_seq: int, max_seqs: int) -> None:
        for name, value in (("num_blocks", num_blocks), ("block_size", block_size), ("max_seqs", max_seqs)):
            if value < 1:
                raise ValueError(f"BlockManager: {name}={value} must be >= 1")
        if max_blocks_per_seq < 1:
            raise ValueError(f"BlockManager: max_blocks_per_seq={max_blocks_per_seq} must be >= 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.max_blocks_per_seq = max_blocks_per_seq
        self.table: I32 = np.zeros((max_seqs, max_blocks_per_seq), dtype=np.int32)
        self._held = np.zeros(max_seqs, dtype=np.int64)
        self._free_blocks: list[int] = list(range(num_blocks - 1, -1, -1))
        self._free_rows: list[int] = list(range(max_seqs - 1, -1, -1))
        self._row: dict[int, int] = {}
        self._cached: dict[int, int] = {}

    @property
    def num_free(self) -> int:
        """Blocks not held by any request."""
        return len(self._free_blocks)

    @property
    def num_used(self) -> int:
        """Blocks held by requests."""
        return self.num_blocks - len(self._free_blocks)

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to cache ``tokens`` tokens."""
        return -(-tokens // self.block_size)

    def num_cached(self, rid: int) -> int:
        """Tokens whose KV is cached for request ``rid`` (0 if it holds none)."""
        return self._cached.get(rid, 0)

    def blocks(self, rid: int) -> list[int]:
        """Physical block ids of ``rid`` in order."""
        row = self._row.get(rid)
        return [] if row is None else self.table[row, : self._held[row]].tolist()

    def held_by(self) -> dict[int, int]:
        """Blocks held per request id."""
        return {rid: int(self._held[row]) for rid, row in self._row.items()}

    def resize(self, ids: I64, tokens: I64) -> None:
        """Make each ``ids[i]`` hold exactly the blocks for ``tokens[i]`` cached tokens (grow or shrink).

        All-or-nothing: nothing changes when the pool cannot hold the result.

        Raises:
            KVCapacityError: If more blocks are needed than are free.
            ValueError: If a length exceeds the block-table width or too many requests hold KV.
        """
        need = -(-tokens // self.block_size)
        if need.size and int(need.max()) > self.max_blocks_per_seq:
            i = int(np.argmax(need))
            raise ValueError(
                f"request {int(ids[i])} needs {int(tokens[i])} cached tokens, more than the maximum context "
                f"{self.max_blocks_per_seq * self.block_size}; raise max_context or shorten the request"
            )
        held = np.array([self._held[self._row[r]] if r in self._row else 0 for r in ids.tolist()], dtype=np.int64)
        grow = int(np.maximum(need - held, 0).sum())
        shrink = int(np.maximum(held - need, 0).sum())
        if grow > self.num_free + shrink:
            raise KVCapacityError(
                f"executor KV pool: the iteration needs {grow} new blocks but {self.num_free} are free of "
                f"{self.num_blocks}; give the executor the engine's num_blocks and block_size"
            )
        new_rows = sum(1 for r in ids.tolist() if r not in self._row)
        if new_rows > len(self._free_rows):
            raise ValueError(f"more than {self.table.shape[0]} requests hold KV at once; raise max_seqs")
        for rid, n_blocks, n_tok in zip(ids.tolist(), need.tolist(), tokens.tolist(), strict=True):
            self._set(rid, n_blocks, n_tok)

    def _set(self, rid: int, n_blocks: int, n_tokens: int) -> None:
        row = self._row.get(rid)
        if row is None:
            if n_blocks == 0:
                return
            row = self._free_rows.pop()
            self._row[rid] = row
        have = int(self._held[row])
        if n_blocks < have:
            self._free_blocks.extend(self.table[row, n_blocks:have].tolist())
        for j in range(have, n_blocks):
            self.table[row, j] = self._free_blocks.pop()
        self._held[row] = n_blocks
        self._cached[rid] = n_tokens

    def free(self, ids: I64) -> None:
        """Return every block of ``ids`` to the pool (ids holding nothing are ignored)."""
        for rid in ids.tolist():
            row = self._row.pop(rid, None)
            self._cached.pop(rid, None)
            if row is None:
                continue
            self._free_blocks.extend(self.table[row, : self._held[row]].tolist())
            self._held[row] = 0
            self._free_rows.append(row)

    def rows(self, ids: I64) -> I64:
        """Block-table rows of ``ids`` (each must hold KV)."""
        return np.fromiter((self._row[r] for r in ids.tolist()), dtype=np.int64, count=ids.size)

    def slots(self, rows: I64, lo: I64, hi: I64) -> tuple[I64, I64, I64]:
        """Pool slots of positions ``[lo[i], hi[i])`` of each row, concatenated.

        Returns:
            ``(segment, position, slot)`` of every position: its range index, its position in the
            sequence, and its pool slot ``block * block_size + offset``.
        """
        seg, pos = expand_ranges(lo, hi)
        blocks = self.table[rows[seg], pos // self.block_size].astype(np.int64)
        return seg, pos, blocks * self.block_size + pos % self.block_size

    def block_table(self, rows: I64, width: int) -> I32:
        """The first ``width`` block-table columns of ``rows`` (a copy)."""
        out: I32 = self.table[rows, :width]
        return out


class KVCache:
    """Paged K and V tensors of all layers: ``(layers, num_blocks + 1, block_size, kv_heads, head_dim)``.

    The extra last block is a scratch block that padded rows of CUDA-graph batches write into; the block
    manager never hands it out.

    Args:
        shape: The model's attention shape.
        num_blocks: Blocks usable by requests.
        block_size: Tokens per block.
        dtype: KV dtype (the model's dtype).
        device: Device of the tensors.
    """

    def __init__(
        self, shape: ModelShape, num_blocks: int, block_size: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        size = (shape.num_layers, num_blocks + 1, block_size, shape.num_kv_heads, shape.head_dim)
        self.k = torch.zeros(size, dtype=dtype, device=device)
        self.v = torch.zeros(size, dtype=dtype, device=device)
        self.block_size = block_size
        self.scratch_block = num_blocks

    def layer(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V blocks of layer ``idx``: ``(num_blocks + 1, block_size, kv_heads, head_dim)`` each."""
        return self.k[idx], self.v[idx]

    def write(self, idx: int, slots: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        """Store ``key``/``value`` (``(tokens, kv_heads, head_dim)``) of layer ``idx`` at pool ``slots``."""
        heads, dim = self.k.shape[-2:]
        self.k[idx].view(-1, heads, dim).index_copy_(0, slots, key)
        self.v[idx].view(-1, heads, dim).index_copy_(0, slots, value)

    def gather(self, idx: int, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of layer ``idx`` at ``slots``: ``(len(slots), kv_heads, head_dim)`` each."""
        heads, dim = self.k.shape[-2:]
        k = self.k[idx].view(-1, heads, dim).index_select(0, slots)
        v = self.v[idx].view(-1, heads, dim).index_select(0, slots)
        return k, v

    @staticmethod
    def bytes_per_block(shape: ModelShape, block_size: int, dtype: torch.dtype) -> int:
        """Bytes of K plus V of one block over all layers."""
        elem = torch.empty(0, dtype=dtype).element_size()
        return 2 * shape.num_layers * block_size * shape.num_kv_heads * shape.head_dim * elem

    @classmethod
    def blocks_for_memory(cls, shape: ModelShape, block_size: int, dtype: torch.dtype, budget_bytes: int) -> int:
        """How many blocks (plus the scratch block) fit in ``budget_bytes``."""
        return max(0, budget_bytes // cls.bytes_per_block(shape, block_size, dtype) - 1)
