"""Paged KV block pool with exact aggregate accounting.

The pool counts blocks; which request holds how many is kept by the engine's request table
(``blocks`` column), so that ``sum(held) + free == total`` is an invariant the tests check.
Physical block ids exist only in the live executor, which mirrors this accounting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmsched_gym.core.rules import blocks_for
from llmsched_gym.errors import KVCapacityError


@dataclass(frozen=True, slots=True)
class KVConfig:
    """KV cache configuration.

    Attributes:
        num_blocks: Capacity in blocks (derive it from GPU memory and model shape with
            :func:`llmsched_gym.hardware.kv_capacity_blocks`, or set it directly).
        block_size: Tokens per block (default 16, as every reference engine).
        watermark: Fraction of blocks kept free at admission by schedulers that use a watermark
            (vLLM V0, Sarathi-Serve, SLAI use 0.01).
    """

    num_blocks: int
    block_size: int = 16
    watermark: float = 0.01

    def __post_init__(self) -> None:
        """Validate sizes."""
        if self.num_blocks < 1:
            raise ValueError(f"KVConfig: num_blocks={self.num_blocks} must be >= 1")
        if self.block_size < 1:
            raise ValueError(f"KVConfig: block_size={self.block_size} must be >= 1 (16 is the usual value)")
        if not 0.0 <= self.watermark < 1.0:
            raise ValueError(f"KVConfig: watermark={self.watermark} must be in [0, 1), e.g. 0.01")

    @property
    def watermark_blocks(self) -> int:
        """Blocks kept free by watermark checks: ``floor(watermark * num_blocks)``."""
        return math.floor(self.watermark * self.num_blocks)

    @property
    def capacity_tokens(self) -> int:
        """Token capacity of the pool."""
        return self.num_blocks * self.block_size


class BlockPool:
    """Counts free KV blocks; allocation and release are exact and checked.

    Args:
        config: Pool capacity, block size and watermark.
    """

    __slots__ = ("block_size", "free", "total", "watermark_blocks")

    def __init__(self, config: KVConfig) -> None:
        self.total = config.num_blocks
        self.block_size = config.block_size
        self.watermark_blocks = config.watermark_blocks
        self.free = config.num_blocks

    @property
    def used(self) -> int:
        """Blocks currently allocated."""
        return self.total - self.free

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold ``tokens`` KV slots."""
        return int(blocks_for.py_func(tokens, self.block_size))

    def can_allocate(self, blocks: int, *, respect_watermark: bool = False) -> bool:
        """Whether ``blocks`` more blocks fit (side-effect free)."""
        reserve = self.watermark_blocks if respect_watermark else 0
        return self.free - blocks >= reserve

    def allocate(self, blocks: int) -> None:
        """Take ``blocks`` blocks; raise :class:`KVCapacityError` if they are not free."""
        if blocks < 0:
            raise ValueError(f"BlockPool.allocate: blocks={blocks} must be >= 0")
        if blocks > self.free:
            raise KVCapacityError(f"KV capacity: need {blocks} blocks, {self.free} free of {self.total}")
        self.free -= blocks

    def release(self, blocks: int) -> None:
        """Return ``blocks`` blocks to the pool."""
        if blocks < 0 or self.free + blocks > self.total:
            raise ValueError(f"BlockPool.release: releasing {blocks} blocks would exceed the pool ({self.free} free)")
        self.free += blocks
