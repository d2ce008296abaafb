"""Run several schedulers × rates × seeds on one workload, in parallel, with identical arrivals.

Every (rate, seed) pair draws its workload from ``numpy.random.default_rng(seed)``, so every
scheduler sees exactly the same request sequence at that point. Points run in worker processes
(``jobs``), each returning a small picklable :class:`SweepPoint`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.request import Request, SLOClass
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
        slo: SLO class given to every request, or ``None`` to keep the workload's own.
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
    slo: SLOClass | None = None

    def grid(self) -> list[tuple[str, float | None, int]]:
        """Every ``(scheduler, rate, seed)`` point, in the sweep's deterministic order."""
        return [(s, r, seed) for s in self.schedulers for r in self.rates for seed in self.seeds]

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

    stream = make_workload(spec.workload, rng=np.random.default_rng(seed), rate=rate, **spec.workload_kwargs)
    slo = spec.slo
    return stream if slo is None else (dataclasses.replace(r, slo=slo) for r in stream)


class _Throttled:
    """Forwards finished-request counts to a queue at most every ``interval`` seconds (cheap inter-process updates)."""

    def __init__(self, queue: Any, interval: float = 0.25) -> None:
        self.queue, self.interval = queue, interval
        self.pending = 0
        self.last = time.monotonic()

    def __call__(self, k: int) -> None:
        self.pending += k
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.queue.put(self.pending)
        self.pending, self.last = 0, time.monotonic()


def run_point(
    spec: SweepSpec,
    scheduler: str,
    rate: float | None,
    seed: int,
    progress: Callable[[int], None] | Any | None = None,
) -> SweepPoint:
    """Simulate one (scheduler, rate, seed) point.

    Args:
        spec: The sweep.
        scheduler: One of its schedulers.
        rate: One of its rates.
        seed: One of its seeds.
        progress: Told the number of newly finished requests as the run goes: a callable, or a queue (with ``put``)
            shared with a parent process.
    """
    from llmsched_gym.costs import make_cost_model
    from llmsched_gym.schedulers import make_scheduler
    from llmsched_gym.simulate import simulate

    sched = make_scheduler(scheduler, **spec.scheduler_params.get(scheduler, {}))
    runner = SimulatedRunner(make_cost_model(spec.cost_model, **spec.cost_kwargs))
    report = _Throttled(progress) if progress is not None and hasattr(progress, "put") else progress
    res = simulate(_workload(spec, rate, seed), sched, runner, spec.engine, seed=seed, on_progress=report)
    if isinstance(report, _Throttled):
        report.flush()
    c = res.columns
    values, weights = res.recorder.tbt_samples()
    times, service, _ = service_series(res)
    kv = np.array([s[1] for s in res.recorder.samples], dtype=np.float64) / res.total_blocks
    return SweepPoint(
        scheduler, rate, seed, summarize(res), c["first_token"] - c["arrival"], values, weights, times, kv, service
    )


Key = tuple[str, float | None, int]


def run_sweep(
    spec: SweepSpec,
    *,
    jobs: int = 2,
    on_done: Callable[[SweepPoint], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    skip: Collection[Key] = (),
) -> list[SweepPoint]:
    """Run every point of ``spec`` except ``skip`` (``jobs`` processes; 1 runs in-process), in grid order.

    Args:
        spec: The sweep.
        jobs: Worker processes.
        on_done: Called with each point as it finishes (in completion order), e.g. to stream it to a file.
        on_progress: Called with the number of requests newly finished in any run, while runs go on.
        skip: Points not to run (already done by an earlier, interrupted sweep).

    Returns:
        The points run, in grid order.
    """
    skipped = set(skip)
    grid = [key for key in spec.grid() if key not in skipped]
    points: dict[Key, SweepPoint] = {}

    def finished(key: Key, point: SweepPoint) -> None:
        points[key] = point
        if on_done is not None:
            on_done(point)

    if jobs <= 1 or len(grid) <= 1:
        for key in grid:
            finished(key, run_point(spec, *key, progress=on_progress))
    else:
        _run_parallel(spec, grid, jobs, finished, on_progress)
    return [points[key] for key in grid]


def _run_parallel(
    spec: SweepSpec,
    grid: list[Key],
    jobs: int,
    finished: Callable[[Key, SweepPoint], None],
    on_progress: Callable[[int], None] | None,
) -> None:
    with ExitStack() as stack:
        queue = stack.enter_context(multiprocessing.Manager()).Queue() if on_progress is not None else None
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(jobs, len(grid))))
        futures = {pool.submit(run_point, spec, *key, queue): key for key in grid}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                _drain(queue, on_progress)
                for fut in done:
                    finished(futures[fut], fut.result())
        except BaseException:
            for fut in pending:  # do not wait for the rest of the sweep on the way out
                fut.cancel()
            raise
        _drain(queue, on_progress)


def _drain(queue: Any, on_progress: Callable[[int], None] | None) -> None:
    if queue is None or on_progress is None:
        return
    while not queue.empty():
        on_progress(int(queue.get()))
