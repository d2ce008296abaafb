"""Arrival processes: Poisson, Gamma (bursty), deterministic and on/off.

Every process draws only from the ``numpy.random.Generator`` it is given, in blocks of :data:`BLOCK` values,
so the same seed always yields the same times, and a prefix of a stream does not depend on how much of it is
read. Renewal processes start at ``start`` with no arrival there: the first arrival comes one inter-arrival time
later.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from llmsched_gym.workloads._validate import require_non_negative, require_positive

BLOCK = 1024
"""Number of random values drawn at a time by the generators of this package."""


@runtime_checkable
class ArrivalProcess(Protocol):
    """Anything that produces a non-decreasing, unbounded stream of arrival times."""

    @property
    def mean_rate(self) -> float:
        """Long-run mean arrival rate in requests per second."""
        ...

    def times(self, rng: np.random.Generator, *, start: float = 0.0) -> Iterator[float]:
        """Yield arrival times (seconds, non-decreasing, > ``start`` for renewal processes) without end."""
        ...


class _BlockDraw(Protocol):
    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray: ...


def _renewal(draw_block: _BlockDraw, rng: np.random.Generator, start: float) -> Iterator[float]:
    """Cumulate blocks of inter-arrival times into arrival times."""
    now = float(start)
    while True:
        times = now + np.cumsum(draw_block(rng, BLOCK))
        yield from times.tolist()
        now = float(times[-1])


@dataclass(frozen=True, slots=True)
class PoissonArrivals:
    """Poisson arrivals: exponential inter-arrival times with mean ``1 / rate`` (IAT CV = 1).

    Attributes:
        rate: Requests per second.
    """

    rate: float

    def __post_init__(self) -> None:
        """Validate the rate."""
        require_positive("PoissonArrivals", "rate", self.rate, "pass the request rate in requests/s, e.g. rate=2.0")

    @property
    def mean_rate(self) -> float:
        """Long-run mean rate (= ``rate``)."""
        return float(self.rate)

    def times(self, rng: np.random.Generator, *, start: float = 0.0) -> Iterator[float]:
        """Yield Poisson arrival times after ``start``."""
        scale = 1.0 / self.rate
        return _renewal(lambda g, size: g.exponential(scale, size), rng, start)


@dataclass(frozen=True, slots=True)
class GammaArrivals:
    """Gamma-renewal arrivals with a chosen burstiness.

    Inter-arrival times are Gamma with shape ``1 / cv**2`` and mean ``1 / rate``; ``cv`` is their coefficient of
    variation (1 gives Poisson, > 1 is burstier, < 1 is more regular).

    Attributes:
        rate: Requests per second.
        cv: Coefficient of variation of the inter-arrival times.
    """

    rate: float
    cv: float

    def __post_init__(self) -> None:
        """Validate the rate and CV."""
        require_positive("GammaArrivals", "rate", self.rate, "pass the request rate in requests/s, e.g. rate=2.0")
        require_positive("GammaArrivals", "cv", self.cv, "use cv=1 for Poisson-like and cv>1 for bursty traffic")

    @property
    def mean_rate(self) -> float:
        """Long-run mean rate (= ``rate``)."""
        return float(self.rate)

    def times(self, rng: np.random.Generator, *, start: float = 0.0) -> Iterator[float]:
        """Yield Gamma-renewal arrival times after ``start``."""
        shape = 1.0 / (self.cv * self.cv)
        scale = 1.0 / (self.rate * shape)
        return _renewal(lambda g, size: g.gamma(shape, scale, size), rng, start)


@dataclass(frozen=True, slots=True)
class DeterministicArrivals:
    """Evenly spaced arrivals at ``start + k / rate`` for k = 1, 2, ... (draws nothing from the generator).

    Attributes:
        rate: Requests per second.
    """

    rate: float

    def __post_init__(self) -> None:
        """Validate the rate."""
        require_positive("DeterministicArrivals", "rate", self.rate, "pass requests/s, e.g. rate=2.0")

    @property
    def mean_rate(self) -> float:
        """Rate (= ``rate``)."""
        return float(self.rate)

    def times(self, rng: np.random.Generator, *, start: float = 0.0) -> Iterator[float]:
        """Yield ``start + k / rate``; computed by multiplication so that no rounding error accumulates."""
        del rng
        k = 0
        while True:
            k += 1
            yield start + k / self.rate


@dataclass(frozen=True, slots=True)
class OnOffArrivals:
    """Poisson arrivals during on-periods, none during off-periods (VTC's on/off clients).

    The cycle is ``on_s`` seconds on, then ``off_s`` seconds off, repeated; with ``start_on=False`` it begins
    with an off-period. Times are drawn as a Poisson process in "on-time" and mapped onto the cycle.

    Attributes:
        rate: Requests per second during on-periods.
        on_s: Length of each on-period in seconds.
        off_s: Length of each off-period in seconds.
        start_on: Begin with an on-period (default) or an off-period.
    """

    rate: float
    on_s: float
    off_s: float
    start_on: bool = True

    def __post_init__(self) -> None:
        """Validate the rate and period lengths."""
        require_positive("OnOffArrivals", "rate", self.rate, "pass the on-period rate in requests/s")
        require_positive("OnOffArrivals", "on_s", self.on_s, "pass the on-period length in seconds")
        require_non_negative("OnOffArrivals", "off_s", self.off_s, "pass the off-period length in seconds")

    @property
    def mean_rate(self) -> float:
        """Long-run mean rate: ``rate * on_s / (on_s + off_s)``."""
        return float(self.rate * self.on_s / (self.on_s + self.off_s))

    def times(self, rng: np.random.Generator, *, start: float = 0.0) -> Iterator[float]:
        """Yield on/off arrival times after ``start``."""
        offset = start if self.start_on else start + self.off_s
        cycle = self.on_s + self.off_s
        for on_time in PoissonArrivals(self.rate).times(rng):
            periods = math.floor(on_time / self.on_s)
            yield offset + periods * cycle + (on_time - periods * self.on_s)
