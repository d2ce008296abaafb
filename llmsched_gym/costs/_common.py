"""Helpers shared by the cost models: batch aggregates, evaluation of compiled forms, non-negative least squares."""

from __future__ import annotations

import numpy as np

from llmsched_gym.core import cost_kernels
from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.cost_kernels import CompiledCost


def prefill_aggregates(batch: BatchSummary) -> tuple[int, int, int, int]:
    """Integer aggregates of the prefill chunks of a batch.

    Args:
        batch: The batch summary.

    Returns:
        ``(sum c, sum c * x, sum c * c, sum x)`` over chunks of size ``c`` with cached context ``x``.
    """
    chunks = batch.prefill_tokens
    n = len(chunks)
    if n == 0:
        return 0, 0, 0, 0
    if n <= 8:  # Python arithmetic beats four numpy reductions on tiny arrays.
        cs = chunks.tolist()
        xs = batch.prefill_context.tolist()
        s_cx = s_cc = 0
        for c, x in zip(cs, xs, strict=True):
            s_cx += c * x
            s_cc += c * c
        return sum(cs), s_cx, s_cc, sum(xs)
    ctx = batch.prefill_context
    return int(chunks.sum()), int(chunks @ ctx), int(chunks @ chunks), int(ctx.sum())


def compiled_time(cost: CompiledCost, batch: BatchSummary) -> float:
    """One iteration's duration from a compiled form (the same kernel the engine's fused step calls)."""
    s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
    n_dec, dec_ctx, n_seqs = batch.n_decodes, batch.decode_context_sum, batch.n_seqs
    return float(cost_kernels.iteration_time(cost.form, cost.coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs))


def compiled_stretch(cost: CompiledCost, batch: BatchSummary, k: int) -> FloatArray:
    """Durations of ``k`` repetitions of ``batch`` from a compiled form (``CostModel.stretch_times``)."""
    check_k(k)
    s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
    n_dec, dec_ctx, n_seqs = batch.n_decodes, batch.decode_context_sum, batch.n_seqs
    out: FloatArray = cost_kernels.stretch_times(cost.form, cost.coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs, k)
    return out


class CompiledCostModel:
    """Base of the cost models that evaluate themselves through their compiled form (one formula, one source).

    Subclasses set ``self._compiled`` in ``__init__``.
    """

    __slots__ = ("_compiled",)
    _compiled: CompiledCost

    def compiled_form(self) -> CompiledCost:
        """The model's compiled form (the engine's fused step evaluates it without calling back into Python)."""
        return self._compiled

    def iteration_time(self, batch: BatchSummary) -> float:
        """Duration of one iteration computing ``batch``, in seconds."""
        return compiled_time(self._compiled, batch)

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Durations of ``k`` consecutive iterations of ``batch`` with contexts growing."""
        return compiled_stretch(self._compiled, batch, k)


def tile_ceil(tokens: int, tile: int) -> int:
    """Round ``tokens`` up to a multiple of ``tile`` (``tile <= 1`` leaves it unchanged)."""
    if tile <= 1:
        return tokens
    return -(-tokens // tile) * tile


def check_k(k: int) -> None:
    """Raise ValueError unless ``k`` is a valid stretch length (an int >= 0)."""
    if k < 0:
        raise ValueError(f"stretch length k={k} must be >= 0")


def nonneg_lstsq(features: FloatArray, target: FloatArray) -> FloatArray:
    """Least squares with non-negative coefficients (drop the most negative column and refit until none is).

    This active-set heuristic is exact when the unconstrained solution is already non-negative and a close
    approximation otherwise; it keeps fitted cost models monotone.

    Args:
        features: Design matrix, one row per observation.
        target: Observed values.

    Returns:
        Coefficients, one per column, all >= 0.
    """
    n_cols = features.shape[1]
    active = list(range(n_cols))
    coef = np.zeros(n_cols, dtype=np.float64)
    while active:
        sol, *_ = np.linalg.lstsq(features[:, active], target, rcond=None)
        worst = int(np.argmin(sol))
        if sol[worst] >= 0.0:
            coef[active] = sol
            return coef
        del active[worst]
    return coef
