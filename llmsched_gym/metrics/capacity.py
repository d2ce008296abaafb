"""Capacity search: the largest arrival rate whose run meets an SLO criterion (Sarathi-Serve §5.1).

Bisection over the Poisson rate, as Sarathi-Serve's ``capacity_search`` does: each trial simulates a
fresh workload at the candidate rate and checks the criterion; the search assumes the criterion holds
below capacity and fails above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llmsched_gym.metrics.summary import RunSummary


@dataclass(frozen=True, slots=True)
class SLOCriterion:
    """A run-level SLO.

    Attributes:
        p99_tbt_s: Max P99 TBT over all gaps (Sarathi-Serve strict/relaxed SLOs), or None.
        median_sched_delay_s: Max median scheduling delay (Sarathi-Serve uses 2 s), or None.
        median_ttft_s: Max median TTFT (SLAI uses 0.5 s), or None.
        min_slo_attainment: Min fraction of requests meeting their own SLO class, or None.
    """

    p99_tbt_s: float | None = None
    median_sched_delay_s: float | None = 2.0
    median_ttft_s: float | None = None
    min_slo_attainment: float | None = None

    def __post_init__(self) -> None:
        """Validate the thresholds."""
        for name in ("p99_tbt_s", "median_sched_delay_s", "median_ttft_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"SLOCriterion: {name}={value} must be > 0 or None")
        if self.min_slo_attainment is not None and not 0 < self.min_slo_attainment <= 1:
            raise ValueError(f"SLOCriterion: min_slo_attainment={self.min_slo_attainment} must be in (0, 1]")

    def holds(self, s: RunSummary) -> bool:
        """Whether the run's summary meets every set threshold (and nothing was rejected)."""
        checks = (
            (self.p99_tbt_s, s.tbt["p99"]),
            (self.median_sched_delay_s, s.scheduling_delay["p50"]),
            (self.median_ttft_s, s.ttft["p50"]),
        )
        for limit, value in checks:
            if limit is not None and not (math.isfinite(value) and value <= limit):
                return False
        if self.min_slo_attainment is not None:
            if "all" not in s.slo_attainment:
                raise ValueError(
                    "SLOCriterion: min_slo_attainment needs requests with SLO targets, but the run has none; "
                    "attach targets to the workload (e.g. with_slo_classes) or drop min_slo_attainment"
                )
            if not s.slo_attainment["all"] >= self.min_slo_attainment:
                return False
        return s.finished == s.requests


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """Outcome of a capacity search.

    Attributes:
        capacity: Largest rate found to meet the criterion (0 if even ``lo`` fails).
        trials: ``(rate, holds)`` for every simulated rate, in order.
    """

    capacity: float
    trials: tuple[tuple[float, bool], ...]


def capacity_search(
    run_at: Callable[[float], RunSummary],
    criterion: SLOCriterion,
    *,
    lo: float,
    hi: float,
    rel_tol: float = 0.02,
    max_trials: int = 20,
) -> CapacityResult:
    """Bisect the rate in ``[lo, hi]`` for the largest one whose run meets ``criterion``.

    Args:
        run_at: Simulates the workload at a rate and returns its summary.
        criterion: The SLO to meet.
        lo: A rate expected to meet it (if it does not, capacity is 0).
        hi: A rate expected to violate it (doubled up to 8 times while it still holds).
        rel_tol: Stop when ``(hi - lo) / hi`` is below this.
        max_trials: Upper bound on simulations.
    """
    if not 0 < lo < hi:
        raise ValueError(f"capacity_search: need 0 < lo < hi, got lo={lo}, hi={hi}")
    trials: list[tuple[float, bool]] = []

    def ok(rate: float) -> bool:
        holds = criterion.holds(run_at(rate))
        trials.append((rate, holds))
        return holds

    if not ok(lo):
        return CapacityResult(0.0, tuple(trials))
    for _ in range(8):
        if not ok(hi):
            break
        lo, hi = hi, hi * 2.0
    else:
        return CapacityResult(lo, tuple(trials))
    while (hi - lo) / hi > rel_tol and len(trials) < max_trials:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return CapacityResult(lo, tuple(trials))
