"""The compiled cost forms give bit-identical times to the Python cost models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.cost_kernels import ROOFLINE, CompiledCost, times
from llmsched_gym.costs.profile import ProfileCostModel
from llmsched_gym.costs.profile_fit import FittedParams
from llmsched_gym.costs.roofline import RooflineCostModel

MODELS = {
    "roofline": RooflineCostModel(),
    "roofline-tiled": RooflineCostModel(tile_tokens=64),
    "roofline-tp2-13b": RooflineCostModel("A100-80GB", "Llama-2-13B", tp=2),
    "profile": ProfileCostModel(FittedParams(16, 128, 4e-3, 2e-6, 3e-12, 1e-9, 5e-6, 2e-8)),
    "profile-untiled": ProfileCostModel(FittedParams(0, 0, 1e-2, 3e-6, 4e-12, 0.0, 0.0, 1e-8)),
}

chunks = st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 16_384)), max_size=12)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=150, deadline=None)
@given(prefill=chunks, n_dec=st.integers(0, 256), ctx=st.integers(0, 2_000_000), k=st.integers(1, 40))
def test_compiled_times_equal_the_python_model_bit_for_bit(name, prefill, n_dec, ctx, k):
    model = MODELS[name]
    if not prefill and n_dec == 0:
        n_dec = 1
    dec_ctx = ctx if n_dec else 0
    batch = BatchSummary.of(prefill, n_dec, dec_ctx)
    compiled = times(model.compiled_form(), prefill, n_dec, dec_ctx, k)
    expected = np.array([model.iteration_time(batch)]) if k == 1 else model.stretch_times(batch, k)
    np.testing.assert_array_equal(compiled, expected)


def test_compiled_cost_rejects_wrong_coefficient_count():
    with pytest.raises(ValueError, match="needs 9 float64 coefficients"):
        CompiledCost(ROOFLINE, np.zeros(3))


def test_compiled_cost_rejects_unknown_form():
    with pytest.raises(ValueError, match="form=7"):
        CompiledCost(7, np.zeros(9))
