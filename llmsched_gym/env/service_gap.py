"""VTC's fairness metric over time: the windowed service difference among backlogged clients.

At each time-series sample (every ``sample_dt`` simulated seconds, taken by the engine) the service each client
received over the preceding ``window_s`` seconds (VTC cost: first-time prompt tokens + 2 x output tokens) is compared
among the clients that are backlogged then (a request waiting or running); the spread is max minus min (0 with fewer
than two backlogged clients). :func:`llmsched_gym.metrics.fairness.windowed_service_diff` computes it for a whole
run; :class:`GapTracker` computes it incrementally, sample by sample, for the environment's rewards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmsched_gym.core.batch import FloatArray

if TYPE_CHECKING:
    from llmsched_gym.core.recorder import Recorder


def _gap(times: FloatArray, service: list[np.ndarray], backlog: list[np.ndarray], i: int, window_s: float) -> float:
    """The windowed spread at sample ``i``."""
    j = int(np.searchsorted(times[: i + 1], times[i] - window_s, side="left"))
    now, before = service[i], service[j]
    width = now.size
    window = now - np.pad(before, (0, width - before.size))
    active = window[backlog[i][:width]]
    return float(active.max() - active.min()) if active.size >= 2 else 0.0


class GapTracker:
    """Spreads of the samples the engine recorded since the last call.

    Args:
        recorder: The engine's recorder.
        window_s: Service window (VTC's plots use 60 s).
    """

    def __init__(self, recorder: Recorder, window_s: float) -> None:
        self.rec = recorder
        self.window_s = window_s
        self.seen = 0
        self._times: list[float] = []

    def new_gaps(self) -> list[float]:
        """The spreads of the new samples (in order)."""
        rec = self.rec
        n = len(rec.client_service)
        if n == self.seen:
            return []
        self._times.extend(s[0] for s in rec.samples[self.seen : n])
        times = np.asarray(self._times)
        out = [_gap(times, rec.client_service, rec.client_backlogged, i, self.window_s) for i in range(self.seen, n)]
        self.seen = n
        return out
