"""Run-time recording that per-request columns cannot hold: TBT samples, iteration log, time series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.batch import FloatArray


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """What to record beyond per-request columns.

    Attributes:
        iterations: Keep a per-stretch iteration log (start, duration, iterations, prefill tokens,
            decodes, KV blocks used).
        sample_dt: Period in simulated seconds of the time series (KV use, queue lengths, per-client
            service); ``None`` disables it. A sample is taken at the first decision point at or after
            each multiple of ``sample_dt`` and stamped with that point's time.
        token_times: Keep every emitted token's time per request (memory heavy; for tests, the env
            and detailed analysis).
    """

    iterations: bool = True
    sample_dt: float | None = 1.0
    token_times: bool = False

    def __post_init__(self) -> None:
        """Validate the sampling period."""
        if self.sample_dt is not None and not self.sample_dt > 0:
            raise ValueError(f"RecorderConfig: sample_dt={self.sample_dt} must be > 0 or None")


class Recorder:
    """Accumulates TBT samples (value arrays with a weight each), the iteration log and samples."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self._tbt: list[tuple[FloatArray, FloatArray]] = []
        self.iterations: list[tuple[float, float, int, int, int, int]] = []
        self.samples: list[tuple[float, int, int, int]] = []
        self.client_service: list[np.ndarray] = []
        self.client_backlogged: list[np.ndarray] = []
        self.token_times: dict[int, list[float]] = {}
        self.next_sample = 0.0 if config.sample_dt is not None else float("inf")

    def add_tbt(self, values: FloatArray, weights: FloatArray) -> None:
        """Record TBT gaps, each counted ``weights[i]`` times (two aligned arrays)."""
        if values.size:
            self._tbt.append((values, weights))

    def tbt_samples(self) -> tuple[FloatArray, FloatArray]:
        """All recorded gaps and their weights, as two aligned arrays."""
        if not self._tbt:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([v for v, _ in self._tbt]), np.concatenate([w for _, w in self._tbt])
