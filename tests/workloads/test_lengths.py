from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from llmsched_gym.errors import TraceFormatError
from llmsched_gym.workloads import (
    EmpiricalLengths,
    FixedTokens,
    IndependentLengths,
    LengthDistribution,
    LognormalTokens,
    PoissonArrivals,
    TokenDistribution,
    UniformTokens,
    load_length_stats,
)

RNG = np.random.default_rng


def test_fixed_tokens_always_return_the_value() -> None:
    assert np.all(FixedTokens(7).draw(100, RNG(0)) == 7)


def test_uniform_tokens_cover_both_inclusive_bounds() -> None:
    values = UniformTokens(3, 6).draw(5_000, RNG(0))
    assert set(values.tolist()) == {3, 4, 5, 6}


def test_lognormal_from_mean_median_matches_mean_and_median() -> None:
    dist = LognormalTokens.from_mean_median(2340, 1730)
    values = dist.draw(200_000, RNG(1))
    assert values.mean() == pytest.approx(2340, rel=0.02)
    assert np.median(values) == pytest.approx(1730, rel=0.02)


def test_lognormal_clamps_to_min_and_max() -> None:
    values = LognormalTokens(mu=5.0, sigma=2.0, min_value=10, max_value=500).draw(10_000, RNG(2))
    assert values.min() == 10
    assert values.max() == 500


@pytest.mark.parametrize(
    ("factory", "bad"),
    [
        (lambda: FixedTokens(0), "value=0"),
        (lambda: UniformTokens(5, 4), "high=4"),
        (lambda: UniformTokens(0, 4), "low=0"),
        (lambda: LognormalTokens(1.0, -0.5), "sigma=-0.5"),
        (lambda: LognormalTokens(1.0, 0.5, min_value=10, max_value=5), "max_value=5"),
        (lambda: LognormalTokens.from_mean_median(100, 200), "mean=100"),
        (lambda: IndependentLengths.fixed(10, 10).__class__(FixedTokens(1), FixedTokens(1), max_total=1), "max_total"),
        (lambda: EmpiricalLengths(np.array([1, 2]), np.array([1])), "2 prompts and 1 outputs"),
        (lambda: EmpiricalLengths(np.array([0]), np.array([1])), ">= 1"),
    ],
)
def test_length_configs_reject_bad_values_naming_them(factory: Callable[[], object], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        factory()


def test_independent_lengths_with_max_total_never_exceed_it() -> None:
    dist = IndependentLengths(LognormalTokens.from_mean_median(2340, 1730), UniformTokens(1, 1024), max_total=4096)
    prompts, outputs = dist.draw(20_000, RNG(3))
    assert len(prompts) == len(outputs) == 20_000
    assert np.all(prompts + outputs <= 4096)
    assert np.all(prompts >= 1)


def test_independent_lengths_fail_clearly_when_the_cap_rejects_everything() -> None:
    dist = IndependentLengths(FixedTokens(100), FixedTokens(100), max_total=150)
    with pytest.raises(ValueError, match=r"rejects nearly every"):
        dist.draw(10, RNG(0))


def test_empirical_lengths_sample_only_observed_pairs() -> None:
    dist = EmpiricalLengths.from_pairs([(10, 1), (20, 2), (30, 3)])
    prompts, outputs = dist.draw(1_000, RNG(4))
    assert set(zip(prompts.tolist(), outputs.tolist(), strict=True)) == {(10, 1), (20, 2), (30, 3)}
    assert len(dist) == 3
    assert not dist.prompts.flags.writeable


def test_empirical_lengths_load_a_length_stats_csv(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n5,2,7,2.5\n100,10,110,10\n")
    dist = EmpiricalLengths.from_length_stats_csv(path)
    assert dist.prompts.tolist() == [5, 100]
    assert EmpiricalLengths.from_length_stats_csv(path, max_total=50).prompts.tolist() == [5]


def test_empirical_lengths_report_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n5,x\n")
    with pytest.raises(TraceFormatError, match=r"line 2, field 'num_decode_tokens'"):
        EmpiricalLengths.from_length_stats_csv(path)


@pytest.mark.parametrize(
    "dist",
    [
        IndependentLengths.fixed(512, 20),
        IndependentLengths(UniformTokens(1, 100), LognormalTokens(3.0, 1.0)),
        EmpiricalLengths.from_pairs([(1, 2), (3, 4)]),
    ],
    ids=["fixed", "independent", "empirical"],
)
def test_length_distributions_are_deterministic_by_seed(dist: LengthDistribution) -> None:
    first, second = dist.draw(500, RNG(9)), dist.draw(500, RNG(9))
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[0].dtype == np.int64
    assert isinstance(dist, LengthDistribution)
    assert isinstance(FixedTokens(1), TokenDistribution)


def test_length_stats_shuffle_is_deterministic_by_seed(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n" + "".join(f"{i},{i}\n" for i in range(1, 51)))

    def prompts(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [r.prompt_len for r in load_length_stats(path, PoissonArrivals(1.0), rng, shuffle=True, n=20)]

    assert prompts(3) == prompts(3)
    assert prompts(3) != prompts(4)
    assert sorted(prompts(3)) != list(range(1, 21))
