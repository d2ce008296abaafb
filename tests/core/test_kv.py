"""The KV block pool: exact accounting, watermark checks without side effects, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsched_gym.core.kv import BlockPool, KVConfig
from llmsched_gym.errors import KVCapacityError


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_blocks": 0}, "num_blocks"),
        ({"num_blocks": 4, "block_size": 0}, "block_size"),
        ({"num_blocks": 4, "watermark": 1.0}, "watermark"),
    ],
)
def test_invalid_kv_config_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KVConfig(**kwargs)


def test_blocks_for_rounds_up_to_whole_blocks():
    pool = BlockPool(KVConfig(10, 16))
    assert [pool.blocks_for(t) for t in (0, 1, 16, 17, 32)] == [0, 1, 1, 2, 2]


def test_watermark_check_is_side_effect_free():
    pool = BlockPool(KVConfig(100, 16, 0.05))
    assert pool.watermark_blocks == 5
    assert pool.can_allocate(95, respect_watermark=True)
    assert not pool.can_allocate(96, respect_watermark=True)
    assert pool.can_allocate(100)
    assert pool.free == 100


def test_over_allocation_raises_and_changes_nothing():
    pool = BlockPool(KVConfig(8))
    pool.allocate(5)
    with pytest.raises(KVCapacityError, match="need 4 blocks, 3 free"):
        pool.allocate(4)
    assert pool.free == 3
    with pytest.raises(ValueError, match="exceed the pool"):
        pool.release(6)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), max_size=60))
def test_random_allocations_conserve_blocks(ops):
    pool = BlockPool(KVConfig(64))
    held = 0
    for take, amount in ops:
        if take and pool.can_allocate(amount):
            pool.allocate(amount)
            held += amount
        elif not take and amount <= held:
            pool.release(amount)
            held -= amount
        assert pool.free + held == pool.total
        assert 0 <= pool.free <= pool.total
