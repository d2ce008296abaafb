"""Output-length predictors shared by the schedulers that need one (VTC-predict/oracle, MC-SF, ...).

A predictor maps a request (seen through the engine view) to a predicted number of output tokens
and may learn from completed requests. All randomness comes from a generator seeded in ``reset``.

* ``oracle``: the true output length (clairvoyant).
* ``noisy``: the true length times a factor drawn uniformly from ``[1 - eps, 1 + eps]``, rounded,
  at least 1; drawn once per request (MC-SF §12.2 robustness runs, VTC App. B.3 ±50 %).
* ``max_tokens``: the request's ``max_tokens`` bound (falls back to ``default``).
* ``moving_average``: per-client running mean of observed lengths: 0 until the client's first
  completion, then its first length, then ``(4·pred + actual) / 5`` (VTC Alg. 3, spec §9.5).
* ``workload``: the request's own ``predicted_output_len`` field from the workload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.view import EngineView
from llmsched_gym.errors import UnknownNameError

PREDICTORS = ("oracle", "noisy", "max_tokens", "moving_average", "workload")


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """Which predictor, and its parameters.

    Attributes:
        kind: One of :data:`PREDICTORS`.
        eps: Relative noise half-width for ``noisy`` (e.g. 0.2, 0.5, 0.8).
        default: Prediction when nothing better is known (``max_tokens`` without a bound,
            ``workload`` without a field).
    """

    kind: str = "oracle"
    eps: float = 0.5
    default: int = 256

    def __post_init__(self) -> None:
        """Validate the kind and parameters."""
        if self.kind not in PREDICTORS:
            raise UnknownNameError(f"unknown predictor {self.kind!r}; known: {', '.join(PREDICTORS)}")
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"PredictorConfig: eps={self.eps} must be in [0, 1)")
        if self.default < 1:
            raise ValueError(f"PredictorConfig: default={self.default} must be >= 1")


class OutputPredictor:
    """Predicts output lengths; call :meth:`observe` with finished requests to learn.

    Args:
        config: Predictor kind and parameters.
    """

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self._rng = np.random.default_rng(0)
        self._cache: dict[int, int] = {}
        self._client_mean: dict[int, float] = {}

    def reset(self, seed: int | None) -> None:
        """Forget everything and reseed the noise generator."""
        self._rng = np.random.default_rng(seed)
        self._cache.clear()
        self._client_mean.clear()

    def predict(self, view: EngineView, rid: int) -> int:
        """Predicted total output tokens of request ``rid``."""
        kind = self.config.kind
        if kind == "moving_average":
            return round(self._client_mean.get(int(view.client[rid]), 0.0))
        cached = self._cache.get(rid)
        if cached is None:
            cached = self._first_prediction(view, rid)
            self._cache[rid] = cached
        return cached

    def _first_prediction(self, view: EngineView, rid: int) -> int:
        kind = self.config.kind
        if kind == "oracle":
            return view.oracle_output_len(rid)
        if kind == "noisy":
            eps = self.config.eps
            factor = self._rng.uniform(1.0 - eps, 1.0 + eps)
            return max(1, round(view.oracle_output_len(rid) * factor))
        if kind == "max_tokens":
            bound = int(view.max_tokens[rid])
            return bound if bound > 0 else self.config.default
        field = int(view.predicted[rid])
        return field if field > 0 else self.config.default

    def observe(self, view: EngineView, finished: tuple[int, ...]) -> None:
        """Learn from requests that just finished (their emitted length is now public)."""
        for rid in finished:
            self._cache.pop(rid, None)
            if self.config.kind != "moving_average":
                continue
            client = int(view.client[rid])
            actual = float(view.emitted[rid])
            prev = self._client_mean.get(client)
            self._client_mean[client] = actual if prev is None else (4.0 * prev + actual) / 5.0
