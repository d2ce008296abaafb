from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from llmsched_gym.workloads import (
    ArrivalProcess,
    DeterministicArrivals,
    GammaArrivals,
    OnOffArrivals,
    PoissonArrivals,
)


def take(process: ArrivalProcess, n: int, seed: int = 0, start: float = 0.0) -> np.ndarray:
    return np.array(list(itertools.islice(process.times(np.random.default_rng(seed), start=start), n)))


def iat_cv(times: np.ndarray) -> float:
    gaps = np.diff(times)
    return float(gaps.std() / gaps.mean())


def test_poisson_arrivals_have_requested_mean_rate() -> None:
    times = take(PoissonArrivals(4.0), 20_000)
    assert (len(times) - 1) / (times[-1] - times[0]) == pytest.approx(4.0, rel=0.03)
    assert iat_cv(times) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_arrivals_have_requested_rate_and_burstiness(cv: float) -> None:
    times = take(GammaArrivals(2.0, cv), 40_000)
    assert (len(times) - 1) / (times[-1] - times[0]) == pytest.approx(2.0, rel=0.06)
    assert iat_cv(times) == pytest.approx(cv, rel=0.08)


def test_deterministic_arrivals_are_evenly_spaced_without_drift() -> None:
    times = take(DeterministicArrivals(10.0), 100_001, start=5.0)
    assert times[0] == pytest.approx(5.1)
    assert times[-1] == 5.0 + 100_001 / 10.0
    assert np.allclose(np.diff(times), 0.1)


def test_on_off_arrivals_only_fall_in_on_periods_at_the_on_rate() -> None:
    process = OnOffArrivals(rate=5.0, on_s=10.0, off_s=30.0)
    times = take(process, 5_000)
    phase = np.mod(times, 40.0)
    assert np.all(phase <= 10.0)
    assert (len(times) - 1) / (times[-1] - times[0]) == pytest.approx(process.mean_rate, rel=0.08)
    assert process.mean_rate == pytest.approx(1.25)


def test_on_off_arrivals_starting_off_wait_one_off_period() -> None:
    times = take(OnOffArrivals(rate=5.0, on_s=10.0, off_s=30.0, start_on=False), 2_000)
    assert times[0] >= 30.0
    assert np.all(np.mod(times - 30.0, 40.0) <= 10.0)


@pytest.mark.parametrize(
    "process",
    [PoissonArrivals(3.0), GammaArrivals(3.0, 2.0), DeterministicArrivals(3.0), OnOffArrivals(3.0, 5.0, 5.0)],
    ids=["poisson", "gamma", "deterministic", "onoff"],
)
def test_arrival_streams_are_sorted_deterministic_and_prefix_stable(process: ArrivalProcess) -> None:
    long_run = take(process, 3_000, seed=7, start=2.0)
    assert np.all(np.diff(long_run) >= 0)
    assert np.all(long_run > 2.0)
    assert np.array_equal(take(process, 3_000, seed=7, start=2.0), long_run)
    assert np.array_equal(take(process, 10, seed=7, start=2.0), long_run[:10])
    assert isinstance(process, ArrivalProcess)


def test_arrivals_do_not_touch_numpy_global_state() -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    take(PoissonArrivals(1.0), 2_000)
    take(GammaArrivals(1.0, 2.0), 2_000)
    assert np.random.random() == expected


@pytest.mark.parametrize(
    ("factory", "bad"),
    [
        (lambda: PoissonArrivals(0.0), "rate=0.0"),
        (lambda: PoissonArrivals(float("nan")), "rate=nan"),
        (lambda: GammaArrivals(1.0, -1.0), "cv=-1.0"),
        (lambda: GammaArrivals(-2.0, 1.0), "rate=-2.0"),
        (lambda: DeterministicArrivals(float("inf")), "rate=inf"),
        (lambda: OnOffArrivals(1.0, 0.0, 1.0), "on_s=0.0"),
        (lambda: OnOffArrivals(1.0, 1.0, -1.0), "off_s=-1.0"),
    ],
)
def test_arrival_configs_reject_bad_values_naming_them(factory: Callable[[], object], bad: str) -> None:
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        factory()
