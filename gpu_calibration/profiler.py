"""Time designed batches on the live executor: warm-up, repeats, randomised order, medians, noise flags.

Each batch is set up on the :class:`~llmsched_gym.executor.runner.LiveRunner` without running its cached prefix
(:meth:`~llmsched_gym.executor.runner.LiveRunner.prime`), then run ``warmup`` times untimed and ``repeats`` times
timed through ``LiveRunner.run`` (the time the live engine sees: host preparation, forward, sampling, device
synchronisation; monotonic clock, with the forward also timed by CUDA events on a GPU). Every round visits all
batches in a fresh random order, so slow phases of a shared machine spread over all points instead of hitting a
few. A batch whose repeats spread by more than ``noisy_spread`` (``(p90 - p10) / median``) is measured in extra
rounds; if it stays noisy it is flagged ``"noisy"`` (kept: its median is still the best estimate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gpu_calibration.design import DesignedBatch
from llmsched_gym.core.batch import IterationWork
from llmsched_gym.costs.profile_fit import MeasuredPoint
from llmsched_gym.executor.driver import make_work
from llmsched_gym.executor.runner import LiveRunner


@dataclass(frozen=True, slots=True)
class ProfilerConfig:
    """How batches are timed.

    Attributes:
        warmup: Untimed runs of a batch at each visit.
        repeats: Timed runs of a batch at each visit.
        rounds: Visits of every batch, each round in a new random order.
        noisy_spread: Relative spread ``(p90 - p10) / median`` of a batch's timings above which it is noisy.
        extra_rounds: Further visits of the noisy batches.
        seed: Seed of the visiting order.
        time_budget_s: Stop starting new rounds (after the first) once this much time has passed (None: no limit).
        clock: ``"wall"`` (what ``LiveRunner.run`` returns) or ``"cpu"`` (the thread's CPU time of each run, for a
            CPU shared with other processes; :mod:`gpu_calibration.clocks`).
    """

    warmup: int = 1
    repeats: int = 3
    rounds: int = 2
    noisy_spread: float = 0.2
    extra_rounds: int = 1
    seed: int = 0
    time_budget_s: float | None = None
    clock: str = "wall"

    def __post_init__(self) -> None:
        """Check ranges."""
        if self.warmup < 0 or self.repeats < 1 or self.rounds < 1 or self.extra_rounds < 0:
            raise ValueError(
                f"ProfilerConfig: warmup={self.warmup} >= 0, repeats={self.repeats} >= 1, rounds={self.rounds} >= 1"
                f" and extra_rounds={self.extra_rounds} >= 0 are required"
            )
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"ProfilerConfig: clock={self.clock!r} must be 'wall' or 'cpu'")
        if not self.noisy_spread > 0:
            raise ValueError(f"ProfilerConfig: noisy_spread={self.noisy_spread} must be > 0")


@dataclass(frozen=True, slots=True)
class Timings:
    """Every timed run of every batch.

    Attributes:
        batches: The batches, in design order.
        seconds: Per batch, the timed durations (``LiveRunner.run``).
        forward: Per batch, the forward's time of the same runs (device time on a GPU).
        elapsed_s: Wall time of the whole profiling.
    """

    batches: tuple[DesignedBatch, ...]
    seconds: tuple[tuple[float, ...], ...]
    forward: tuple[tuple[float, ...], ...]
    elapsed_s: float

    def points(self, noisy_spread: float) -> list[MeasuredPoint]:
        """One point per batch: the median, the relative spread, the repeats, the role and the noise flag."""
        out = []
        for batch, times in zip(self.batches, self.seconds, strict=True):
            median = float(np.median(times))
            spread = relative_spread(times)
            flag = "noisy" if spread > noisy_spread else None
            out.append(MeasuredPoint.from_summary(batch.summary(), median, role=batch.role, flag=flag,
                                                  spread=round(spread, 4), repeats=len(times)))  # fmt: skip
        return out

    def forward_share(self) -> float:
        """Median over batches of the forward's share of the iteration time (the rest is host work)."""
        shares = [np.median(f) / np.median(s) for f, s in zip(self.forward, self.seconds, strict=True) if s]
        return float(np.median(shares)) if shares else float("nan")


