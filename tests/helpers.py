"""Small shared test utilities: a tiny exact cost model and request builders."""

from __future__ import annotations

import hashlib

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.protocols import stretch_times_by_loop
from llmsched_gym.core.request import Request
from llmsched_gym.simulate import SimulationResult


class LinearCost:
    """t = base + a * tokens + b * decode context: exact in floating point for the loop reference."""

    def __init__(self, base: float = 0.01, per_token: float = 1e-4, per_ctx: float = 1e-7) -> None:
        self.base, self.per_token, self.per_ctx = base, per_token, per_ctx

    def iteration_time(self, batch: BatchSummary) -> float:
        tokens = int(batch.prefill_tokens.sum()) + batch.n_decodes
        ctx = batch.decode_context_sum + int(batch.prefill_context.sum())
        return self.base + self.per_token * tokens + self.per_ctx * ctx

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        return stretch_times_by_loop(self, batch, k)


def make_requests(specs: list[tuple[float, int, int]], **kw: object) -> list[Request]:
    """Requests from ``(arrival, prompt, output)`` triples, ids in order."""
    return [Request(i, a, p, o, **kw) for i, (a, p, o) in enumerate(specs)]  # type: ignore[arg-type]


def result_hash(res: SimulationResult) -> str:
    """A hash of every per-request column (for determinism tests)."""
    h = hashlib.sha256()
    for name in sorted(res.columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(res.columns[name]).tobytes())
    return h.hexdigest()


def assert_same_columns(fast: SimulationResult, slow: SimulationResult) -> None:
    """Fast-forwarded and step-by-step runs agree: same iterations, every column equal (float sums to 1e-9)."""
    assert fast.iterations == slow.iterations
    for col, arr in slow.columns.items():
        if col == "tbt_sum":
            np.testing.assert_allclose(fast.columns[col], arr, rtol=1e-9)
        else:
            np.testing.assert_array_equal(fast.columns[col], arr, err_msg=col)
