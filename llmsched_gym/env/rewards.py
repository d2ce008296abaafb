"""Named, incremental rewards: each step's reward integrates an episode objective over the step's interval.

Each reward documents its objective and computes it from a finished (or truncated) run's
:class:`~llmsched_gym.simulate.SimulationResult` with :meth:`Reward.episode_objective`; an episode's
undiscounted return equals that value (up to floating-point summation order). Build one by name with
:func:`make_reward`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from llmsched_gym.env.stats import VTC_OUTPUT_WEIGHT, VTC_PROMPT_WEIGHT, StepStats
from llmsched_gym.errors import UnknownNameError

if TYPE_CHECKING:
    from llmsched_gym.simulate import SimulationResult


@runtime_checkable
class Reward(Protocol):
    """A reward function: one number per step whose sum over an episode is :meth:`episode_objective`."""

    @property
    def name(self) -> str:
        """The registered name."""
        ...

    def __call__(self, stats: StepStats) -> float:
        """The reward of one step."""
        ...

    def episode_objective(self, result: SimulationResult) -> float:
        """The objective the return equals, computed from the run's final per-request columns."""
        ...


def _scale(owner: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: scale={value!r} must be a positive finite number (e.g. 1.0)")


@dataclass(frozen=True, slots=True)
class GoodputReward:
    """``+scale`` for each request that finishes meeting its TTFT and TBT targets.

    Objective: ``scale x`` the number of requests meeting their SLOs (``metrics.summary.meets_slo``); the run
    summary's goodput is that count per second of makespan. Without SLO targets every finished request counts.

    ``credit="finish"`` (default) pays each +1 when the request finishes. ``credit="first_token"`` pays the same
    objective earlier: ``+scale`` when a request's first token comes within its TTFT target, ``-scale`` when such a
    request finishes with its TBT target missed, and at a truncated episode's end ``-scale`` for each credited
    request still unfinished; the sum is the same number, but most of it arrives many decisions sooner.

    Attributes:
        scale: Multiplier.
        credit: ``"finish"`` or ``"first_token"``.
    """

    scale: float = 1.0
    credit: str = "finish"
    name: str = field(default="goodput", init=False)

    def __post_init__(self) -> None:
        """Validate the scale and the credit."""
        _scale("GoodputReward", self.scale)
        if self.credit not in ("finish", "first_token"):
            raise ValueError(f"GoodputReward: credit={self.credit!r} must be 'finish' or 'first_token'")

    def __call__(self, stats: StepStats) -> float:
        """``scale x`` the step's credited requests."""
        if self.credit == "first_token":
            return self.scale * (stats.on_time - stats.late_tbt)
        return self.scale * stats.slo_met

    def at_end(self, open_credits: int) -> float:
        """Correction at the episode's last step: credited requests that did not finish give their credit back."""
        return -self.scale * open_credits if self.credit == "first_token" else 0.0

    def episode_objective(self, result: SimulationResult) -> float:
        """``scale x`` the count of SLO-meeting requests."""
        from llmsched_gym.metrics.summary import meets_slo

        return self.scale * float(np.count_nonzero(meets_slo(result)))


@dataclass(frozen=True, slots=True)
class LatencyReward:
    """``-scale x integral of N(t) dt`` over the step, ``N`` = requests in the system (arrived, not ended).

    Objective: ``-scale x`` the total time requests spent in the system up to the episode's end ``T``:
    ``sum_i (min(end_i, T) - arrival_i)``, ``end`` = finish or rejection time (Little's law: mean E2E latency
    times the number of requests for a finished episode).
    """

    scale: float = 1.0
    name: str = field(default="latency", init=False)

    def __post_init__(self) -> None:
        """Validate the scale."""
        _scale("LatencyReward", self.scale)

    def __call__(self, stats: StepStats) -> float:
        """``-scale x`` request-seconds in the step."""
        return -self.scale * stats.in_system_area

    def episode_objective(self, result: SimulationResult) -> float:
        """``-scale x sum(min(end, T) - arrival)``."""
        c = result.columns
        end = np.where(np.isnan(c["finish"]), result.end_time, np.minimum(c["finish"], result.end_time))
        return -self.scale * float(np.sum(end - c["arrival"]))


@dataclass(frozen=True, slots=True)
class ThroughputReward:
    """``+scale`` per output token delivered in the step.

    Objective: ``scale x`` output tokens delivered by the episode's end. A finished episode delivers every token
    of its workload, so use it with a time horizon (``max_time_s``), a discount, or inside ``weighted``.
    """

    scale: float = 1.0
    name: str = field(default="throughput", init=False)

    def __post_init__(self) -> None:
        """Validate the scale."""
        _scale("ThroughputReward", self.scale)

    def __call__(self, stats: StepStats) -> float:
        """``scale x`` tokens emitted in the step."""
        return self.scale * stats.emitted

    def episode_objective(self, result: SimulationResult) -> float:
        """``scale x`` total emitted tokens."""
        return self.scale * float(result.columns["emitted"].sum())


def service_spread(result: SimulationResult) -> float:
    """Max minus min VTC service (prompt tokens + 2 x output tokens) over the clients with requests."""
    c = result.columns
    if c["client"].size == 0:
        return 0.0
    weights = VTC_PROMPT_WEIGHT * c["prompt_done"] + VTC_OUTPUT_WEIGHT * c["emitted"]
    service = np.bincount(c["client"], weights=weights)
    served = service[np.unique(c["client"])]
    return float(served.max() - served.min())


@dataclass(frozen=True, slots=True)
class FairnessReward:
    """``-scale x`` the increase of the service difference over the step.

    Service is VTC's (1 per first-time prompt token, 2 per output token) per client; the service difference is
    its max minus min over the clients that have sent a request so far. Objective: ``-scale x`` the final
    service difference (:func:`service_spread`); zero for single-client workloads.
    """

    scale: float = 1.0
    name: str = field(default="fairness", init=False)

    def __post_init__(self) -> None:
        """Validate the scale."""
        _scale("FairnessReward", self.scale)

    def __call__(self, stats: StepStats) -> float:
        """``-scale x`` (spread after - spread before)."""
        return -self.scale * (stats.spread_after - stats.spread_before)

    def episode_objective(self, result: SimulationResult) -> float:
        """``-scale x`` the final service spread."""
        return -self.scale * service_spread(result)


@dataclass(frozen=True, slots=True)
class ServiceGapReward:
    """``-scale x`` the area under VTC's fairness curve, booked as the engine records its time-series samples.

    At every sample (period ``EnvConfig.sample_dt``) the windowed service difference among backlogged clients
    (:mod:`llmsched_gym.env.service_gap`: service over the last ``window_s`` seconds, max minus min over the clients
    with a request waiting or running) is charged times the sample period. Objective: ``-scale x sample_dt x`` the sum
    of those differences over the run's samples (``FairnessSummary.mean_service_diff`` times the number of samples
    and the period). Needs a multi-client workload.

    Attributes:
        window_s: The service window.
        scale: Multiplier (the default reports thousands of token-seconds).
    """

    window_s: float = 10.0
    scale: float = 1e-3
    name: str = field(default="service_gap", init=False)

    def __post_init__(self) -> None:
        """Validate the window and scale."""
        _scale("ServiceGapReward", self.scale)
        if not (np.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"ServiceGapReward: window_s={self.window_s!r} must be a positive number of seconds")

    def __call__(self, stats: StepStats) -> float:
        """``-scale x`` the step's sampled gap area."""
        return -self.scale * stats.gap_area

    def episode_objective(self, result: SimulationResult) -> float:
        """``-scale x sample_dt x`` the sum of the sampled spreads."""
        from llmsched_gym.metrics.fairness import windowed_service_diff

        dt = result.recorder.config.sample_dt or 0.0
        return -self.scale * dt * float(windowed_service_diff(result, self.window_s)[1].sum())


DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({"goodput": 1.0, "latency": 0.1})


@dataclass(frozen=True, slots=True)
class WeightedReward:
    """A weighted sum of other named rewards (each at its default scale).

    Objective: ``sum_k weight_k x objective_k``. Weights may be negative or zero but not all zero.

    Attributes:
        weights: Reward name to weight, e.g. ``{"goodput": 1.0, "latency": 0.1}``.
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    name: str = field(default="weighted", init=False)
    parts: tuple[tuple[float, Reward], ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        """Build the components."""
        if not self.weights or all(w == 0 for w in self.weights.values()):
            raise ValueError(f"WeightedReward: weights={dict(self.weights)!r} must name at least one nonzero weight")
        if "weighted" in self.weights:
            raise ValueError("WeightedReward: weights cannot include 'weighted' itself")
        parts = tuple((float(w), make_reward(name)) for name, w in self.weights.items())
        object.__setattr__(self, "parts", parts)

    def __call__(self, stats: StepStats) -> float:
        """Weighted sum of the components' rewards."""
        return sum(w * r(stats) for w, r in self.parts)

    def episode_objective(self, result: SimulationResult) -> float:
        """Weighted sum of the components' objectives."""
        return sum(w * r.episode_objective(result) for w, r in self.parts)


_REWARDS: Mapping[str, Callable[..., Reward]] = MappingProxyType(
    {
        "goodput": GoodputReward,
        "latency": LatencyReward,
        "throughput": ThroughputReward,
        "fairness": FairnessReward,
        "service_gap": ServiceGapReward,
        "weighted": WeightedReward,
    }
)


def list_rewards() -> dict[str, str]:
    """Registered reward names with the first line of their documentation."""
    return {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in _REWARDS.items()}


def make_reward(name: str, **kwargs: Any) -> Reward:
    """Build a registered reward (``goodput``, ``latency``, ``throughput``, ``fairness``, ``service_gap``, ...).

    Args:
        name: The reward name.
        **kwargs: Its parameters (``scale``; ``weights`` for ``weighted``; ``window_s`` for ``service_gap``).

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    if name not in _REWARDS:
        raise UnknownNameError(f"unknown reward {name!r}; choose one of {sorted(_REWARDS)}")
    return _REWARDS[name](**kwargs)
