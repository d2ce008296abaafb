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
class Comparison:
    """Live and simulated results of one trace.

    Attributes:
        live: Summary of the live run.
        sim: Summary of the simulated run.
        iteration_errors: Signed relative error of the profile on each live iteration (predicted / measured - 1).
        live_iterations: The live iterations as measured points (for plots and refits).
    """

    live: RunSummary
    sim: RunSummary
    iteration_errors: np.ndarray
    live_iterations: tuple[MeasuredPoint, ...]

    def rows(self) -> list[tuple[str, float, float, float]]:
        """``(metric, live, sim, sim / live - 1)`` for each metric, then throughput and makespan."""
        out = []
        for label, group, key in METRICS:
            live, sim = getattr(self.live, group)[key], getattr(self.sim, group)[key]
            out.append((label, live, sim, sim / live - 1.0))
        for label, name in (("output tok/s", "output_tok_per_s"), ("makespan s", "makespan_s")):
            live, sim = getattr(self.live, name), getattr(self.sim, name)
            out.append((label, live, sim, sim / live - 1.0))
        return out

    def worst_goal_error(self) -> float:
        """Largest absolute relative difference over the goal metrics (TTFT and TBT p50 / p99)."""
        return max(abs(err) for label, _, _, err in self.rows() if label in GOAL_METRICS)

    def table(self) -> str:
        """Markdown table of :meth:`rows` and the per-iteration error."""
        lines = ["| metric | live | sim | sim / live - 1 |", "|---|---|---|---|"]
        for label, live, sim, err in self.rows():
            lines.append(f"| {label} | {live:.4g} | {sim:.4g} | {err:+.1%} |")
        a = np.abs(self.iteration_errors)
        lines.append(
            f"| per-iteration error (profile vs live, {a.size} iterations) | | | median {np.median(a):.1%}, "
            f"p90 {np.quantile(a, 0.9):.1%} |"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready results."""
        a = np.abs(self.iteration_errors)
        return {
            "metrics": [{"metric": m, "live": lv, "sim": sv, "rel_diff": e} for m, lv, sv, e in self.rows()],
            "worst_goal_error": self.worst_goal_error(),
            "iterations": {
                "n": int(a.size),
                "median_abs_error": float(np.median(a)),
                "p90_abs_error": float(np.quantile(a, 0.9)),
            },
            "live": self.live.as_dict(),
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
    """
    params = scheduler_params or {}
    kv = KVConfig(num_blocks=runner.config.num_blocks, block_size=runner.config.block_size)
    runner.add_requests(requests)
    cpu = clock == "cpu"
    recording = RecordingRunner(CpuTimedRunner(runner) if cpu else runner)
    live = serve_live(requests, make_scheduler(scheduler, **params), recording, EngineConfig(kv=kv), seed=seed,
                      clock=CpuTimeClock() if cpu else None)  # type: ignore[arg-type]  # fmt: skip
    cost = ProfileCostModel(profile)
    sim = simulate(requests, make_scheduler(scheduler, **params), SimulatedRunner(cost), EngineConfig(kv=kv), seed=seed)
    points = _points(recording.records)
    errors = np.array([cost.iteration_time(p.summary()) / p.seconds - 1.0 for p in points])
    return Comparison(summarize(live), summarize(sim), errors, points)
