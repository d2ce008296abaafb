"""Engine configuration and the record of one step (re-exported by :mod:`llmsched_gym.core.engine`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.protocols import Allocation, EngineRequirements, Overflow, RestartMode
from llmsched_gym.core.recorder import RecorderConfig


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine modes and limits.

    Attributes:
        kv: KV pool configuration.
        allocation: ``"prompt"`` (reserve the pending prefill at admission) or ``"on_demand"``.
        overflow: ``"error"`` or ``"evict_newest"`` (repair infeasible plans, spec §1.4).
        restart_mode: ``"recompute"`` or ``"full"`` (spec §1.3).
        fast_forward: Allow stretches of repeated plans to be committed at once.
        compiled: Check, cost and commit each decision in one compiled call when the runner's cost
            model has a compiled form (:mod:`llmsched_gym.core.fused`; identical results). Off runs
            the classic three-call path.
        max_idle_decisions: Consecutive decisions that process no token and admit no arrival
            before :class:`LivelockError` is raised.
        recorder: What to record.
    """

    kv: KVConfig
    allocation: Allocation = "prompt"
    overflow: Overflow = "error"
    restart_mode: RestartMode = "recompute"
    fast_forward: bool = True
    compiled: bool = True
    max_idle_decisions: int = 10_000
    recorder: RecorderConfig = field(default_factory=RecorderConfig)

    def __post_init__(self) -> None:
        """Validate modes."""
        if self.allocation not in ("prompt", "on_demand"):
            raise ValueError(f"EngineConfig: allocation={self.allocation!r} must be 'prompt' or 'on_demand'")
        if self.overflow not in ("error", "evict_newest"):
            raise ValueError(f"EngineConfig: overflow={self.overflow!r} must be 'error' or 'evict_newest'")
        if self.restart_mode not in ("recompute", "full"):
            raise ValueError(f"EngineConfig: restart_mode={self.restart_mode!r} must be 'recompute' or 'full'")
        if self.max_idle_decisions < 1:
            raise ValueError(f"EngineConfig: max_idle_decisions={self.max_idle_decisions} must be >= 1")

    def with_requirements(self, req: EngineRequirements) -> EngineConfig:
        """This config with a scheduler's required modes applied."""
        from dataclasses import replace

        return replace(
            self,
            allocation=req.allocation or self.allocation,
            overflow=req.overflow or self.overflow,
            restart_mode=req.restart_mode or self.restart_mode,
        )


class StepResult(NamedTuple):
    """What one ``engine.step`` did (an immutable record; a named tuple because it is built every step).

    Attributes:
        t_start: Clock before the step.
        t_end: Clock after the step.
        iterations: Iterations executed (0 for idle or preempt-only plans).
        tokens: Tokens processed (prefill and decode).
        emitted: Output tokens delivered to users.
        finished: Ids that finished.
        evicted: Ids evicted (by the plan or by overflow repair).
    """

    t_start: float
    t_end: float
    iterations: int
    tokens: int
    emitted: int
    finished: tuple[int, ...]
    evicted: tuple[int, ...]
