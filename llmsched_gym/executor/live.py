"""Live serving: wall-clock replay of a trace through the engine, and per-iteration timing records.

:func:`serve_live` is the evaluation loop of :func:`llmsched_gym.simulate.simulate` with one difference:
the engine's clock follows the wall clock. Before each decision the engine clock is advanced to the
wall time elapsed since the start (so scheduling overhead counts), and an idle plan sleeps until the
next arrival (or the plan's wake-up time) instead of jumping there. Iteration durations come from the
runner's measurement, so TTFT and TBT are as measured. The same schedulers and metrics serve
simulation and live runs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork
from llmsched_gym.core.protocols import Runner
from llmsched_gym.core.request import Request

if TYPE_CHECKING:
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.protocols import Scheduler
    from llmsched_gym.simulate import SimulationResult


class WallClock:
    """Seconds since :meth:`start`, and sleeping until a time on that scale."""

    def __init__(self) -> None:
        self._t0: float | None = None

    def start(self) -> None:
        """Set time zero to now."""
        self._t0 = time.perf_counter()

    def now(self) -> float:
        """Seconds since :meth:`start` (0 before it)."""
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def sleep_until(self, t: float) -> None:
        """Block until ``now() >= t`` (returns at once if that time has passed)."""
        delay = t - self.now()
        if delay > 0:
            time.sleep(delay)


class RecordingRunner:
    """Wraps a runner and records each iteration's batch summary and measured seconds.

    Records have the fields of a calibration profile's grid points (``prefill_tokens``,
    ``prefill_context``, ``n_decodes``, ``decode_context_sum``, ``n_seqs``, ``seconds``).

    Args:
        inner: The runner that executes iterations.
    """

    supports_stretch = False

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.records: list[dict[str, Any]] = []

    def run(self, work: IterationWork) -> float:
        """Run and record one iteration."""
        seconds = self.inner.run(work)
        s = work.summary
        self.records.append(
            {
                "prefill_tokens": s.prefill_tokens.tolist(),
                "prefill_context": s.prefill_context.tolist(),
                "n_decodes": int(s.n_decodes),
                "decode_context_sum": int(s.decode_context_sum),
                "n_seqs": int(s.n_seqs),
                "seconds": float(seconds),
            }
        )
        return seconds

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Not supported: each iteration is executed and recorded."""
        raise NotImplementedError("RecordingRunner records single iterations; disable fast-forward")

    def release(self, ids: IntArray) -> None:
        """Forward to the wrapped runner."""
        self.inner.release(ids)

    def forget(self, ids: IntArray) -> None:
        """Forward to the wrapped runner."""
        self.inner.forget(ids)


def write_timings(path: str | os.PathLike[str], records: Sequence[dict[str, Any]]) -> Path:
    """Write timing records as JSON lines (one iteration per line) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return out


def scale_arrivals(requests: Iterable[Request], factor: float) -> list[Request]:
    """Requests with arrival times multiplied by ``factor`` (``< 1`` replays the trace faster)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"time scale {factor!r} must be a positive finite number")
    return [replace(r, arrival=r.arrival * factor) for r in requests]


def serve_live(
    requests: Iterable[Request],
    scheduler: Scheduler,
    runner: Runner,
    config: EngineConfig,
    *,
    seed: int | None = 0,
    clock: WallClock | None = None,
) -> SimulationResult:
    """Serve ``requests`` in wall-clock time with ``scheduler`` on a live ``runner``.

    Args:
        requests: Arrival-sorted workload (the same sequence the runner was given as ``requests``).
        scheduler: Any registered scheduler (reset with ``seed`` first).
        runner: A :class:`~llmsched_gym.executor.runner.LiveRunner` (optionally wrapped in
            :class:`RecordingRunner`).
        config: Engine configuration; fast-forward is switched off and the scheduler's requirements applied.
        seed: Scheduler seed.
        clock: Wall clock (a fresh one by default).

    Returns:
        The same result type as :func:`llmsched_gym.simulate.simulate` (times in measured seconds).
    """
    from llmsched_gym.core.engine import Engine
    from llmsched_gym.simulate import result_of

    scheduler.reset(seed=seed)
    cfg = replace(config.with_requirements(scheduler.requirements), fast_forward=False)
    engine = Engine(requests, runner, cfg)
    clock = clock or WallClock()
    clock.start()
    while not engine.done:
        engine.now = max(engine.now, clock.now())
        plan = scheduler.schedule(engine.view())
        if plan.is_idle and not plan.preempt and not plan.reject:
            target = engine.next_arrival_time
            if plan.wake_at is not None and (target is None or plan.wake_at < target):
                target = plan.wake_at
            if target is not None:
                clock.sleep_until(target)
        engine.step(plan)
    return result_of(engine, scheduler.name, clock.now())
