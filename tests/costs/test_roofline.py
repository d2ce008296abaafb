"""The roofline model: public-data defaults, the CUDA-graph preset on the measured H100 anchors, tiling, TP."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.costs import RooflineCostModel, RooflineParams, make_cost_model
from llmsched_gym.costs.anchors import DECODE_ANCHORS, anchor_table, fit_cuda_graph_preset, model_flops
from llmsched_gym.costs.public_fit import ROUNDING, fit_roofline_defaults, public_setups, roofline_errors, rounded
from llmsched_gym.errors import UnknownNameError

CUDA_GRAPHS = RooflineParams.cuda_graphs()


@pytest.fixture(scope="module")
def setups():
    return public_setups()


def test_every_public_setup_is_shipped(setups) -> None:
    labels = {s.label for s in setups}
    assert len(labels) == 12
    assert {"A100-80GB / Llama-2-70B TP8", "H100-80GB / BLOOM-176B TP8", "H100-80GB-PCAP / Llama-2-70B TP2"} <= labels


def test_defaults_follow_the_public_measurements_at_every_tp(setups) -> None:
    for setup in setups:
        median = float(np.median(np.abs(roofline_errors(RooflineParams(), setup))))
        assert median <= 0.15, setup.label


def test_defaults_are_the_rounded_public_fit(setups) -> None:
    refit = rounded(fit_roofline_defaults(setups, start=RooflineParams()))
    for name, digits in ROUNDING.items():
        step = 10.0**-digits
        assert getattr(refit, name) == pytest.approx(getattr(RooflineParams(), name), abs=1.01 * step), name


@pytest.mark.parametrize(("batch_size", "context", "measured"), DECODE_ANCHORS)
def test_cuda_graph_preset_decode_times_match_measured_h100_steps(batch_size: int, context: int, measured: float):
    model = RooflineCostModel("H100-80GB", "Llama-2-7B", params=CUDA_GRAPHS)
    predicted = model.iteration_time(BatchSummary.of(n_decodes=batch_size, decode_context_sum=batch_size * context))
    assert predicted == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize("tokens", [2048, 4096, 8192])
def test_cuda_graph_preset_prefill_reaches_60_to_70_percent_of_the_measured_gemm_ceiling(tokens: int) -> None:
    model = RooflineCostModel("H100-80GB", "Llama-2-7B", params=CUDA_GRAPHS)
    batch = BatchSummary.of([(tokens, 0)])
    fraction = model_flops(model.model, batch) / model.iteration_time(batch) / 764e12
    assert 0.60 <= fraction <= 0.70


def test_cuda_graph_preset_is_the_rounded_anchor_fit() -> None:
    assert fit_cuda_graph_preset().rounded() == CUDA_GRAPHS
    assert make_cost_model("roofline", preset="cuda-graphs").params == CUDA_GRAPHS  # type: ignore[attr-defined]
    with pytest.raises(UnknownNameError, match="unknown roofline preset 'fast'; known: public, cuda-graphs"):
        make_cost_model("roofline", preset="fast")


def test_anchor_table_lists_every_anchor() -> None:
    table = anchor_table()
    assert table.count("| decode") == len(DECODE_ANCHORS) and "prefill 4096" in table


def test_eager_floor_makes_small_decodes_flat_and_dominated_by_the_launch_floor() -> None:
    model = RooflineCostModel("A100-80GB", "Llama-2-70B", tp=8)
    one = model.iteration_time(BatchSummary.of(n_decodes=1, decode_context_sum=512))
    eight = model.iteration_time(BatchSummary.of(n_decodes=8, decode_context_sum=8 * 512))
    graphs = RooflineCostModel("A100-80GB", "Llama-2-70B", tp=8, params=CUDA_GRAPHS)
    assert eight == pytest.approx(one, rel=0.1)
    assert one > 2 * graphs.iteration_time(BatchSummary.of(n_decodes=1, decode_context_sum=512))


def test_more_gpus_barely_speed_up_small_steps_but_do_speed_up_long_prefills() -> None:
    small = BatchSummary.of(n_decodes=4, decode_context_sum=4 * 600)
    long = BatchSummary.of([(8192, 0)])
    t = {tp: RooflineCostModel("A100-80GB", "Llama-2-70B", tp=tp) for tp in (2, 4, 8)}
    assert t[8].iteration_time(small) > 0.7 * t[2].iteration_time(small)
    assert t[8].iteration_time(long) < 0.7 * t[2].iteration_time(long)


def test_gemm_time_grows_smoothly_below_the_crossover_and_linearly_far_above() -> None:
    model = RooflineCostModel(params=dataclasses.replace(CUDA_GRAPHS, overhead_s=0.0))
    times = [model.iteration_time(BatchSummary.of([(n, 0)])) for n in (32, 64, 128, 256, 512)]
    assert all(b > a for a, b in itertools.pairwise(times))
    big = [model.iteration_time(BatchSummary.of([(512, 0)] * n)) for n in (16, 32)]  # 8192 / 16384 tokens
    assert big[1] / big[0] == pytest.approx(2.0, rel=0.05)


def test_tiling_makes_257_tokens_cost_a_whole_tile_more_than_256() -> None:
    sharp = dataclasses.replace(CUDA_GRAPHS, gemm_smoothness=64.0, overhead_s=0.0)
    tiled = RooflineCostModel(params=sharp, tile_tokens=128)
    plain = RooflineCostModel(params=sharp)
    t256, t257 = (tiled.iteration_time(BatchSummary.of([(n, 0)])) for n in (256, 257))
    assert t257 > 1.2 * t256
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
    with pytest.raises(ValueError, match=r"overlap=0.5 must be in \[1, 64\]"):
        RooflineParams(overlap=0.5)
    with pytest.raises(ValueError, match="tp=3"):
        RooflineCostModel(tp=3)
