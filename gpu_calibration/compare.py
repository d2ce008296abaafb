"""Sim vs live: the same trace and scheduler on the live executor and in simulation with the fitted profile.

The live run is :func:`~llmsched_gym.executor.live.serve_live` (wall-clock replay, every iteration executed and
recorded); the simulated run is :func:`~llmsched_gym.simulate.simulate` with a
:class:`~llmsched_gym.costs.profile.ProfileCostModel`. Both use the same requests, scheduler, seed, KV pool and
block size. Reported side by side: TTFT and TBT p50 / p99, end-to-end p50, throughput and makespan, with the
relative difference sim / live - 1; and the per-iteration error of the profile on every live iteration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpu_calibration.clocks import CpuTimeClock, CpuTimedRunner
from gpu_calibration.fitting import executor_fit
from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.costs.profile import Profile, ProfileCostModel
from llmsched_gym.costs.profile_fit import MeasuredPoint
from llmsched_gym.executor.live import RecordingRunner, serve_live
from llmsched_gym.executor.runner import LiveRunner
from llmsched_gym.metrics.summary import RunSummary, summarize
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import simulate

METRICS = (
    ("TTFT p50", "ttft", "p50"),
    ("TTFT p99", "ttft", "p99"),
    ("TBT p50", "tbt", "p50"),
    ("TBT p99", "tbt", "p99"),
    ("E2E p50", "e2e", "p50"),
)
GOAL_METRICS = ("TTFT p50", "TTFT p99", "TBT p50", "TBT p99")
"""The metrics of the issue's goal (within 10 % on the CPU executor, 5 % on a GPU)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One metric: the median of the live runs, their range, the simulated value and the relative difference."""

    metric: str
    live: float
    live_min: float
    live_max: float
    sim: float

    @property
    def rel_diff(self) -> float:
        """``sim / live - 1`` (live: the median of the live runs)."""
        return self.sim / self.live - 1.0

    @property
    def within_live_range(self) -> bool:
        """Whether the simulated value lies within the range of the live runs."""
        return self.live_min <= self.sim <= self.live_max


def _value(summary: RunSummary, group: str, key: str | None) -> float:
    return float(getattr(summary, group)[key] if key else getattr(summary, group))


