"""Request records: what a workload produces and what the engine serves."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SLOClass:
    """A latency objective class.

    Attributes:
        name: Class label, e.g. ``"paying"`` or ``"free"``.
        ttft_s: Time-to-first-token target in seconds, or ``None`` for no target.
        tbt_s: Time-between-tokens target in seconds (each inter-token gap), or ``None``.
    """

    name: str
    ttft_s: float | None = None
    tbt_s: float | None = None

    def __post_init__(self) -> None:
        """Validate the targets."""
        for field, value in (("ttft_s", self.ttft_s), ("tbt_s", self.tbt_s)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"SLOClass {self.name!r}: {field}={value!r} must be a positive finite number or None")


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request as described by a workload.

    Attributes:
        id: Unique non-negative integer id within the workload.
        arrival: Arrival time in seconds (non-negative, finite).
        prompt_len: Prompt (input) tokens, at least 1.
        output_len: True number of output tokens the request generates, at least 1.
        client: Client (tenant) index, non-negative; used by fairness schedulers and metrics.
        max_tokens: Optional cap on output tokens as the user requested it (a bound known to the
            scheduler); generation stops at ``min(output_len, max_tokens)``.
        slo: Optional SLO class.
        predicted_output_len: Optional predicted output length (for prediction-based schedulers).
        weight: Client weight for weighted fair sharing (positive).
        type_label: Optional request-type index (WAIT's types), or ``None``.
    """

    id: int
    arrival: float
    prompt_len: int
    output_len: int
    client: int = 0
    max_tokens: int | None = None
    slo: SLOClass | None = None
    predicted_output_len: int | None = None
    weight: float = 1.0
    type_label: int | None = None

    def __post_init__(self) -> None:
        """Validate every field, naming the bad value."""
        if self.id < 0:
            raise ValueError(f"Request id={self.id} must be >= 0")
        if not (math.isfinite(self.arrival) and self.arrival >= 0):
            raise ValueError(f"Request {self.id}: arrival={self.arrival!r} must be finite and >= 0")
        if self.prompt_len < 1:
            raise ValueError(f"Request {self.id}: prompt_len={self.prompt_len} must be >= 1")
        if self.output_len < 1:
            raise ValueError(f"Request {self.id}: output_len={self.output_len} must be >= 1")
        if self.client < 0:
            raise ValueError(f"Request {self.id}: client={self.client} must be >= 0")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"Request {self.id}: max_tokens={self.max_tokens} must be >= 1 or None")
        if self.predicted_output_len is not None and self.predicted_output_len < 1:
            raise ValueError(
                f"Request {self.id}: predicted_output_len={self.predicted_output_len} must be >= 1 or None"
            )
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"Request {self.id}: weight={self.weight!r} must be positive")

    @property
    def target_output_len(self) -> int:
        """Tokens the request will actually generate: ``min(output_len, max_tokens)``."""
        if self.max_tokens is None:
            return self.output_len
        return min(self.output_len, self.max_tokens)
