"""Fixtures: a synthetic calibration profile (no GPU in the test environment)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.costs import MeasuredPoint, Profile, ProfileCostModel, Validation, fit_profile
from llmsched_gym.costs.profile_fit import FittedParams
from llmsched_gym.hardware import get_gpu, get_model
from tests.costs.batches import OPERATOR_SAMPLE, SAMPLE_PARAMS


def synthetic_points(params: FittedParams, *, noise: float = 0.0, seed: int = 0) -> list[MeasuredPoint]:
    """A calibration-like grid (prefill chunks over context, decode batches, mixed) timed by ``params``."""
    rng = np.random.default_rng(seed)
    truth = ProfileCostModel(params)
    points = []
    for chunk in (16, 64, 128, 256, 384, 512, 1024, 2048):
        for ctx in (0, 1024, 4096):
            for n_dec, dec_ctx in ((0, 0), (8, 512), (64, 1024), (200, 2048)):
                point = MeasuredPoint((chunk,), (ctx,), n_dec, n_dec * dec_ctx, n_dec + 1, 1.0)
                seconds = truth.iteration_time(point.summary()) * (1.0 + noise * rng.standard_normal())
                points.append(MeasuredPoint.from_summary(point.summary(), seconds))
    for n_dec in (1, 4, 16, 32, 64, 128, 256, 384, 512):
        for dec_ctx in (128, 1024, 4096):
            point = MeasuredPoint((), (), n_dec, n_dec * dec_ctx, n_dec, 1.0)
            seconds = truth.iteration_time(point.summary()) * (1.0 + noise * rng.standard_normal())
            points.append(MeasuredPoint.from_summary(point.summary(), seconds))
    return points


def make_profile(params: FittedParams = SAMPLE_PARAMS, **overrides: object) -> Profile:
    """A profile of H100-80GB / Llama-2-7B whose fit comes from synthetic points of ``params``."""
    points = synthetic_points(params)
    fit = fit_profile(points, tile_tokens=params.tile_tokens)
    fields: dict[str, object] = {
        "gpu_name": "H100-80GB",
        "gpu_memory_bytes": get_gpu("H100-80GB").memory_bytes,
        "model": get_model("Llama-2-7B"),
        "tp": 1,
        "block_size": 16,
        "executor_version": "0.1.0-test",
        "created": "2026-01-31",
        "provenance": "synthetic points from SAMPLE_PARAMS (tests)",
        "grid": tuple(points),
        "fit": fit.params,
        "validation": fit.validation,
        "executor_info": {"cuda_graph_buckets": [1, 8, 32, 64], "torch": "none"},
    }
    fields.update(overrides)
    return Profile(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sample_profile() -> Profile:
    return make_profile()


@pytest.fixture(scope="session")
def operator_profile() -> Profile:
    """A schema-2 profile with an operator-form fit (coefficients given, not fitted: a fixture)."""
    points = tuple(
        dataclasses.replace(p, role="holdout" if i % 5 == 0 else "train", spread=0.01, repeats=5)
        for i, p in enumerate(synthetic_points(SAMPLE_PARAMS))
    )
    validation = Validation.of_errors(np.array([0.01, -0.02, 0.005]), len(points) - 3, 3)
    return make_profile(
        grid=points, fit=OPERATOR_SAMPLE, validation=validation, source="imported", reference="tests",
        caveats=("synthetic",), fit_info={"free": ["kv_s"]},
    )  # fmt: skip


@pytest.fixture
def saved_profile(sample_profile: Profile, tmp_path: Path) -> str:
    return str(sample_profile.save(tmp_path / "H100-80GB" / "Llama-2-7B.json"))
