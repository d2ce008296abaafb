"""Fitting the operator form: known coefficients are recovered, noise is tolerated, defects are flagged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmsched_gym.costs import MeasuredPoint, OperatorCostModel, OperatorFitConfig, OperatorParams, fit_operator
from llmsched_gym.costs.profile_fit import relative_errors
from tests.costs.batches import SAMPLE_PARAMS
from tests.costs.conftest import synthetic_points

TRUTH = OperatorParams(
    fixed_s=2e-3, floor_s=6e-3, host_seq_s=2e-5, overlap_p=1.0, weights_s=5e-3, token_s=2e-5, seq_s=1e-5,
    gemm_p=2.0, chunk_s=3e-4, attn_s=2e-11, prefill_ctx_s=4e-8, decode_s=2e-5, kv_s=5e-8,
)  # fmt: skip


def points_of(params: OperatorParams, *, noise: float = 0.0, seed: int = 0, every_nth_holdout: int = 0):
    """The synthetic calibration grid of tests/costs/conftest timed by ``params`` (with relative noise)."""
    rng = np.random.default_rng(seed)
    model = OperatorCostModel(params)
    out = []
    for i, p in enumerate(synthetic_points(SAMPLE_PARAMS)):
        seconds = model.iteration_time(p.summary()) * (1.0 + noise * rng.standard_normal())
        role = "holdout" if every_nth_holdout and i % every_nth_holdout == 0 else "train"
        out.append(MeasuredPoint.from_summary(p.summary(), seconds, role=role))
    return out


def test_fit_reproduces_exact_points_of_a_known_model():
    fit = fit_operator(points_of(TRUTH, every_nth_holdout=5))
    assert fit.validation.n_holdout == len([p for p in fit.points if p.role == "holdout"]) > 10
    assert fit.validation.median_abs_error < 0.002 and fit.validation.p90_abs_error < 0.01


def test_fit_tolerates_two_percent_noise_on_held_out_points():
    fit = fit_operator(points_of(TRUTH, noise=0.02, seed=3, every_nth_holdout=4))
    assert fit.validation.median_abs_error < 0.03
    truth_err = np.abs(relative_errors(TRUTH, [p for p in fit.points if p.role == "holdout"]))
    assert fit.validation.median_abs_error < np.median(truth_err) + 0.01


def test_a_gross_defect_is_flagged_as_an_outlier_and_not_fitted():
    points = points_of(TRUTH, noise=0.01, seed=1)
    points[7] = dataclasses.replace(points[7], seconds=points[7].seconds / 8)
    fit = fit_operator(points, OperatorFitConfig(holdout_fraction=0.2))
    assert [i for i, p in enumerate(fit.points) if p.flag == "outlier"] == [7]
    assert fit.validation.median_abs_error < 0.02


def test_cross_validation_predicts_every_training_point_once():
    fit = fit_operator(points_of(TRUTH, noise=0.01, seed=2), OperatorFitConfig(folds=4, starts=2))
    assert fit.validation.n_holdout == fit.validation.n_train == len(fit.holdout_errors)
    assert fit.validation.median_abs_error < 0.03


def test_same_seed_same_fit_and_roles():
    points = points_of(TRUTH, noise=0.02, seed=5)
    cfg = OperatorFitConfig(holdout_fraction=0.25, seed=11, starts=2)
    a, b = fit_operator(points, cfg), fit_operator(points, cfg)
    assert a.params == b.params and a.points == b.points


def test_coefficients_left_out_of_free_keep_their_base_value():
    base = dataclasses.replace(TRUTH, kv_s=1e-7)
    free = tuple(n for n in ("fixed_s", "floor_s", "weights_s", "token_s", "attn_s", "decode_s"))
    fit = fit_operator(points_of(TRUTH), OperatorFitConfig(free=free, base=base, starts=1))
    assert fit.params.kv_s == 1e-7 and fit.params.gemm_p == TRUTH.gemm_p


def test_fit_needs_more_points_than_coefficients():
    with pytest.raises(ValueError, match="10 training points for 13 free coefficients"):
        fit_operator(points_of(TRUTH)[:10])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout_fraction": 1.0}, "holdout_fraction=1.0"),
        ({"folds": 1}, "folds=1"),
        ({"free": ("bogus",)}, "free=\\('bogus',\\)"),
        ({"tiles": ()}, "tiles=\\(\\)"),
    ],
)
def test_bad_fit_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OperatorFitConfig(**kwargs)
