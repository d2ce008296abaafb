"""Episode workloads: what each ``reset`` serves, drawn from the environment's ``np_random``.

A :class:`WorkloadMix` holds one or more :class:`WorkloadSpec` and a load-factor range. Each episode draws a
spec (uniformly), a load factor (uniformly in the range) and the workload itself from the generator it is given.
The load factor multiplies the arrival rate: synthetic and length-only workloads get ``rate * load``; timestamped
traces are time-compressed by ``load``. A spec with ``window_s`` serves a random window of a trace (loaded once
per sampler with a fixed seed; the window start is drawn per episode). SLO classes are attached per request.

Any object with the :class:`WorkloadSampler` method can replace the mix (``LLMSchedEnv(workload=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmsched_gym.core.request import Request, SLOClass

DEFAULT_SLO = SLOClass("default", ttft_s=2.0, tbt_s=0.1)


@dataclass(frozen=True, slots=True)
class Episode:
    """The requests of one episode and how they were drawn.

    Attributes:
        requests: Requests sorted by arrival, ids 0..N-1.
        name: Workload name.
        load: Load factor applied.
    """

    requests: tuple[Request, ...]
    name: str
    load: float


@runtime_checkable
class WorkloadSampler(Protocol):
    """Draws the workload of an episode."""

    def sample(
        self, rng: np.random.Generator, *, workload: int | str | None = None, load: float | None = None
    ) -> Episode:
        """An episode's workload; ``workload`` and ``load`` pin the draw (evaluation)."""
        ...


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """One workload family of the mix (any name of :func:`llmsched_gym.workloads.make_workload`).

    Attributes:
        name: Registered workload name, or the path of a trace file of any supported format (detected from its
            header; ``options=(("fmt", "azure"),)`` forces one), e.g. ``WorkloadSpec("my_trace.csv", rate=None)``.
        rate: Arrival rate (requests/s) at load 1; ``None`` keeps the workload's own rate.
        n_requests: Requests per episode (``None``: up to ``duration_s`` or the whole trace).
        duration_s: Keep arrivals before this time (after scaling).
        window_s: Serve a random ``window_s``-second window of the (whole) trace instead.
        slo: SLO classes attached to the requests (empty: keep the workload's own).
        slo_probs: Probability of each class (uniform when ``None``).
        predict_eps: Attach predicted output lengths with relative error up to this (0: exact), which the
            observation's ``predicted_remaining`` feature reads; ``None`` attaches none.
        trace_dir: Folder of the trace files.
        options: Extra ``make_workload`` options as ``(name, value)`` pairs.
    """

    name: str = "synthetic-sharegpt"
    rate: float | None = 2.0
    n_requests: int | None = 200
    duration_s: float | None = None
    window_s: float | None = None
    slo: tuple[SLOClass, ...] = (DEFAULT_SLO,)
    slo_probs: tuple[float, ...] | None = None
    predict_eps: float | None = None
    trace_dir: str | None = None
    options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        """Validate sizes and rates."""
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"WorkloadSpec: rate={self.rate!r} must be a positive number of requests/s or None")
        if self.n_requests is not None and self.n_requests < 0:
            raise ValueError(f"WorkloadSpec: n_requests={self.n_requests!r} must be >= 0 or None")
        if self.n_requests is None and self.duration_s is None and self.window_s is None and self.rate is not None:
            raise ValueError("WorkloadSpec: give n_requests, duration_s or window_s so that episodes end")
        for name in ("duration_s", "window_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"WorkloadSpec: {name}={value!r} must be a positive number of seconds or None")
        if self.predict_eps is not None and not (math.isfinite(self.predict_eps) and self.predict_eps >= 0):
            raise ValueError(f"WorkloadSpec: predict_eps={self.predict_eps!r} must be >= 0 (0.2 = within 20%) or None")
        if self.slo_probs is not None and len(self.slo_probs) != len(self.slo):
            raise ValueError(f"WorkloadSpec: slo_probs={self.slo_probs!r} needs one probability per SLO class")


class WorkloadMix:
    """The default sampler: a uniform choice of spec and a uniform load factor (see the module docstring).

    Args:
        specs: The workload families.
        load_range: ``(low, high)`` load factors, ``0 < low <= high``.
    """

    def __init__(self, specs: Sequence[WorkloadSpec] = (WorkloadSpec(),), load_range: tuple[float, float] = (0.5, 1.5)):
        self.specs = tuple(specs)
        if not self.specs:
            raise ValueError("WorkloadMix: specs is empty; pass at least one WorkloadSpec")
        low, high = (float(x) for x in load_range)
        if not (0 < low <= high and math.isfinite(high)):
            raise ValueError(f"WorkloadMix: load_range={load_range!r} must satisfy 0 < low <= high, e.g. (0.5, 1.5)")
        self.load_range = (low, high)
        self._traces: dict[int, tuple[Request, ...]] = {}

    def _index(self, workload: int | str | None, rng: np.random.Generator) -> int:
        if workload is None:
            return int(rng.integers(len(self.specs))) if len(self.specs) > 1 else 0
        if isinstance(workload, str):
            names = [s.name for s in self.specs]
            if workload not in names:
                raise ValueError(f"options['workload']={workload!r} is not one of the configured workloads {names}")
            return names.index(workload)
        if not 0 <= int(workload) < len(self.specs):
            raise ValueError(f"options['workload']={workload!r} must index the {len(self.specs)} configured specs")
        return int(workload)

    def sample(
        self, rng: np.random.Generator, *, workload: int | str | None = None, load: float | None = None
    ) -> Episode:
        """Draw (or pin) a spec and a load factor, then the requests."""
        spec = self.specs[self._index(workload, rng)]
        if load is None:
            low, high = self.load_range
            load = float(rng.uniform(low, high)) if high > low else low
        elif not (math.isfinite(load) and load > 0):
            raise ValueError(f"options['load']={load!r} must be a positive load factor")
        requests = self._window(spec, rng, load) if spec.window_s is not None else self._stream(spec, rng, load)
        from llmsched_gym.workloads import with_predictions, with_slo_classes

        if spec.slo:
            requests = list(with_slo_classes(requests, spec.slo, rng, probabilities=spec.slo_probs))
        if spec.predict_eps is not None:
            noise = rng if spec.predict_eps > 0 else None
            requests = list(with_predictions(requests, eps=spec.predict_eps, rng=noise))
        return Episode(tuple(requests), spec.name, load)

    def _stream(self, spec: WorkloadSpec, rng: np.random.Generator, load: float) -> list[Request]:
        from llmsched_gym.workloads import make_workload, scale_time

        rate = None if spec.rate is None else spec.rate * load
        stream = make_workload(
            spec.name,
            rng=rng,
            n_requests=spec.n_requests,
            rate=rate,
            duration=spec.duration_s,
            trace_dir=spec.trace_dir,
            **dict(spec.options),
        )
        if spec.rate is None and load != 1.0:
            stream = scale_time(stream, 1.0 / load)
        return list(stream)

    def _window(self, spec: WorkloadSpec, rng: np.random.Generator, load: float) -> list[Request]:
        from llmsched_gym.workloads import head, make_workload, scale_time, time_window

        key = self.specs.index(spec)
        if key not in self._traces:
            stream = make_workload(
                spec.name, rng=np.random.default_rng(0), rate=spec.rate, trace_dir=spec.trace_dir, **dict(spec.options)
            )
            self._traces[key] = tuple(stream)
        trace = self._traces[key]
        if not trace:
            return []
        assert spec.window_s is not None
        first, last = trace[0].arrival, trace[-1].arrival
        start = float(rng.uniform(first, max(first, last - spec.window_s)))
        window = scale_time(time_window(trace, start, start + spec.window_s), 1.0 / load)
        return list(head(window, spec.n_requests) if spec.n_requests is not None else window)


def episode_from_options(options: dict[str, Any], sampler: WorkloadSampler, rng: np.random.Generator) -> Episode:
    """The episode ``reset(options=...)`` asks for: ``{"requests": [...]}`` or ``{"workload": ..., "load": ...}``."""
    unknown = sorted(set(options) - {"requests", "workload", "load"})
    if unknown:
        raise ValueError(f"reset options {unknown} are not understood; use 'requests', or 'workload' and 'load'")
    if "requests" in options:
        requests = tuple(options["requests"])
        if not all(isinstance(r, Request) for r in requests):
            raise ValueError("options['requests'] must be a sequence of llmsched_gym Request objects")
        return Episode(requests, "pinned", float(options.get("load", 1.0)))
    return sampler.sample(rng, workload=options.get("workload"), load=options.get("load"))
