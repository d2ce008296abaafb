"""The papers' theory models (unit, affine in KV, tile steps) and fitting them to another model."""

from __future__ import annotations

import numpy as np
import pytest

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.costs import (
    AffineKVCostModel,
    RooflineCostModel,
    RooflineParams,
    TileStepCostModel,
    UnitCostModel,
    batch_kv_tokens,
    fit_affine_kv,
    fit_tile_step,
)
from tests.costs.batches import random_batch


def test_unit_model_always_takes_one() -> None:
    model = UnitCostModel()
    rng = np.random.default_rng(0)
    assert {model.iteration_time(random_batch(rng)) for _ in range(20)} == {1.0}
    assert model.stretch_times(BatchSummary.of(n_decodes=3), 4).tolist() == [1.0] * 4


def test_affine_kv_counts_the_kv_held_after_the_iteration() -> None:
    batch = BatchSummary.of([(100, 50), (30, 0)], n_decodes=4, decode_context_sum=1000)
    assert batch_kv_tokens(batch) == 1000 + 4 + (100 + 50) + (30 + 0)
    model = AffineKVCostModel(d0=0.01, d1=1e-5)
    assert model.iteration_time(batch) == 0.01 + 1e-5 * 1184


def test_affine_kv_matches_wait_for_unchunked_requests() -> None:
    prompts, stages = [256, 300, 17], [1, 5, 20]  # decode stage s >= 1 has prompt + s - 1 tokens cached before
    decodes = BatchSummary.of(
        n_decodes=3, decode_context_sum=sum(p + s - 1 for p, s in zip(prompts, stages, strict=True))
    )
    assert batch_kv_tokens(decodes) == sum(p + s for p, s in zip(prompts, stages, strict=True))
    prefill = BatchSummary.of([(p, 0) for p in prompts])  # stage 0: l_i + 0
    assert batch_kv_tokens(prefill) == sum(prompts)


def test_tile_step_jumps_exactly_after_each_tile() -> None:
    model = TileStepCostModel(tile=128, per_tile_s=1e-3, base_s=2e-3, per_decode_s=0.0, per_kv_token_s=0.0)
    times = {n: model.iteration_time(BatchSummary.of([(n, 0)])) for n in (129, 200, 256, 257, 384, 385)}
    assert times[129] == times[200] == times[256] == 2e-3 + 2e-3
    assert times[257] == times[384] == 2e-3 + 3e-3
    assert times[385] - times[384] == pytest.approx(1e-3)


def test_tile_step_decode_terms_are_exact() -> None:
    model = TileStepCostModel(tile=64, per_tile_s=1e-3, base_s=2e-3, per_decode_s=1e-5, per_kv_token_s=1e-7)
    batch = BatchSummary.of([(60, 500)], n_decodes=10, decode_context_sum=4000)
    assert model.iteration_time(batch) == pytest.approx(2e-3 + 2 * 1e-3 + 10 * 1e-5 + 4000 * 1e-7, rel=1e-15)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: UnitCostModel(0.0), "duration=0.0"),
        (lambda: AffineKVCostModel(0.0, 1.0), "d0=0.0"),
        (lambda: AffineKVCostModel(1.0, -1.0), "d1=-1.0"),
        (lambda: TileStepCostModel(tile=0), "tile=0"),
        (lambda: TileStepCostModel(per_decode_s=-1.0), "per_decode_s=-1.0"),
        (lambda: TileStepCostModel(base_s=0.0), "base_s=0.0"),
    ],
)
def test_bad_parameters_are_named(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


def test_fit_affine_kv_recovers_an_affine_model_exactly() -> None:
    fitted = fit_affine_kv(AffineKVCostModel(d0=0.02, d1=3e-6))
    assert fitted.d0 == pytest.approx(0.02, rel=1e-9) and fitted.d1 == pytest.approx(3e-6, rel=1e-9)


def test_fit_affine_kv_to_the_roofline_tracks_decode_batches() -> None:
    roofline = RooflineCostModel(params=RooflineParams.cuda_graphs())
    fitted = fit_affine_kv(roofline)
    batch = BatchSummary.of(n_decodes=64, decode_context_sum=64 * 512)
    assert fitted.iteration_time(batch) == pytest.approx(roofline.iteration_time(batch), rel=0.05)
    assert 0.005 < fitted.d0 < 0.012  # about the weight-streaming time plus overhead


def test_fit_tile_step_recovers_a_tile_step_model_exactly() -> None:
    truth = TileStepCostModel(tile=128, per_tile_s=3e-3, base_s=4e-3, per_decode_s=2e-5, per_kv_token_s=2e-7)
    fitted = fit_tile_step(truth, tile=128)
    for name in ("per_tile_s", "base_s", "per_decode_s", "per_kv_token_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-8)


def test_tile_step_defaults_are_the_rounded_fit_of_the_cuda_graph_roofline() -> None:
    fitted, default = fit_tile_step(RooflineCostModel(params=RooflineParams.cuda_graphs())), TileStepCostModel()
    assert fitted.tile == default.tile
    for name in ("per_tile_s", "base_s", "per_decode_s", "per_kv_token_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(default, name), rel=0.03, abs=1e-9), name