def relative_spread(times: Sequence[float]) -> float:
    """``(p90 - p10) / median`` of ``times``."""
    t = np.asarray(times, dtype=np.float64)
    p10, p50, p90 = np.quantile(t, [0.1, 0.5, 0.9])
    return float((p90 - p10) / p50) if p50 > 0 else 0.0


class _Visitor:
    """Sets a batch up on the runner under fresh request ids, times it, and tears it down."""

    def __init__(self, runner: LiveRunner, config: ProfilerConfig) -> None:
        self.runner = runner
        self.config = config
        self.next_id = 1 << 40  # far from any engine id

    def _work(self, batch: DesignedBatch) -> tuple[IterationWork, dict[int, int], dict[int, int]]:
        rows = [(1, d, True) for d in batch.decodes] + [(c, x, False) for c, x in batch.chunks]
        ids = list(range(self.next_id, self.next_id + len(rows)))
        self.next_id += len(rows)
        known = {rid: n + x for rid, (n, x, _) in zip(ids, rows, strict=True)}
        cached = {rid: x for rid, (_, x, _) in zip(ids, rows, strict=True)}
        work = make_work(ids, [n for n, _, _ in rows], [x for _, x, _ in rows], [d for _, _, d in rows],
                         [True] * len(rows))  # fmt: skip
        return work, known, cached

    def visit(self, batch: DesignedBatch) -> tuple[list[float], list[float]]:
        """Warm-up and timed runs of ``batch``: (iteration seconds, forward seconds)."""
        work, known, cached = self._work(batch)
        self.runner.prime(known, cached)
        try:
            for _ in range(self.config.warmup):
                self.runner.run(work)
            seconds, forward = [], []
            for _ in range(self.config.repeats):
                cpu0 = time.thread_time()
                wall = self.runner.run(work)
                seconds.append(time.thread_time() - cpu0 if self.config.clock == "cpu" else wall)
                timing = self.runner.last_timing
                forward.append(timing.forward_s if timing is not None else float("nan"))
        finally:
            self.runner.forget(work.ids)
        return seconds, forward


def profile_batches(
    runner: LiveRunner,
    batches: Sequence[DesignedBatch],
    config: ProfilerConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Timings:
    """Time every batch (module docstring).

    Args:
        runner: A live runner built with ``record_timing=True`` (``warmup()`` already called on a GPU).
        batches: The design.
        config: Timing settings.
        progress: Called with (visits done, visits planned) after each visit.

    Returns:
        All timings, in design order.
    """
    cfg = config or ProfilerConfig()
    rng = np.random.default_rng(cfg.seed)
    visitor = _Visitor(runner, cfg)
    seconds: list[list[float]] = [[] for _ in batches]
    forward: list[list[float]] = [[] for _ in batches]
    t0 = time.perf_counter()
    todo = list(range(len(batches)))
    planned = len(batches) * cfg.rounds
    done = 0
    for r in range(cfg.rounds + cfg.extra_rounds):
        if r >= cfg.rounds:
            todo = [i for i in range(len(batches)) if relative_spread(seconds[i]) > cfg.noisy_spread]
            planned += len(todo)
        over = cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s
        if not todo or (r > 0 and over):
            break
        for i in rng.permutation(todo).tolist():
            s, f = visitor.visit(batches[i])
            seconds[i] += s
            forward[i] += f
            done += 1
            if progress is not None:
                progress(done, planned)
    elapsed = time.perf_counter() - t0
    return Timings(tuple(batches), tuple(map(tuple, seconds)), tuple(map(tuple, forward)), elapsed)
