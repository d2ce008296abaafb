"""The live engine's own time per decision: scheduler and engine bookkeeping between iterations.

``serve_live`` runs the scheduler and the engine's bookkeeping between iterations, on the same thread, so a live
iteration gap is the executor's iteration plus this overhead; the simulator charges only the cost model. The
profiler therefore measures the overhead on its own: it serves a synthetic workload through
:func:`~llmsched_gym.executor.live.serve_live` with the same scheduler and KV pool but a runner that does no work,
and divides the serving thread's CPU time by the decisions (the second of two runs: the first also loads the
engine's compiled kernels). :func:`gpu_calibration.fitting.fit_measurement` adds it to the profile's ``fixed_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gpu_calibration.clocks import CpuTimeClock
from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork
from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.request import Request
from llmsched_gym.executor.live import serve_live
from llmsched_gym.schedulers import make_scheduler


class NullRunner:
    """A runner that does no work and reports a fixed iteration time."""

    supports_stretch = False

    def __init__(self, seconds: float = 0.005) -> None:
        self.seconds = seconds

    def run(self, work: IterationWork) -> float:
        """No work; the fixed time."""
        return self.seconds

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Not used (every iteration is a decision live)."""
        raise NotImplementedError("NullRunner stands in for a live runner: no fast-forward")

    def release(self, ids: IntArray) -> None:
        """Nothing held."""

    def forget(self, ids: IntArray) -> None:
        """Nothing held."""


@dataclass(frozen=True, slots=True)
class EngineOverhead:
    """Measured engine and scheduler time per decision.

    Attributes:
        seconds: CPU seconds per decision of the serving thread outside the runner.
        scheduler: The scheduler it was measured with.
        decisions: Decisions of the measuring run.
    """

    seconds: float
    scheduler: str
    decisions: int


def synthetic_requests(n: int, max_context: int, seed: int = 0) -> list[Request]:
    """``n`` requests arriving together-ish (0.1 s apart), prompts and outputs drawn below ``max_context``."""
    rng = np.random.default_rng(seed)
    cap = max(4, max_context // 2)
    prompts = rng.integers(1, cap, size=n)
    outputs = rng.integers(1, min(256, cap), size=n)
    return [Request(i, 0.1 * i, int(p), int(o)) for i, (p, o) in enumerate(zip(prompts, outputs, strict=True))]


def measure_engine_overhead(
    scheduler: str, num_blocks: int, block_size: int, max_context: int, *, n_requests: int = 100, seed: int = 0
) -> EngineOverhead:
    """Engine and scheduler CPU time per decision of a live run (module docstring)."""
    requests = synthetic_requests(n_requests, max_context, seed)
    config = EngineConfig(kv=KVConfig(num_blocks=num_blocks, block_size=block_size))
    per_decision = 0.0
    decisions = 0
    for _ in range(2):
        t0 = time.thread_time()
        result = serve_live(requests, make_scheduler(scheduler), NullRunner(), config, seed=seed,
                            clock=CpuTimeClock())  # type: ignore[arg-type]  # fmt: skip
        decisions = max(result.decisions, 1)
        per_decision = (time.thread_time() - t0) / decisions
    return EngineOverhead(per_decision, scheduler, decisions)
