"""The evaluation loop: one engine, one decision maker, until every request is served."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsched_gym.core.engine import Engine, EngineConfig
from llmsched_gym.core.protocols import Runner, Scheduler
from llmsched_gym.core.recorder import Recorder
from llmsched_gym.core.request import Request
from llmsched_gym.core.table import COLUMN_NAMES


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything a finished run recorded.

    Attributes:
        scheduler: Scheduler name.
        columns: Per-request columns (engine ids in arrival order), see
            :data:`llmsched_gym.core.table.COLUMNS`.
        reject_reason: Reasons of rejected requests by engine id.
        slo_names: SLO class names by index.
        recorder: TBT samples, iteration log and time series.
        end_time: Simulated time when the last request finished.
        iterations: Iterations executed.
        decisions: Scheduler decisions (engine steps).
        wall_s: Wall-clock seconds of the loop.
        total_blocks: KV pool capacity in blocks.
    """

    scheduler: str
    columns: dict[str, np.ndarray]
    reject_reason: dict[int, str]
    slo_names: tuple[str, ...]
    recorder: Recorder
    end_time: float
    iterations: int
    decisions: int
    wall_s: float
    total_blocks: int

    @property
    def n_requests(self) -> int:
        """Requests in the run."""
        return int(self.columns["arrival"].size)


def run_engine(
    engine: Engine,
    scheduler: Scheduler,
    *,
    progress: bool = False,
    total: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Drive ``engine`` with ``scheduler`` until it is done.

    A scheduler may offer ``fused_driver(engine)``: a callable that advances the engine by one or more
    decisions in compiled code (see :meth:`llmsched_gym.core.engine.Engine.run_segment`); it is used when it
    returns one. ``progress`` shows a bar of finished requests out of ``total``; ``on_progress(k)`` is called with
    the number of requests newly finished (for progress shown elsewhere, e.g. by a sweep's parent process).
    """
    bar = _progress_bar(total) if progress else None
    make_driver = getattr(scheduler, "fused_driver", None)
    drive = make_driver(engine) if make_driver is not None else None
    step, view, schedule = engine.step, engine.view, scheduler.schedule
    watch = bar is not None or on_progress is not None
    served = 0
    while not engine.done:
        if drive is not None:
            drive()
        else:
            step(schedule(view()))
        if watch and engine.table.n - engine.unfinished > served:
            done = engine.table.n - engine.unfinished
            if bar is not None:
                bar.update(done - served)
            if on_progress is not None:
                on_progress(done - served)
            served = done
    if bar is not None:
        bar.close()


def _progress_bar(total: int | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="req", desc="simulating", mininterval=0.5)


def simulate(
    requests: Iterable[Request],
    scheduler: Scheduler,
    runner: Runner,
    config: EngineConfig,
    *,
    seed: int | None = 0,
    progress: bool = False,
    total: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Serve ``requests`` with ``scheduler`` on ``runner`` and return the recorded result.

    The scheduler's :class:`~llmsched_gym.core.protocols.EngineRequirements` are applied to
    ``config`` and the scheduler is reset with ``seed`` first. ``progress``, ``total`` and ``on_progress``
    are those of :func:`run_engine` (``total`` defaults to ``len(requests)`` for a sized collection).
    """
    scheduler.reset(seed=seed)
    if total is None and isinstance(requests, Sized):
        total = len(requests)
    engine = Engine(requests, runner, config.with_requirements(scheduler.requirements))
    t0 = time.perf_counter()
    run_engine(engine, scheduler, progress=progress, total=total, on_progress=on_progress)
    wall = time.perf_counter() - t0
    return result_of(engine, scheduler.name, wall)


def result_of(engine: Engine, scheduler_name: str, wall_s: float) -> SimulationResult:
    """Snapshot a (finished) engine into a :class:`SimulationResult`."""
    table = engine.table
    columns = {name: table.column(name).copy() for name in COLUMN_NAMES}
    return SimulationResult(
        scheduler=scheduler_name,
        columns=columns,
        reject_reason=dict(table.reject_reason),
        slo_names=tuple(table.slo_names),
        recorder=engine.recorder,
        end_time=engine.now,
        iterations=engine.iterations,
        decisions=engine.decisions,
        wall_s=wall_s,
        total_blocks=engine.pool.total,
    )
