"""Every cost model: positive finite times, the loop reference for stretches, monotonicity on random batches."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.protocols import CostModel, stretch_times_by_loop
from llmsched_gym.costs import list_cost_models
from tests.costs.batches import CASE_IDS, MODEL_CASES, build, random_batch


def test_cases_cover_every_registered_cost_model() -> None:
    assert {name for _, name, _ in MODEL_CASES} == set(list_cost_models())


@pytest.mark.parametrize("case", CASE_IDS)
def test_model_satisfies_the_cost_model_protocol(case: str) -> None:
    model = build(case)
    assert isinstance(model, CostModel)
    assert isinstance(type(model).name, str)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CASE_IDS)
def test_times_are_positive_and_finite(case: str) -> None:
    model = build(case)
    rng = np.random.default_rng(1)
    batches = [random_batch(rng) for _ in range(40)] + [BatchSummary.of(), BatchSummary.of([(1, 0)])]
    times = np.array([model.iteration_time(b) for b in batches])
    assert np.all(np.isfinite(times)) and np.all(times > 0)
    assert all(isinstance(model.iteration_time(b), float) for b in batches[:3])


@pytest.mark.parametrize("case", CASE_IDS)
def test_stretch_times_equal_the_loop_reference(case: str) -> None:
    model = build(case)
    rng = np.random.default_rng(2)
    for _ in range(25):
        batch = random_batch(rng)
        k = int(rng.integers(0, 60))
        fast = model.stretch_times(batch, k)
        assert fast.dtype == np.float64 and fast.shape == (k,)
        np.testing.assert_allclose(fast, stretch_times_by_loop(model, batch, k), rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", CASE_IDS)
def test_stretch_times_reject_negative_k(case: str) -> None:
    with pytest.raises(ValueError, match="k=-1"):
        build(case).stretch_times(BatchSummary.of(n_decodes=1, decode_context_sum=5), -1)


@pytest.mark.parametrize("case", CASE_IDS)
def test_time_is_non_decreasing_in_tokens_and_context(case: str) -> None:
    model = build(case)
    rng = np.random.default_rng(3)
    for _ in range(30):
        b = random_batch(rng)
        t = model.iteration_time(b)
        more_decodes = BatchSummary(
            b.prefill_tokens, b.prefill_context, b.n_decodes + 3, b.decode_context_sum + 900, b.n_seqs + 3
        )
        longer_decodes = BatchSummary(
            b.prefill_tokens, b.prefill_context, b.n_decodes, b.decode_context_sum + 500, b.n_seqs
        )
        assert model.iteration_time(more_decodes) >= t
        assert model.iteration_time(longer_decodes) >= t
        if len(b.prefill_tokens):
            assert (
                model.iteration_time(
                    BatchSummary(b.prefill_tokens + 7, b.prefill_context, b.n_decodes, b.decode_context_sum, b.n_seqs)
                )
                >= t
            )
            assert (
                model.iteration_time(
                    BatchSummary(b.prefill_tokens, b.prefill_context + 300, b.n_decodes, b.decode_context_sum, b.n_seqs)
                )
                >= t
            )
