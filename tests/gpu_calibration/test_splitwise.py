"""The Splitwise importer: the shipped profiles are what the importer builds from the public CSV."""

from __future__ import annotations

import pytest

from gpu_calibration.splitwise import DEFAULT_CSV, PUBLIC_FREE, import_setup, read_rows, setup_points, setups
from llmsched_gym.costs import find_profile, list_profiles

pytestmark = pytest.mark.skipif(not DEFAULT_CSV.is_file(), reason=f"{DEFAULT_CSV} (../shared) is absent")


@pytest.fixture(scope="module")
def groups():
    return read_rows(DEFAULT_CSV)


def test_every_setup_of_the_file_is_shipped(groups):
    found = setups(groups)
    assert len(found) == 12
    shipped = set(list_profiles())
    for model, hw, tp in found:
        profile = find_profile(hw, "Llama-2-70B" if model == "llama2-70b" else "BLOOM-176B", tp=tp)
        assert profile.source == "imported" and profile.caveats and "8f99e7dc9b40" in profile.reference
        assert f"{profile.gpu_name}/{profile.model.name}-tp{tp}.json" in shipped


def test_points_are_prefills_and_mean_context_decodes(groups):
    points = setup_points(groups, ("llama2-70b", "a100-80gb", 8))
    assert len(points) == 32
    prefill = [p for p in points if p.prefill_tokens]
    assert {len(p.prefill_tokens) for p in prefill} == {1, 2, 4, 8, 16, 32, 64}
    decode = next(p for p in points if p.n_decodes == 1 and p.decode_context_sum == round(512 + 127 / 2))
    assert decode.seconds == pytest.approx(0.04485, rel=1e-3) and decode.repeats == 15


def test_import_reproduces_the_shipped_profile_and_flags_the_implausible_point(groups):
    rebuilt = import_setup(groups, ("llama2-70b", "h100-80gb", 2))
    shipped = find_profile("H100-80GB", "Llama-2-70B", tp=2)
    assert rebuilt.grid == shipped.grid
    for name, value in shipped.fit.coefficients().items():
        assert getattr(rebuilt.fit, name) == pytest.approx(value, rel=1e-6, abs=1e-12), name
    outliers = [p for p in rebuilt.grid if p.flag == "outlier"]
    assert [(len(p.prefill_tokens), p.prefill_tokens[0]) for p in outliers] == [(64, 512)]
    assert list(rebuilt.fit_info["free"]) == list(PUBLIC_FREE)
