"""Clocks for measuring the executor: wall time, or the thread's CPU time on a shared CPU.

On a GPU the engine sees wall time (``LiveRunner.run``), which is what profiles measure. On a CPU shared with other
processes, wall time also counts the time the operating system gives to those processes: a profile measured in one
load phase then mispredicts a live run in another, whatever the cost model. The CPU-time clock counts only the
work of the serving thread (torch runs single-threaded on it, ``torch.set_num_threads(1)``), so profiles and live
runs on the CPU measure the same thing whatever else runs on the machine; idle waits (sleeping until the next
arrival) advance it virtually instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Literal

from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork
from llmsched_gym.core.protocols import Runner

ClockKind = Literal["wall", "cpu"]


def resolve_clock(kind: str, device: str) -> ClockKind:
    """``auto`` means ``cpu`` on a CPU device and ``wall`` on a GPU."""
    if kind == "auto":
        return "cpu" if device == "cpu" else "wall"
    if kind not in ("wall", "cpu"):
        raise ValueError(f"clock {kind!r} must be auto, wall or cpu")
    return kind  # type: ignore[return-value]


class CpuTimeClock:
    """A :class:`~llmsched_gym.executor.live.WallClock` replacement counting the serving thread's CPU time.

    ``now()`` is the thread's CPU seconds since :meth:`start` plus the idle time it was asked to wait (waiting
    returns at once).
    """

    def __init__(self) -> None:
        self._t0: float | None = None
        self._idle = 0.0

    def start(self) -> None:
        """Set time zero to now."""
        self._t0 = time.thread_time()
        self._idle = 0.0

    def now(self) -> float:
        """CPU seconds of this thread since :meth:`start`, plus the idle waits."""
        return 0.0 if self._t0 is None else time.thread_time() - self._t0 + self._idle

    def sleep_until(self, t: float) -> None:
        """Advance to ``t`` without sleeping (idle time costs no CPU)."""
        self._idle += max(0.0, t - self.now())


class CpuTimedRunner:
    """Wraps a runner so that ``run`` returns the CPU seconds of the calling thread spent in the iteration.

    Args:
        inner: The runner (a :class:`~llmsched_gym.executor.runner.LiveRunner` on the CPU).
    """

    supports_stretch = False

    def __init__(self, inner: Runner) -> None:
        self.inner = inner

    def run(self, work: IterationWork) -> float:
        """Run the iteration; its CPU time in seconds."""
        t0 = time.thread_time()
        self.inner.run(work)
        return time.thread_time() - t0

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Not supported: every iteration runs."""
        raise NotImplementedError("CpuTimedRunner executes every iteration; disable fast-forward")

    def release(self, ids: IntArray) -> None:
        """Forward to the wrapped runner."""
        self.inner.release(ids)

    def forget(self, ids: IntArray) -> None:
        """Forward to the wrapped runner."""
        self.inner.forget(ids)
