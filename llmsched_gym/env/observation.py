"""Observation encoders: a fixed-size float32 vector of global features plus ``K`` request slots.

Layout: ``[global features (G)] + [slot 0 features (F)] + ... + [slot K-1 features (F)]``; empty slots are all
zero. Slots hold the requests :func:`~llmsched_gym.env.context.select_slots` picks (running first, oldest
admission first, then waiting in arrival order). Every feature is squashed into declared bounds:
``x / (x + s)`` for counts and times (``s`` a scale from :class:`~llmsched_gym.env.config.ObservationConfig`),
``x / (|x| + s)`` for signed slacks, ``log1p(x) / log1p(len_scale)`` (clipped) for token counts. The tables
:data:`GLOBAL_FEATURES` and :data:`SLOT_FEATURES` name each entry with its bounds; ``docs/env.md`` explains them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

from llmsched_gym.env._kernels import (
    P_INV_LEN,
    P_ITER,
    P_LEN,
    P_RATE,
    P_SERVICE,
    P_SLOTS,
    P_TBT,
    P_TIME,
    P_WINDOW,
    observe,
)
from llmsched_gym.env.config import ObservationConfig
from llmsched_gym.errors import UnknownNameError

if TYPE_CHECKING:
    from llmsched_gym.core.batch import FloatArray
    from llmsched_gym.env.context import DecisionContext


class ServiceStats(Protocol):
    """Episode totals the observation reads besides the view (the env's tracker, or ones computed from a view)."""

    @property
    def attainment(self) -> float:
        """Finished requests meeting their SLOs / finished (1 before any)."""
        ...

    @property
    def service(self) -> FloatArray:
        """Per-client VTC service, indexed by client."""
        ...

    def service_mean(self) -> float:
        """Mean service over the clients seen."""
        ...


GLOBAL_FEATURES: tuple[tuple[str, float, float], ...] = (
    ("waiting_requests", 0.0, 1.0),  # n / (n + K)
    ("running_requests", 0.0, 1.0),  # n / (n + K)
    ("preempted_waiting", 0.0, 1.0),  # waiting requests preempted before, n / (n + K)
    ("kv_utilisation", 0.0, 1.0),  # used / total blocks
    ("kv_free_blocks", 0.0, 1.0),  # log1p(free) / log1p(total)
    ("pending_prefill_tokens", 0.0, 1.0),  # x / (x + len_scale), waiting and partial prefills
    ("running_decodes", 0.0, 1.0),  # n / (n + K)
    ("arrival_rate", 0.0, 1.0),  # arrivals in the last rate_window_s per second, r / (r + rate_scale)
    ("iteration_time", 0.0, 1.0),  # last iteration, t / (t + iter_scale_s)
    ("slo_attainment", 0.0, 1.0),  # finished requests meeting their SLOs / finished (1 before any)
    ("arrivals_done", 0.0, 1.0),  # 1 once the whole workload has arrived
    ("outside_slots", 0.0, 1.0),  # waiting + running requests not shown, n / (n + K)
)

SLOT_FEATURES: tuple[tuple[str, float, float], ...] = (
    ("present", 0.0, 1.0),  # 1 if the slot holds a request
    ("waiting", 0.0, 1.0),  # waiting, never preempted
    ("running", 0.0, 1.0),  # holds KV
    ("preempted", 0.0, 1.0),  # waiting after a preemption
    ("decoding", 0.0, 1.0),  # running with exactly one pending decode token
    ("prompt_len", 0.0, 1.0),  # log-scaled tokens
    ("remaining_prefill", 0.0, 1.0),  # log-scaled pending prefill tokens (0 while decoding)
    ("generated", 0.0, 1.0),  # log-scaled emitted tokens
    ("time_waited", 0.0, 1.0),  # now - arrival, squashed by time_scale_s
    ("ttft_slack", -1.0, 1.0),  # TTFT target minus (actual or elapsed) TTFT, squashed; 1 without target
    ("tbt_slack", -1.0, 1.0),  # time left before the next token misses its TBT target, squashed; target if none yet
    ("client_service", -1.0, 1.0),  # client's VTC service minus the mean over clients, / (|d| + service_scale)
    ("predicted_remaining", 0.0, 1.0),  # log-scaled predicted output minus emitted (0 without prediction)
    ("blocks_held", 0.0, 1.0),  # log1p(blocks) / log1p(total blocks)
    ("tbt_target", 0.0, 1.0),  # TBT target squashed by tbt_scale_s (1 without target)
)


@runtime_checkable
class ObservationEncoder(Protocol):
    """Turns the decision context into an observation of :attr:`space`."""

    @property
    def name(self) -> str:
        """The encoder's name."""
        ...

    @property
    def space(self) -> spaces.Box:
        """The observation space."""
        ...

    def encode(self, ctx: DecisionContext, stats: ServiceStats) -> np.ndarray:
        """A fresh float32 observation inside :attr:`space`."""
        ...

    def feature_names(self) -> list[str]:
        """Name of every observation entry."""
        ...


class SlotObservation:
    """Global features plus ``K`` request slots (``"slots"``), or global features only (``"global"``).

    The whole vector is written by one compiled kernel (:func:`llmsched_gym.env._kernels.observe`) into a
    preallocated buffer, then copied out.

    Args:
        slots: Number of slots ``K`` (also the scale of request counts).
        config: Feature scales.
        include_slots: Whether to append the slot features.
    """

    def __init__(self, slots: int, config: ObservationConfig, include_slots: bool = True) -> None:
        self.name = "slots" if include_slots else "global"
        self.k = slots
        self.include_slots = include_slots
        g, f = len(GLOBAL_FEATURES), len(SLOT_FEATURES)
        self.size = g + (slots * f if include_slots else 0)
        low = np.array([b[1] for b in GLOBAL_FEATURES] + [b[1] for b in SLOT_FEATURES] * slots, dtype=np.float32)
        high = np.array([b[2] for b in GLOBAL_FEATURES] + [b[2] for b in SLOT_FEATURES] * slots, dtype=np.float32)
        self.space = spaces.Box(low[: self.size], high[: self.size], dtype=np.float32)
        self._out = np.zeros(self.size, dtype=np.float32)
        params = np.zeros(9, dtype=np.float64)
        params[P_SLOTS], params[P_TIME], params[P_TBT] = slots, config.time_scale_s, config.tbt_scale_s
        params[P_INV_LEN], params[P_LEN] = 1.0 / math.log1p(config.len_scale), config.len_scale
        params[P_WINDOW], params[P_RATE] = config.rate_window_s, config.rate_scale
        params[P_ITER], params[P_SERVICE] = config.iter_scale_s, config.service_scale
        self._params = params

    def feature_names(self) -> list[str]:
        """Name of every observation entry (``slot<i>.<feature>`` for slot features)."""
        names = [name for name, _, _ in GLOBAL_FEATURES]
        if self.include_slots:
            names += [f"slot{i}.{name}" for i in range(self.k) for name, _, _ in SLOT_FEATURES]
        return names

    def encode(self, ctx: DecisionContext, stats: ServiceStats) -> np.ndarray:
        """The observation of the current decision (a new array), read from the context's view and ``stats``."""
        v = ctx.view
        observe(
            self._out, self.include_slots, ctx.slots, ctx.n_run_slots, ctx.running, ctx.waiting, v.now, v.n_arrived,
            v.free_blocks, v.total_blocks, v.last_iteration_time, stats.attainment, v.next_arrival is None,
            stats.service_mean(), self._params, stats.service, v.prompt, v.generated, v.computed, v.emitted,
            v.arrival, v.first_token, v.last_token, v.slo_ttft, v.slo_tbt, v.preemptions, v.blocks, v.predicted,
            v.client,
        )  # fmt: skip
        return self._out.copy()


_ENCODERS: Mapping[str, Callable[[int, ObservationConfig], ObservationEncoder]] = MappingProxyType(
    {
        "slots": lambda k, cfg: SlotObservation(k, cfg, include_slots=True),
        "global": lambda k, cfg: SlotObservation(k, cfg, include_slots=False),
    }
)


def list_observations() -> list[str]:
    """Registered observation encoder names."""
    return sorted(_ENCODERS)


def make_observation(name: str, slots: int, config: ObservationConfig) -> ObservationEncoder:
    """Build a registered observation encoder (``"slots"``, the default, or ``"global"``).

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    if name not in _ENCODERS:
        raise UnknownNameError(f"unknown observation {name!r}; choose one of {list_observations()}")
    return _ENCODERS[name](slots, config)
