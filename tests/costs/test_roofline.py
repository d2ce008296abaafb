"""The roofline model: measured H100 anchors, tiling, tensor parallelism, parameters."""

from __future__ import annotations

import pytest

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.costs import RooflineCostModel, RooflineParams
from llmsched_gym.costs.anchors import DECODE_ANCHORS, anchor_table, fit_roofline_defaults, model_flops


@pytest.mark.parametrize(("batch_size", "context", "measured"), DECODE_ANCHORS)
def test_default_decode_times_match_measured_h100_cuda_graph_steps(
    batch_size: int, context: int, measured: float
) -> None:
    model = RooflineCostModel("H100-80GB", "Llama-2-7B")
    predicted = model.iteration_time(BatchSummary.of(n_decodes=batch_size, decode_context_sum=batch_size * context))
    assert predicted == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize("tokens", [2048, 4096, 8192])
def test_long_prefill_reaches_60_to_70_percent_of_the_measured_gemm_ceiling(tokens: int) -> None:
    model = RooflineCostModel("H100-80GB", "Llama-2-7B")
    batch = BatchSummary.of([(tokens, 0)])
    fraction = model_flops(model.model, batch) / model.iteration_time(batch) / 764e12
    assert 0.60 <= fraction <= 0.70


def test_defaults_are_the_rounded_anchor_fit() -> None:
    assert fit_roofline_defaults().rounded() == RooflineParams()


def test_anchor_table_lists_every_anchor() -> None:
    table = anchor_table()
    assert table.count("| decode") == len(DECODE_ANCHORS) and "prefill 4096" in table


def test_decode_is_flat_in_batch_size_while_memory_bound() -> None:
    model = RooflineCostModel(overhead_s=0.0)
    one = model.iteration_time(BatchSummary.of(n_decodes=1))
    sixteen = model.iteration_time(BatchSummary.of(n_decodes=16))
    assert sixteen == pytest.approx(one, rel=1e-3)


def test_tiling_makes_257_tokens_cost_a_whole_tile_more_than_256() -> None:
    tiled = RooflineCostModel(tile_tokens=128)
    plain = RooflineCostModel()
    t256, t257 = (tiled.iteration_time(BatchSummary.of([(n, 0)])) for n in (256, 257))
    assert t257 > 1.3 * t256
    assert plain.iteration_time(BatchSummary.of([(257, 0)])) < 1.01 * plain.iteration_time(BatchSummary.of([(256, 0)]))


def test_tensor_parallelism_splits_work_and_adds_all_reduce() -> None:
    batch = BatchSummary.of([(2048, 0)], n_decodes=32, decode_context_sum=32 * 1024)
    tp1 = RooflineCostModel(model="Llama-2-70B", tp=1).iteration_time(batch)
    tp4 = RooflineCostModel(model="Llama-2-70B", tp=4).iteration_time(batch)
    no_comm = RooflineCostModel(model="Llama-2-70B", tp=4, allreduce_bandwidth=1e30, allreduce_latency_s=0.0)
    assert tp1 / 4 < tp4 < tp1
    assert no_comm.iteration_time(batch) < tp4


def test_unknown_or_bad_parameters_are_rejected() -> None:
    with pytest.raises(TypeError, match="unknown parameter"):
        RooflineCostModel(efficiency=0.5)
    with pytest.raises(ValueError, match=r"compute_efficiency=1.5"):
        RooflineCostModel(compute_efficiency=1.5)
    with pytest.raises(ValueError, match="overhead_s=-1"):
        RooflineParams(overhead_s=-1)
    with pytest.raises(ValueError, match="tp=3"):
        RooflineCostModel(tp=3)
