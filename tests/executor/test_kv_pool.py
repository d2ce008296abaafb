"""Block manager accounting and the paged KV tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmsched_gym.errors import KVCapacityError
from llmsched_gym.executor.kv_pool import BlockManager, KVCache, expand_ranges
from llmsched_gym.executor.models import ModelShape


def _ids(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64)


def test_expand_ranges() -> None:
    seg, val = expand_ranges(_ids(3, 0, 5), _ids(5, 2, 5))
    assert seg.tolist() == [0, 0, 1, 1]
    assert val.tolist() == [3, 4, 0, 1]
    seg, val = expand_ranges(_ids(), _ids())
    assert seg.size == 0 and val.size == 0


def test_resize_grow_shrink_free() -> None:
    bm = BlockManager(num_blocks=10, block_size=4, max_blocks_per_seq=8, max_seqs=4)
    bm.resize(_ids(7, 9), _ids(5, 12))
    assert bm.held_by() == {7: 2, 9: 3}
    assert bm.num_free == 5 and bm.num_cached(9) == 12
    bm.resize(_ids(9), _ids(4))
    assert bm.held_by()[9] == 1 and bm.num_free == 7
    blocks = bm.blocks(7) + bm.blocks(9)
    assert len(set(blocks)) == len(blocks) and max(blocks) < 10
    bm.free(_ids(7, 9, 123))
    assert bm.num_free == 10 and bm.held_by() == {}
    assert bm.num_cached(7) == 0


def test_capacity_error_is_atomic() -> None:
    bm = BlockManager(num_blocks=3, block_size=4, max_blocks_per_seq=8, max_seqs=4)
    bm.resize(_ids(0), _ids(4))
    with pytest.raises(KVCapacityError, match="needs 4 new blocks but 2 are free"):
        bm.resize(_ids(0, 1), _ids(8, 12))
    assert bm.held_by() == {0: 1} and bm.num_free == 2
    with pytest.raises(ValueError, match="maximum context 32"):
        bm.resize(_ids(2), _ids(33))
    small = BlockManager(num_blocks=8, block_size=4, max_blocks_per_seq=8, max_seqs=1)
    small.resize(_ids(0), _ids(1))
    with pytest.raises(ValueError, match="raise max_seqs"):
        small.resize(_ids(1), _ids(1))


def test_slots_follow_block_table() -> None:
    bm = BlockManager(num_blocks=6, block_size=4, max_blocks_per_seq=4, max_seqs=2)
    bm.resize(_ids(1, 2), _ids(6, 9))
    rows = bm.rows(_ids(1, 2))
    seg, pos, slots = bm.slots(rows, _ids(4, 0), _ids(6, 9))
    assert seg.tolist() == [0, 0] + [1] * 9
    assert pos.tolist() == [4, 5, *range(9)]
    b1, b2 = bm.blocks(1), bm.blocks(2)
    assert slots[:2].tolist() == [b1[1] * 4, b1[1] * 4 + 1]
    assert slots[2:].tolist() == [b2[p // 4] * 4 + p % 4 for p in range(9)]
    assert bm.block_table(rows, 3).tolist()[1] == b2


def test_validation() -> None:
    with pytest.raises(ValueError, match="num_blocks=0"):
        BlockManager(0, 16, 4, 4)
    with pytest.raises(ValueError, match="max_blocks_per_seq=0"):
        BlockManager(4, 16, 0, 4)


def test_kv_cache_write_gather_and_sizing() -> None:
    shape = ModelShape(num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, vocab_size=32, max_context=64)
    kv = KVCache(shape, num_blocks=3, block_size=4, dtype=torch.float32, device=torch.device("cpu"))
    assert kv.k.shape == (2, 4, 4, 2, 8) and kv.scratch_block == 3
    slots = torch.tensor([5, 0, 11])
    key = torch.randn(3, 2, 8)
    kv.write(1, slots, key, -key)
    k, v = kv.gather(1, slots)
    torch.testing.assert_close(k, key)
    torch.testing.assert_close(v, -key)
    assert kv.k[0].abs().sum() == 0
    per_block = KVCache.bytes_per_block(shape, 4, torch.bfloat16)
    assert per_block == 2 * 2 * 4 * 2 * 8 * 2
    assert KVCache.blocks_for_memory(shape, 4, torch.bfloat16, 10 * per_block) == 9
