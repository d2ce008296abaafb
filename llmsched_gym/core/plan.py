"""The batch plan: what a scheduler (or env action, or policy) decides for one iteration."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmsched_gym.core.batch import IntArray

UNBOUNDED_REPEAT = 1 << 30
"""``BatchPlan.repeat`` for "repeat until an event" (the engine fast-forwards up to the first event)."""

_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """One scheduling decision.

    ``ids[i]`` processes ``tokens[i]`` tokens this iteration: 1 for a decode (or a 1-token prefill
    remainder), more for a prefill chunk. ``preempt`` lists running requests to evict (recompute or
    full restart, per the engine's restart mode) before the batch runs. ``reject`` lists waiting
    requests the scheduler refuses, with a reason. An empty plan (no tokens) means "idle until the
    next arrival or ``wake_at``".

    Attributes:
        ids: Request ids in the batch (int64, unique).
        tokens: Tokens per request (int64, each >= 1).
        preempt: Running requests to evict before the batch runs.
        reject: ``(request_id, reason)`` pairs of waiting requests to reject.
        wake_at: For an idle plan, the latest time the scheduler wants to be asked again.
        repeat: The scheduler promises to return this same plan (decodes again, prefill chunks of
            the same size) for up to ``repeat`` iterations (:data:`UNBOUNDED_REPEAT`: no bound) as long as no event
            occurs (a request
            finishes or completes its prefill, a KV allocation would fail, ``wake_at`` passes, or,
            when ``arrival_sensitive``, a request arrives). The engine may then fast-forward.
        arrival_sensitive: Whether an arrival during a repeated stretch could change the plan.
    """

    ids: IntArray = field(default_factory=lambda: _EMPTY)
    tokens: IntArray = field(default_factory=lambda: _EMPTY)
    preempt: tuple[int, ...] = ()
    reject: tuple[tuple[int, str], ...] = ()
    wake_at: float | None = None
    repeat: int = 1
    arrival_sensitive: bool = True

    def __post_init__(self) -> None:
        """Check the plan's shape (the engine checks it against state)."""
        if self.ids.shape != self.tokens.shape or self.ids.ndim != 1:
            raise ValueError(f"BatchPlan: ids shape {self.ids.shape} and tokens shape {self.tokens.shape} must match")
        if self.repeat < 1:
            raise ValueError(f"BatchPlan: repeat={self.repeat} must be >= 1")
        if self.wake_at is not None and math.isnan(self.wake_at):
            raise ValueError("BatchPlan: wake_at is NaN; pass None for no wake-up")

    @classmethod
    def of(
        cls,
        tokens: Mapping[int, int] | None = None,
        preempt: Sequence[int] = (),
        reject: Sequence[tuple[int, str]] = (),
        wake_at: float | None = None,
        repeat: int = 1,
        arrival_sensitive: bool = True,
    ) -> BatchPlan:
        """Build a plan from a ``{request_id: n_tokens}`` mapping."""
        tok = tokens or {}
        ids = np.fromiter(tok.keys(), dtype=np.int64, count=len(tok))
        n = np.fromiter(tok.values(), dtype=np.int64, count=len(tok))
        return cls(ids, n, tuple(preempt), tuple(reject), wake_at, repeat, arrival_sensitive)

    @classmethod
    def idle(cls, wake_at: float | None = None) -> BatchPlan:
        """An empty plan: wait for the next arrival or ``wake_at``."""
        return cls(wake_at=wake_at)

    @property
    def is_idle(self) -> bool:
        """True when the plan runs no tokens."""
        return self.ids.size == 0

    def as_dict(self) -> dict[int, int]:
        """The ``{request_id: n_tokens}`` mapping of the plan."""
        return {int(i): int(n) for i, n in zip(self.ids, self.tokens, strict=True)}
