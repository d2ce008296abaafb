"""Hypothesis properties: every cost model is monotone in tokens and context, and stretches match the loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.protocols import stretch_times_by_loop
from tests.costs.batches import PROPERTY_CASE_IDS, build, chunk_pairs, decode_contexts, make_batch

PROPERTY_SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)


@pytest.mark.parametrize("case", PROPERTY_CASE_IDS)
@PROPERTY_SETTINGS
@given(
    pairs=chunk_pairs,
    decodes=decode_contexts,
    extra=st.integers(1, 2048),
    which=st.integers(0, 3),
)
def test_more_tokens_never_cost_less(
    case: str, pairs: list[tuple[int, int]], decodes: list[int], extra: int, which: int
) -> None:
    model = build(case)
    t = model.iteration_time(make_batch(pairs, decodes))
    assert model.iteration_time(make_batch(pairs, [*decodes, extra])) >= t
    assert model.iteration_time(make_batch([*pairs, (extra, which)], decodes)) >= t
    if pairs:
        i = which % len(pairs)
        grown = [(c + extra, x) if j == i else (c, x) for j, (c, x) in enumerate(pairs)]
        assert model.iteration_time(make_batch(grown, decodes)) >= t


@pytest.mark.parametrize("case", PROPERTY_CASE_IDS)
@PROPERTY_SETTINGS
@given(pairs=chunk_pairs, decodes=decode_contexts, extra=st.integers(1, 8192), which=st.integers(0, 300))
def test_longer_context_never_costs_less(
    case: str, pairs: list[tuple[int, int]], decodes: list[int], extra: int, which: int
) -> None:
    model = build(case)
    t = model.iteration_time(make_batch(pairs, decodes))
    if decodes:
        i = which % len(decodes)
        assert model.iteration_time(make_batch(pairs, [d + extra * (j == i) for j, d in enumerate(decodes)])) >= t
    if pairs:
        i = which % len(pairs)
        grown = [(c, x + extra) if j == i else (c, x) for j, (c, x) in enumerate(pairs)]
        assert model.iteration_time(make_batch(grown, decodes)) >= t


@pytest.mark.parametrize("case", PROPERTY_CASE_IDS)
@PROPERTY_SETTINGS
@given(pairs=chunk_pairs, decodes=decode_contexts, k=st.integers(0, 200))
def test_stretch_is_the_loop_and_never_speeds_up(
    case: str, pairs: list[tuple[int, int]], decodes: list[int], k: int
) -> None:
    model = build(case)
    batch = make_batch(pairs, decodes)
    times = model.stretch_times(batch, k)
    np.testing.assert_allclose(times, stretch_times_by_loop(model, batch, k), rtol=1e-12, atol=0)
    assert np.all(np.diff(times) >= 0)
