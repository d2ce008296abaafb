"""Run several schedulers × rates × seeds on one workload, in parallel, with identical arrivals.

Every (rate, seed) pair draws its workload from ``numpy.random.default_rng(seed)``, so every
scheduler sees exactly the same request sequence at that point. Points run in worker processes
(``jobs``), each returning a small picklable :class:`SweepPoint`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.metrics.fairness import service_series
from llmsched_gym.metrics.summary import RunSummary, summarize


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """What to run.

    Attributes:
        schedulers: Registered scheduler names.
        rates: Arrival rates (requests/s); ``None`` entries keep the workload's own timing.
        seeds: Workload seeds (each a replication).
        workload: Registered workload name.
        workload_kwargs: Extra arguments of ``make_workload`` (``n_requests``, ``trace_dir``, ...).
        cost_model: Cost-model spec for ``make_cost_model``.
        cost_kwargs: Its keyword arguments (``gpu``, ``model``, ``tp``, ...).
        engine: Engine configuration (the schedulers' requirements are applied per run).
        scheduler_params: Per-scheduler constructor overrides.
    """

    schedulers: tuple[str, ...]
    rates: tuple[float | None, ...]
    seeds: tuple[int, ...]
    workload: str
    workload_kwargs: dict[str, Any]
    cost_model: str
    cost_kwargs: dict[str, Any]
    engine: EngineConfig
    scheduler_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the grid."""
        if not self.schedulers:
            raise ValueError("SweepSpec: schedulers is empty; name at least one registered scheduler")
        if not self.rates or not self.seeds:
            raise ValueError("SweepSpec: rates and seeds need at least one value each")
        for rate in self.rates:
            if rate is not None and not rate > 0:
                raise ValueError(f"SweepSpec: rate {rate} must be > 0")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One run of a sweep, reduced to what tables and plots need."""

    scheduler: str
    rate: float | None
    seed: int
    summary: RunSummary
    ttft: np.ndarray
    tbt_values: np.ndarray
    tbt_weights: np.ndarray
    sample_times: np.ndarray
    kv_used: np.ndarray
    client_service: np.ndarray


def _workload(spec: SweepSpec, rate: float | None, seed: int) -> Iterator[Request]:
    from llmsched_gym.workloads import make_workload

    return make_workload(spec.workload, rng=np.random.default_rng(seed), rate=rate, **spec.workload_kwargs)


def run_point(spec: SweepSpec, scheduler: str, rate: float | None, seed: int) -> SweepPoint:
    """Simulate one (scheduler, rate, seed) point."""
    from llmsched_gym.costs import make_cost_model
    from llmsched_gym.schedulers import make_scheduler
    from llmsched_gym.simulate import simulate

    sched = make_scheduler(scheduler, **spec.scheduler_params.get(scheduler, {}))
    runner = SimulatedRunner(make_cost_model(spec.cost_model, **spec.cost_kwargs))
    res = simulate(_workload(spec, rate, seed), sched, runner, spec.engine, seed=seed)
    c = res.columns
    values, weights = res.recorder.tbt_samples()
    times, service, _ = service_series(res)
    kv = np.array([s[1] for s in res.recorder.samples], dtype=np.float64) / res.total_blocks
    return SweepPoint(
        scheduler, rate, seed, summarize(res), c["first_token"] - c["arrival"], values, weights, times, kv, service
    )


def run_sweep(
    spec: SweepSpec, *, jobs: int = 2, on_done: Callable[[SweepPoint], None] | None = None
) -> list[SweepPoint]:
    """Run every point of ``spec`` (``jobs`` processes; 1 runs in-process) in a deterministic order."""
    grid = [(s, r, seed) for s in spec.schedulers for r in spec.rates for seed in spec.seeds]
    points: dict[tuple[str, float | None, int], SweepPoint] = {}
    if jobs <= 1:
        for key in grid:
            points[key] = run_point(spec, *key)
            if on_done is not None:
                on_done(points[key])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_point, spec, *key): key for key in grid}
            for fut in as_completed(futures):
                points[futures[fut]] = fut.result()
                if on_done is not None:
                    on_done(points[futures[fut]])
    return [points[key] for key in grid]
