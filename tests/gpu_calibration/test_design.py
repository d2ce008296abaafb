"""The measurement design: every part present, every batch within the limits, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu_calibration.design import CHUNK_SIZES, DesignConfig, Limits, design, grid_batches, spread_contexts


def test_full_design_covers_every_part_and_off_tile_chunk_sizes():
    batches = design(DesignConfig(), Limits(max_context=16384, kv_tokens=1 << 22), np.random.default_rng(0))
    parts = {b.part for b in batches}
    assert parts == {"prefill", "decode", "mixed", "random"}
    chunks = {b.chunks[0][0] for b in batches if b.part == "prefill"}
    assert {1, 8192, 100, 300, 1000} <= chunks and any(c % 16 for c in chunks if c > 16)
    assert max(len(b.decodes) for b in batches if b.part == "decode") == 512
    assert {b.role for b in batches if b.part == "random"} == {"holdout"}
    assert {b.role for b in batches if b.part != "random"} == {"train"}


@settings(max_examples=40, deadline=None)
@given(
    max_tokens=st.integers(64, 4096),
    kv_blocks=st.integers(64, 20000),
    max_context=st.integers(256, 8192),
    max_rows=st.integers(4, 512),
    seed=st.integers(0, 10),
)
def test_every_designed_batch_fits_the_limits(max_tokens, kv_blocks, max_context, max_rows, seed):
    limits = Limits(max_tokens, kv_blocks * 16, max_context, max_rows, 16)
    for batch in design(DesignConfig.small(), limits, np.random.default_rng(seed)):
        assert limits.fits(batch.chunks, batch.decodes)
        summary = batch.summary()
        assert summary.total_tokens <= max_tokens and summary.n_seqs <= max_rows


def test_same_seed_same_design_and_the_grid_does_not_depend_on_it():
    limits = Limits(max_context=4096, kv_tokens=200_000)
    a = design(DesignConfig.small(), limits, np.random.default_rng(3))
    b = design(DesignConfig.small(), limits, np.random.default_rng(3))
    c = design(DesignConfig.small(), limits, np.random.default_rng(4))
    assert a == b and a != c
    grid = grid_batches(DesignConfig.small(), limits)
    assert a[: len(grid)] == grid == c[: len(grid)]


def test_spread_contexts_average_the_requested_context():
    ctx = spread_contexts(512, 64)
    assert len(ctx) == 64 and min(ctx) >= 1 and max(ctx) < 1024
    assert np.mean(ctx) == pytest.approx(512, rel=0.01)


def test_limits_that_admit_no_random_batch_are_an_error():
    with pytest.raises(ValueError, match="no random batch fits"):
        design(DesignConfig(n_random=3), Limits(kv_tokens=8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_rows=0"):
        Limits(max_rows=0)


def test_default_chunk_sizes_include_sizes_off_every_power_of_two_tile():
    assert [c for c in CHUNK_SIZES if c > 16 and c % 16] == [24, 100, 200, 300, 500, 1000, 1500, 3000, 5000]