@dataclass(frozen=True, slots=True)
class Comparison:
    """Live and simulated results of one trace.

    Attributes:
        live: Summaries of the live runs (the same trace served once or more: live runs vary, simulation does not).
        sim: Summary of the simulated run.
        iteration_errors: Signed relative error of the profile (without the engine overhead it includes) on each
            live iteration's executor time (predicted / measured - 1), over every live run.
        live_iterations: The live iterations as measured points (for plots and refits).
    """

    live: tuple[RunSummary, ...]
    sim: RunSummary
    iteration_errors: np.ndarray
    live_iterations: tuple[MeasuredPoint, ...]

    def rows(self) -> list[Row]:
        """One :class:`Row` per metric (latency percentiles, then throughput and makespan)."""
        specs: list[tuple[str, str, str | None]] = [(label, group, key) for label, group, key in METRICS]
        specs += [("output tok/s", "output_tok_per_s", None), ("makespan s", "makespan_s", None)]
        out = []
        for label, group, key in specs:
            live = [_value(s, group, key) for s in self.live]
            out.append(Row(label, float(np.median(live)), min(live), max(live), _value(self.sim, group, key)))
        return out

    def worst_goal_error(self) -> float:
        """Largest absolute relative difference over the goal metrics (TTFT and TBT p50 / p99)."""
        return max(abs(r.rel_diff) for r in self.rows() if r.metric in GOAL_METRICS)

    def table(self) -> str:
        """Markdown table of :meth:`rows` and the per-iteration error."""
        n = len(self.live)
        lines = [f"| metric | live (median of {n}) | live range | sim | sim / live - 1 |", "|---|---|---|---|---|"]
        for r in self.rows():
            inside = " (in range)" if n > 1 and r.within_live_range else ""
            lines.append(
                f"| {r.metric} | {r.live:.4g} | {r.live_min:.4g} – {r.live_max:.4g} | {r.sim:.4g} | "
                f"{r.rel_diff:+.1%}{inside} |"
            )
        a = np.abs(self.iteration_errors)
        lines.append(
            f"| per-iteration error (profile vs live executor, {a.size} iterations) | | | | median "
            f"{np.median(a):.1%}, p90 {np.quantile(a, 0.9):.1%} |"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready results."""
        a = np.abs(self.iteration_errors)
        rows = [
            {"metric": r.metric, "live": r.live, "live_min": r.live_min, "live_max": r.live_max, "sim": r.sim,
             "rel_diff": r.rel_diff, "within_live_range": r.within_live_range}
            for r in self.rows()
        ]  # fmt: skip
        return {
            "metrics": rows,
            "worst_goal_error": self.worst_goal_error(),
            "iterations": {
                "n": int(a.size),
                "median_abs_error": float(np.median(a)),
                "p90_abs_error": float(np.quantile(a, 0.9)),
            },
            "live": [s.as_dict() for s in self.live],
            "sim": self.sim.as_dict(),
        }


def _points(records: Sequence[dict[str, Any]]) -> tuple[MeasuredPoint, ...]:
    return tuple(
        MeasuredPoint(
            tuple(r["prefill_tokens"]),
            tuple(r["prefill_context"]),
            r["n_decodes"],
            r["decode_context_sum"],
            r["n_seqs"],
            r["seconds"],
            role="holdout",
        )
        for r in records
    )


def compare_runs(
    requests: Sequence[Request],
    runner: LiveRunner,
    profile: Profile,
    *,
    scheduler: str = "sarathi",
    scheduler_params: dict[str, Any] | None = None,
    seed: int = 0,
    clock: str = "wall",
    live_runs: int = 1,
) -> Comparison:
    """Serve ``requests`` live on ``runner`` and simulate them with ``profile`` (module docstring).

    Args:
        requests: Arrival-sorted requests (each must fit the model's context).
        runner: The live runner (the executor the profile was measured on).
        profile: The fitted profile.
        scheduler: Registered scheduler name.
        scheduler_params: Its constructor overrides.
        seed: Scheduler seed.
        clock: ``"wall"``, or ``"cpu"`` to time the live run in the serving thread's CPU time (the clock the
            profile must have been measured with; :mod:`gpu_calibration.clocks`).
        live_runs: How many times to serve the trace live (the live metrics are the medians of the runs).
    """
    params = scheduler_params or {}
    kv = KVConfig(num_blocks=runner.config.num_blocks, block_size=runner.config.block_size)
    cost = ProfileCostModel(profile)
    # simulate first: it also loads the engine's compiled kernels, a one-time cost the live clock would count
    sim = simulate(requests, make_scheduler(scheduler, **params), SimulatedRunner(cost), EngineConfig(kv=kv), seed=seed)
    cpu = clock == "cpu"
    lives, records = [], []
    for _ in range(live_runs):
        runner.add_requests({i: r.prompt_len for i, r in enumerate(requests)})  # engine ids; histories were forgotten
        recording = RecordingRunner(CpuTimedRunner(runner) if cpu else runner)
        live = serve_live(requests, make_scheduler(scheduler, **params), recording, EngineConfig(kv=kv), seed=seed,
                          clock=CpuTimeClock() if cpu else None)  # type: ignore[arg-type]  # fmt: skip
        lives.append(summarize(live))
        records += recording.records
    points = _points(records)
    executor = ProfileCostModel(executor_fit(profile))
    errors = np.array([executor.iteration_time(p.summary()) / p.seconds - 1.0 for p in points])
    return Comparison(tuple(lives), summarize(sim), errors, points)
