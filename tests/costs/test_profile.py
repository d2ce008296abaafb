"""Calibration profiles: schema round trip, loading errors, fitting, lookup and the profile cost model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from llmsched_gym.costs import (
    SCHEMA_VERSION,
    FittedParams,
    MeasuredPoint,
    OperatorParams,
    Profile,
    ProfileCostModel,
    RooflineCostModel,
    RooflineParams,
    find_profile,
    fit_profile,
    load_profile,
    profile_path,
)
from llmsched_gym.errors import ProfileError
from tests.costs.batches import SAMPLE_PARAMS
from tests.costs.conftest import make_profile, synthetic_points


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    return path


FIXTURE_V1 = Path(__file__).parent / "fixtures" / "profile_v1.json"


@pytest.mark.parametrize("fixture", ["sample_profile", "operator_profile"])
def test_save_then_load_gives_the_same_profile(fixture: str, request: Any, tmp_path: Path) -> None:
    profile = request.getfixturevalue(fixture)
    path = profile.save(tmp_path / "a" / "b.json")
    loaded = load_profile(path)
    assert loaded == profile
    assert loaded.to_json() == profile.to_json()
    assert loaded.executor_info["cuda_graph_buckets"] == [1, 8, 32, 64]


def test_json_carries_the_documented_top_level_fields(operator_profile: Profile) -> None:
    data = json.loads(operator_profile.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert set(data) == {
        "schema_version",
        "gpu",
        "model",
        "tp",
        "block_size",
        "executor",
        "created",
        "provenance",
        "source",
        "grid",
        "fit",
        "validation",
    }
    assert data["fit"]["form"] == "operator"
    assert set(data["fit"]["coefficients"]) == {f.name for f in dataclasses.fields(OperatorParams)}
    assert {"median_abs_error", "p90_abs_error"} <= set(data["validation"])
    assert set(data["source"]) == {"kind", "reference", "caveats"}
    assert {"prefill_tokens", "prefill_context", "n_decodes", "decode_context_sum", "n_seqs", "seconds"} <= set(
        data["grid"][0]
    )


def test_a_schema_1_profile_still_loads_and_evaluates_its_fit(tmp_path: Path) -> None:
    old = load_profile(FIXTURE_V1)
    assert old.schema_version == 1 and isinstance(old.fit, FittedParams)
    assert old.validation.median_abs_error is None
    model = ProfileCostModel(FIXTURE_V1)
    for point in old.grid:
        assert model.iteration_time(point.summary()) == pytest.approx(point.seconds, rel=1e-6)
    upgraded = load_profile(old.save(tmp_path / "v2.json"))
    assert upgraded.schema_version == 2 and upgraded.fit == old.fit and upgraded.grid == old.grid


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.json")


def test_invalid_json_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(path)
    with pytest.raises(ProfileError, match="JSON object"):
        load_profile(_write(tmp_path, [1, 2]))


def test_missing_schema_version_names_the_supported_one(sample_profile: Profile, tmp_path: Path) -> None:
    data = sample_profile.to_dict()
    del data["schema_version"]
    with pytest.raises(ProfileError, match=r"no schema_version.*schema_version 1 and 2"):
        load_profile(_write(tmp_path, data))


def test_wrong_schema_version_names_found_and_supported(sample_profile: Profile, tmp_path: Path) -> None:
    data = sample_profile.to_dict() | {"schema_version": 3}
    with pytest.raises(ProfileError, match=r"schema_version 3.*supports schema_version 1 and 2"):
        load_profile(_write(tmp_path, data))


def test_missing_fields_are_all_named(sample_profile: Profile, tmp_path: Path) -> None:
    data = sample_profile.to_dict()
    del data["provenance"], data["model"]["hidden"], data["source"]["caveats"]
    with pytest.raises(ProfileError, match="provenance") as info:
        load_profile(_write(tmp_path, data))
    assert "model.hidden" in str(info.value) and "source.caveats" in str(info.value)
    del data["validation"]
    with pytest.raises(ProfileError, match=r"validation"):
        load_profile(_write(tmp_path, data))


def test_missing_coefficients_are_named(sample_profile: Profile, operator_profile: Profile, tmp_path: Path) -> None:
    data = sample_profile.to_dict()
    del data["fit"]["coefficients"]["c_kv"]
    with pytest.raises(ProfileError, match=r"fit\.coefficients\.c_kv"):
        load_profile(_write(tmp_path, data))
    data = operator_profile.to_dict()
    del data["fit"]["coefficients"]["kv_s"]
    with pytest.raises(ProfileError, match=r"missing \['kv_s'\]"):
        load_profile(_write(tmp_path, data))


@pytest.mark.parametrize("seconds", [-0.01, 0.0])
def test_non_positive_measured_times_are_rejected(sample_profile: Profile, tmp_path: Path, seconds: float) -> None:
    data = sample_profile.to_dict()
    data["grid"][3]["seconds"] = seconds
    with pytest.raises(ProfileError, match=r"grid\[3\]\.seconds"):
        load_profile(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["fit"].update(form="cubic"), "fit.form='cubic'"),
        (lambda d: d.update(created="yesterday"), "created='yesterday'"),
        (lambda d: d["fit"]["coefficients"].update(c_tok=-1.0), "c_tok=-1.0"),
        (lambda d: d["model"].update(n_kv_heads=5), "n_kv_heads=5"),
        (lambda d: d["grid"][0].pop("n_seqs"), r"grid\[0\] lacks field\(s\): n_seqs"),
        (lambda d: d["grid"][0].update(role="test"), r"grid\[0\].*role='test'"),
        (lambda d: d["source"].update(kind="guessed"), "source='guessed'"),
    ],
)
def test_invalid_values_are_profile_errors(sample_profile: Profile, tmp_path: Path, edit: Any, match: str) -> None:
    data = sample_profile.to_dict()
    edit(data)
    with pytest.raises(ProfileError, match=match):
        load_profile(_write(tmp_path, data))


def test_fit_recovers_known_parameters_from_exact_points() -> None:
    fit = fit_profile(synthetic_points(SAMPLE_PARAMS), tile_tokens=SAMPLE_PARAMS.tile_tokens)
    assert fit.params.knee_tokens == SAMPLE_PARAMS.knee_tokens
    for name, value in SAMPLE_PARAMS.coefficients().items():
        assert fit.params.coefficients()[name] == pytest.approx(value, rel=1e-6), name
    assert fit.validation.mape < 1e-9 and fit.validation.n_holdout > 0


def test_fit_tolerates_measurement_noise() -> None:
    fit = fit_profile(synthetic_points(SAMPLE_PARAMS, noise=0.01, seed=4), tile_tokens=64)
    assert fit.validation.mape < 0.02
    assert fit.params.c0 == pytest.approx(SAMPLE_PARAMS.c0, rel=0.05)
    assert fit.params.c_tok == pytest.approx(SAMPLE_PARAMS.c_tok, rel=0.1)


def test_fit_approximates_the_cuda_graph_roofline_within_a_few_percent() -> None:
    roofline = RooflineCostModel(params=RooflineParams.cuda_graphs())
    points = [
        MeasuredPoint.from_summary(p.summary(), roofline.iteration_time(p.summary()))
        for p in synthetic_points(SAMPLE_PARAMS)
    ]
    assert fit_profile(points).validation.mape < 0.05


def test_fit_needs_enough_points() -> None:
    with pytest.raises(ValueError, match="need at least 6"):
        fit_profile(synthetic_points(SAMPLE_PARAMS)[:5], holdout_fraction=0.0)
    with pytest.raises(ValueError, match=r"holdout_fraction=1.0"):
        fit_profile(synthetic_points(SAMPLE_PARAMS), holdout_fraction=1.0)


def test_profile_cost_model_evaluates_the_fit(sample_profile: Profile, saved_profile: str) -> None:
    from_path = ProfileCostModel(saved_profile)
    exact = ProfileCostModel(SAMPLE_PARAMS)
    for point in sample_profile.grid[::7]:
        batch = point.summary()
        assert from_path.iteration_time(batch) == pytest.approx(point.seconds, rel=1e-6)
        assert exact.iteration_time(batch) == pytest.approx(point.seconds, rel=1e-12)
    assert from_path.profile == sample_profile


def test_lookup_by_gpu_and_model(sample_profile: Profile, tmp_path: Path) -> None:
    assert profile_path("h100-80gb", "llama-2-7b", root=tmp_path) == tmp_path / "H100-80GB" / "Llama-2-7B.json"
    assert profile_path("H200", "Llama-2-70B", tp=4, root=tmp_path).name == "Llama-2-70B-tp4.json"
    sample_profile.save(profile_path("H100-80GB", "Llama-2-7B", root=tmp_path))
    assert find_profile("h100-80gb", "LLAMA-2-7B", root=tmp_path) == sample_profile
    with pytest.raises(ProfileError, match=r"available: H100-80GB/Llama-2-7B\.json"):
        find_profile("H200", "Llama-2-7B", root=tmp_path)


def test_lookup_rejects_a_profile_filed_under_the_wrong_name(tmp_path: Path) -> None:
    make_profile(tp=2).save(profile_path("H100-80GB", "Llama-2-7B", root=tmp_path))
    with pytest.raises(ProfileError, match="measured with tp=2 but the run uses tp=1: pass --tp 2"):
        find_profile("H100-80GB", "Llama-2-7B", root=tmp_path)


def test_fitted_params_keep_times_positive_and_monotone() -> None:
    with pytest.raises(ValueError, match=r"c0=0.0"):
        FittedParams(0, 0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="c_kv=-1"):
        FittedParams(0, 0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0)
