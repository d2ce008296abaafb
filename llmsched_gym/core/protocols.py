"""The engine's contracts: cost models, runners and schedulers.

These protocols are the stable seams of the project (see ARCHITECTURE.md):

* a :class:`CostModel` maps a :class:`~llmsched_gym.core.batch.BatchSummary` to seconds;
* a :class:`Runner` executes (or simulates) an iteration and returns its duration;
* a :class:`Scheduler` maps a read-only engine view to a :class:`~llmsched_gym.core.plan.BatchPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray, IntArray, IterationWork
from llmsched_gym.core.plan import BatchPlan

if TYPE_CHECKING:
    from llmsched_gym.core.view import EngineView

Allocation = Literal["prompt", "on_demand"]
Overflow = Literal["error", "evict_newest"]
RestartMode = Literal["recompute", "full"]


@runtime_checkable
class CostModel(Protocol):
    """Maps a batch summary to an iteration time in seconds."""

    def iteration_time(self, batch: BatchSummary) -> float:
        """Duration of one iteration that computes ``batch``, in seconds (> 0)."""
        ...

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Durations of ``k`` consecutive iterations of the same plan.

        Iteration ``j`` (0-based) has every decode context grown by ``j`` tokens (the decode sum
        by ``j * n_decodes``) and every prefill chunk's context grown by ``j`` times its chunk size.
        """
        ...


def stretch_times_by_loop(model: CostModel, batch: BatchSummary, k: int) -> FloatArray:
    """Reference implementation of :meth:`CostModel.stretch_times` calling ``iteration_time`` k times."""
    out = np.empty(k, dtype=np.float64)
    for j in range(k):
        shifted = BatchSummary(
            batch.prefill_tokens,
            batch.prefill_context + j * batch.prefill_tokens,
            batch.n_decodes,
            batch.decode_context_sum + j * batch.n_decodes,
            batch.n_seqs,
        )
        out[j] = model.iteration_time(shifted)
    return out


@runtime_checkable
class Runner(Protocol):
    """Executes iterations: simulated (a cost model) or live (a real model on a GPU)."""

    supports_stretch: bool
    """Whether :meth:`run_stretch` may be used to fast-forward repeated plans."""

    def run(self, work: IterationWork) -> float:
        """Execute one iteration and return its duration in seconds."""
        ...

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Durations of ``k`` repetitions of ``work`` (see :meth:`CostModel.stretch_times`)."""
        ...

    def release(self, ids: IntArray) -> None:
        """The KV of these requests was freed (finished or preempted); token history is kept."""
        ...

    def forget(self, ids: IntArray) -> None:
        """These requests finished or were rejected: drop everything held for them."""
        ...


@dataclass(frozen=True, slots=True)
class EngineRequirements:
    """Engine modes a scheduler needs; ``None`` leaves the engine's configured value.

    Attributes:
        allocation: ``"prompt"`` reserves a request's whole pending prefill at admission
            (Sarathi-Serve, SLAI, vLLM V0); ``"on_demand"`` allocates per computed token (vLLM V1).
        overflow: ``"error"`` rejects infeasible plans; ``"evict_newest"`` repairs them by evicting
            the most recently admitted running requests (WAIT, MC-SF).
        restart_mode: ``"recompute"`` keeps emitted tokens and re-prefills prompt plus generated
            tokens; ``"full"`` discards all progress (WAIT and MC-SF paper presets).
    """

    allocation: Allocation | None = None
    overflow: Overflow | None = None
    restart_mode: RestartMode | None = None


@runtime_checkable
class Scheduler(Protocol):
    """A decision maker: a read-only view in, a batch plan out.

    Policy-private state lives in the scheduler and is cleared by :meth:`reset`. A scheduler must
    never mutate the view or anything reachable from it.

    Optionally, a scheduler may define ``fused_driver(engine) -> Callable[[], None] | None``: a callable
    that advances the engine by one or more of its decisions in compiled code, with results identical to
    ``engine.step(schedule(engine.view()))`` repeated (see docs/engine.md, "Compiled paths").
    :func:`llmsched_gym.simulate.run_engine` uses it when it returns one.
    """

    name: str
    requirements: EngineRequirements

    def reset(self, *, seed: int | None = None) -> None:
        """Clear all policy state; ``seed`` seeds any randomness the policy uses."""
        ...

    def schedule(self, view: EngineView) -> BatchPlan:
        """Return the plan for the next iteration."""
        ...
