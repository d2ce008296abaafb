"""The compiled cost forms: one formula per form, named coefficients, and the Python models evaluate through them."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.cost_kernels import (
    COEFFICIENT_NAMES,
    OPERATOR,
    TILE_KNEE_LINEAR,
    CompiledCost,
    smooth_max,
    times,
)
from llmsched_gym.costs import OperatorCostModel, OperatorParams
from llmsched_gym.costs.profile import PROFILES_DIR, ProfileCostModel
from llmsched_gym.costs.profile_fit import FittedParams
from llmsched_gym.costs.roofline import RooflineCostModel, RooflineParams
from tests.costs.batches import OPERATOR_SAMPLE

MODELS = {
    "roofline": RooflineCostModel(),
    "roofline-cuda-graphs-tiled": RooflineCostModel(params=RooflineParams.cuda_graphs(), tile_tokens=64),
    "roofline-tp2-13b": RooflineCostModel("A100-80GB", "Llama-2-13B", tp=2),
    "operator": OperatorCostModel(OPERATOR_SAMPLE),
    "profile-v1": ProfileCostModel(FittedParams(16, 128, 4e-3, 2e-6, 3e-12, 1e-9, 5e-6, 2e-8)),
    "profile-v1-untiled": ProfileCostModel(FittedParams(0, 0, 1e-2, 3e-6, 4e-12, 0.0, 0.0, 1e-8)),
}

chunks = st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 16_384)), max_size=12)


def operator_reference(p: OperatorParams, pairs: list[tuple[int, int]], n_dec: int, dec_ctx: int) -> float:
    """The operator form written out independently (docs/cost_models.md), as a test oracle."""
    tokens = sum(c for c, _ in pairs) + n_dec
    n_seqs = len(pairs) + n_dec
    gemm_tokens = math.ceil(tokens / p.tile_tokens) * p.tile_tokens if p.tile_tokens > 1 else tokens
    linear = p.token_s * gemm_tokens + p.seq_s * n_seqs
    gpu = (p.weights_s**p.gemm_p + linear**p.gemm_p) ** (1 / p.gemm_p) + p.chunk_s * len(pairs)
    gpu += p.attn_s * sum(c * (x + c / 2) for c, x in pairs) + p.prefill_ctx_s * sum(x for _, x in pairs)
    gpu += p.decode_s * n_dec + p.kv_s * dec_ctx + (p.comm_latency_s + p.comm_s * tokens if tokens else 0.0)
    host = p.floor_s + p.host_seq_s * n_seqs
    return p.fixed_s + (host**p.overlap_p + gpu**p.overlap_p) ** (1 / p.overlap_p)


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=120, deadline=None)
@given(prefill=chunks, n_dec=st.integers(0, 256), ctx=st.integers(0, 2_000_000), k=st.integers(1, 40))
def test_engine_kernel_path_equals_the_python_model_bit_for_bit(name, prefill, n_dec, ctx, k):
    model = MODELS[name]
    if not prefill and n_dec == 0:
        n_dec = 1
    dec_ctx = ctx if n_dec else 0
    batch = BatchSummary.of(prefill, n_dec, dec_ctx)
    compiled = times(model.compiled_form(), prefill, n_dec, dec_ctx, k)
    expected = np.array([model.iteration_time(batch)]) if k == 1 else model.stretch_times(batch, k)
    np.testing.assert_array_equal(compiled, expected)


@settings(max_examples=200, deadline=None)
@given(prefill=chunks, n_dec=st.integers(0, 300), ctx=st.integers(0, 4000))
def test_operator_kernel_matches_the_written_out_formula(prefill, n_dec, ctx):
    model = OperatorCostModel(OPERATOR_SAMPLE)
    dec_ctx = n_dec * ctx
    got = model.iteration_time(BatchSummary.of(prefill, n_dec, dec_ctx))
    assert got == pytest.approx(operator_reference(OPERATOR_SAMPLE, prefill, n_dec, dec_ctx), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(a=st.floats(0, 10), b=st.floats(0, 10), p=st.floats(1, 64), more=st.floats(0, 1))
def test_smooth_max_lies_between_the_max_and_the_sum_and_grows_with_either_argument(a, b, p, more):
    value = smooth_max(a, b, p)
    assert max(a, b) * (1 - 1e-12) <= value <= (a + b) * (1 + 1e-12)
    assert smooth_max(a + more, b, p) >= value * (1 - 1e-12)
    assert smooth_max(a, b, 1.0) == pytest.approx(a + b)


def test_coefficient_names_are_the_fields_of_the_parameter_records():
    assert COEFFICIENT_NAMES[OPERATOR] == tuple(f.name for f in dataclasses.fields(OperatorParams))
    knee = ("c0", "tile_tokens", "c_tok", "knee_tokens", "c_dec", "c_kv", "c_attn", "c_pre_ctx")
    assert COEFFICIENT_NAMES[TILE_KNEE_LINEAR] == knee


def test_compiled_form_round_trips_through_named_coefficients():
    compiled = OPERATOR_SAMPLE.compiled()
    assert compiled.named() == {k: float(v) for k, v in OPERATOR_SAMPLE.coefficients().items()}
    assert OperatorParams.from_mapping(compiled.named()) == OPERATOR_SAMPLE
    params = FittedParams(16, 128, 4e-3, 2e-6, 3e-12, 1e-9, 5e-6, 2e-8)
    assert params.compiled().named()["knee_tokens"] == 128.0


def test_compiled_cost_rejects_wrong_coefficient_count_and_unknown_forms_and_names():
    with pytest.raises(ValueError, match="needs 16 float64 coefficients"):
        CompiledCost(OPERATOR, np.zeros(3))
    with pytest.raises(ValueError, match="form=7"):
        CompiledCost(7, np.zeros(9))
    with pytest.raises(ValueError, match=r"missing \['c0'.*unknown \['bogus'\]"):
        CompiledCost.of(TILE_KNEE_LINEAR, {"bogus": 1.0})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"gemm_p": 0.5}, "gemm_p=0.5"),
        ({"overlap_p": 100.0}, "overlap_p=100.0"),
        ({"kv_s": -1e-9}, "kv_s=-1e-09"),
        ({"attn_s": math.inf}, "attn_s=inf"),
        ({"fixed_s": 0.0, "floor_s": 0.0, "weights_s": 0.0}, "all 0"),
    ],
)
def test_operator_params_reject_values_that_break_positivity_or_monotonicity(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(OPERATOR_SAMPLE, **change)


def test_roofline_is_the_operator_form_of_its_derived_coefficients():
    roofline = RooflineCostModel("A100-80GB", "Llama-2-70B", tp=4)
    same = OperatorCostModel(roofline.coefficients)
    batch = BatchSummary.of([(700, 300), (12, 0)], 40, 40 * 900)
    assert roofline.iteration_time(batch) == same.iteration_time(batch)
    assert roofline.compiled_form().form == OPERATOR


operator_params = st.builds(
    OperatorParams,
    fixed_s=st.floats(1e-6, 1e-2),
    floor_s=st.floats(0, 5e-2),
    host_seq_s=st.floats(0, 1e-3),
    overlap_p=st.sampled_from([1.0, 2.0, 3.5, 8.0, 64.0]),
    weights_s=st.floats(0, 5e-2),
    token_s=st.floats(0, 1e-3),
    seq_s=st.floats(0, 1e-3),
    gemm_p=st.sampled_from([1.0, 2.0, 4.0, 5.5, 64.0]),
    tile_tokens=st.sampled_from([0, 16, 64, 128]),
    chunk_s=st.floats(0, 1e-2),
    attn_s=st.floats(0, 1e-9),
    prefill_ctx_s=st.floats(0, 1e-6),
    decode_s=st.floats(0, 1e-3),
    kv_s=st.floats(0, 1e-6),
    comm_s=st.floats(0, 1e-4),
    comm_latency_s=st.floats(0, 1e-3),
)


@settings(max_examples=300, deadline=None)
@given(params=operator_params, prefill=chunks, n_dec=st.integers(0, 600), ctx=st.integers(0, 8000),
       grow=st.sampled_from(["chunk", "context", "decode", "decode_context"]))  # fmt: skip
def test_any_valid_operator_coefficients_give_positive_times_that_never_shrink_as_work_grows(
    params, prefill, n_dec, ctx, grow
):
    model = OperatorCostModel(params)
    base = BatchSummary.of(prefill, n_dec, n_dec * ctx)
    t = model.iteration_time(base)
    assert t > 0 and math.isfinite(t)
    if grow == "chunk" and prefill:
        bigger = BatchSummary.of([(c + 37, x) for c, x in prefill], n_dec, n_dec * ctx)
    elif grow == "context" and prefill:
        bigger = BatchSummary.of([(c, x + 500) for c, x in prefill], n_dec, n_dec * ctx)
    elif grow == "decode":
        bigger = BatchSummary.of(prefill, n_dec + 5, n_dec * ctx + 5 * ctx)
    else:
        bigger = BatchSummary.of(prefill, n_dec, n_dec * ctx + 1000)
    assert model.iteration_time(bigger) >= t * (1 - 1e-12)


@pytest.mark.parametrize("path", sorted(str(p) for p in PROFILES_DIR.glob("*/*.json")))
def test_shipped_profiles_stay_sane_far_beyond_their_grid(path):
    model = ProfileCostModel(path)
    decode = [
        model.iteration_time(BatchSummary.of(n_decodes=n, decode_context_sum=n * 2048)) for n in (512, 1024, 2048)
    ]
    prefill = [model.iteration_time(BatchSummary.of([(c, 0)])) for c in (16_384, 32_768, 65_536)]
    for seq in (decode, prefill):
        assert all(math.isfinite(t) and t > 0 for t in seq)
        assert all(1.0 <= b / a <= 4.05 for a, b in itertools.pairwise(seq))  # at most quadratic (attention)
    assert all(b / a <= 2.05 for a, b in itertools.pairwise(decode))  # decode grows at most linearly
