"""Building cost models by name."""

from __future__ import annotations

import pytest

from llmsched_gym.costs import (
    AffineKVCostModel,
    ProfileCostModel,
    RooflineCostModel,
    TileStepCostModel,
    UnitCostModel,
    list_cost_models,
    make_cost_model,
)
from llmsched_gym.errors import ProfileError, UnknownNameError


def test_registry_names_and_descriptions() -> None:
    names = list_cost_models()
    assert list(names) == ["roofline", "profile", "unit", "affine_kv", "tile_step"]
    assert all(isinstance(d, str) and d and "\n" not in d for d in names.values())


def test_default_is_the_roofline_of_h100_llama2_7b() -> None:
    model = make_cost_model(None)
    assert isinstance(model, RooflineCostModel)
    assert (model.gpu.name, model.model.name, model.tp) == ("H100-80GB", "Llama-2-7B", 1)


def test_names_are_case_and_dash_insensitive() -> None:
    assert isinstance(make_cost_model("Affine-KV", d0=0.01, d1=1e-6), AffineKVCostModel)
    assert isinstance(make_cost_model("UNIT"), UnitCostModel)


def test_parameters_reach_the_model() -> None:
    roofline = make_cost_model("roofline", gpu="a100-80gb", model="llama-2-70b", tp=4, overhead_s=0.001)
    assert isinstance(roofline, RooflineCostModel)
    assert (roofline.gpu.name, roofline.tp, roofline.params.overhead_s) == ("A100-80GB", 4, 0.001)
    assert make_cost_model("unit", duration=2.0) == UnitCostModel(2.0)
    assert make_cost_model("tile_step", tile=64, base_s=1e-3) == TileStepCostModel(tile=64, base_s=1e-3)


def test_analytic_models_are_fitted_from_a_base_model_unless_given() -> None:
    unit_fit = make_cost_model("affine_kv", base="unit")
    assert isinstance(unit_fit, AffineKVCostModel)
    assert unit_fit.d0 == pytest.approx(1.0) and unit_fit.d1 == pytest.approx(0.0, abs=1e-12)
    tile = make_cost_model("tile_step", tile=64, base="roofline", base_params={"overhead_s": 0.0})
    assert isinstance(tile, TileStepCostModel) and tile.tile == 64
    with pytest.raises(ValueError, match="pass both d0 and d1"):
        make_cost_model("affine_kv", d0=0.1)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="roofline, profile, unit, affine_kv, tile_step"):
        make_cost_model("vidur")


def test_profile_without_a_shipped_profile_says_what_to_do(tmp_path: object) -> None:
    with pytest.raises(ProfileError, match="roofline"):
        make_cost_model("profile", gpu="H200", model="Llama-2-13B", root=tmp_path)


def test_profile_by_path_and_shorthand(saved_profile: str) -> None:
    assert isinstance(make_cost_model("profile", path=saved_profile), ProfileCostModel)
    assert isinstance(make_cost_model(f"profile:{saved_profile}"), ProfileCostModel)
    with pytest.raises(TypeError, match="unknown parameter"):
        make_cost_model("profile", path=saved_profile, tile=3)


@pytest.mark.parametrize(
    ("run", "field"),
    [
        ({"gpu": "A100-80GB"}, "gpu=H100-80GB but the run uses gpu=A100-80GB: pass --gpu H100-80GB"),
        ({"model": "Llama-3-8B"}, "model=Llama-2-7B but the run uses model=Llama-3-8B: pass --model Llama-2-7B"),
        ({"tp": 2}, "tp=1 but the run uses tp=2"),
        ({"block_size": 32}, "block_size=16 but the run uses block_size=32"),
    ],
)
def test_a_profile_passed_by_path_is_checked_against_the_run(saved_profile: str, run: dict, field: str) -> None:
    with pytest.raises(ProfileError, match=field):
        make_cost_model(f"profile:{saved_profile}", **run)


def test_profile_path_checks_only_what_the_run_specifies(saved_profile: str) -> None:
    model = make_cost_model("profile", path=saved_profile, gpu="h100-80gb", model="LLAMA-2-7B", tp=1, block_size=16)
    assert isinstance(model, ProfileCostModel)
    assert isinstance(make_cost_model("profile", path=saved_profile, block_size=16), ProfileCostModel)


def test_every_model_accepts_the_run_block_size_and_the_shipped_profiles_are_found() -> None:
    for name in ("roofline", "unit", "affine_kv", "tile_step"):
        assert make_cost_model(name, block_size=16) is not None
    shipped = make_cost_model("profile", gpu="A100-80GB", model="Llama-2-70B", tp=8, block_size=16)
    assert isinstance(shipped, ProfileCostModel) and shipped.profile is not None
    assert shipped.profile.source == "imported" and shipped.profile.block_size is None
    fitted = make_cost_model("affine_kv", gpu="A100-80GB", preset="cuda-graphs")
    assert isinstance(fitted, AffineKVCostModel)
