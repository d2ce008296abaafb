"""The simulated runner: iteration times from a cost model."""

from __future__ import annotations

from llmsched_gym.core.batch import FloatArray, IntArray, IterationWork
from llmsched_gym.core.cost_kernels import CompiledCost
from llmsched_gym.core.protocols import CostModel


class SimulatedRunner:
    """Runs iterations by asking a cost model how long they take.

    Args:
        cost_model: Any :class:`~llmsched_gym.core.protocols.CostModel`.
    """

    supports_stretch = True

    def __init__(self, cost_model: CostModel) -> None:
        self.cost_model = cost_model
        form = getattr(cost_model, "compiled_form", None)
        self.compiled_cost: CompiledCost | None = form() if callable(form) else None
        """The cost model's compiled form, if it has one (the engine then fuses each step into one call)."""

    def run(self, work: IterationWork) -> float:
        """Duration of one iteration."""
        return self.cost_model.iteration_time(work.summary)

    def run_stretch(self, work: IterationWork, k: int) -> FloatArray:
        """Durations of ``k`` repetitions of ``work``."""
        return self.cost_model.stretch_times(work.summary, k)

    def release(self, ids: IntArray) -> None:
        """Nothing to free in simulation."""

    def forget(self, ids: IntArray) -> None:
        """Nothing to forget in simulation."""
