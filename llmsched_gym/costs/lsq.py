"""A small Levenberg-Marquardt solver for the nonlinear fits of the cost forms (numpy only, deterministic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.batch import FloatArray

Residuals = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True, slots=True)
class LSQResult:
    """Outcome of :func:`levenberg_marquardt`.

    Attributes:
        x: The parameters reached.
        cost: Sum of squared residuals at ``x``.
        iterations: Accepted steps.
    """

    x: FloatArray
    cost: float
    iterations: int


def _jacobian(fun: Residuals, x: FloatArray, r: FloatArray) -> FloatArray:
    jac = np.empty((r.size, x.size), dtype=np.float64)
    for i in range(x.size):
        step = 1e-6 * max(1.0, abs(float(x[i])))
        shifted = x.copy()
        shifted[i] += step
        jac[:, i] = (fun(shifted) - r) / step
    return jac


def levenberg_marquardt(
    fun: Residuals,
    x0: FloatArray,
    *,
    lower: FloatArray | None = None,
    upper: FloatArray | None = None,
    max_iter: int = 200,
    rtol: float = 1e-10,
) -> LSQResult:
    """Minimise ``sum(fun(x) ** 2)`` from ``x0`` with damped Gauss-Newton steps (forward-difference Jacobian).

    Args:
        fun: Residual vector of the parameters; must be finite wherever it is called within the bounds.
        x0: Starting parameters.
        lower: Optional lower bounds (steps are clipped to them).
        upper: Optional upper bounds.
        max_iter: Most Jacobian evaluations.
        rtol: Stop when a step improves the cost by less than this fraction.

    Returns:
        The best parameters found, their cost and the number of accepted steps.
    """
    lo = np.full(x0.size, -np.inf) if lower is None else lower
    hi = np.full(x0.size, np.inf) if upper is None else upper
    x = np.clip(np.asarray(x0, dtype=np.float64), lo, hi)
    r = fun(x)
    state = _State(x, r, float(r @ r), 1e-3)
    accepted = 0
    for _ in range(max_iter):
        jac = _jacobian(fun, state.x, state.r)
        gain = _damped_step(fun, state, jac.T @ jac, jac.T @ state.r, lo, hi)
        if gain is None:
            break
        accepted += 1
        if gain <= rtol * max(state.cost, 1e-300):
            break
    return LSQResult(state.x, state.cost, accepted)


@dataclass(slots=True)
class _State:
    """The solver's current point, its residuals and cost, and the damping."""

    x: FloatArray
    r: FloatArray
    cost: float
    damping: float


def _damped_step(
    fun: Residuals, state: _State, normal: FloatArray, grad: FloatArray, lo: FloatArray, hi: FloatArray
) -> float | None:
    """Raise the damping until a step lowers the cost; take it and return the gain (None: no step does)."""
    while state.damping < 1e12:
        scaled = normal + state.damping * np.diag(np.diag(normal) + 1e-12)
        try:
            step = np.linalg.solve(scaled, -grad)
        except np.linalg.LinAlgError:
            state.damping *= 10.0
            continue
        trial = np.clip(state.x + step, lo, hi)
        r_trial = fun(trial)
        c_trial = float(r_trial @ r_trial)
        if np.isfinite(c_trial) and c_trial < state.cost:
            gain = state.cost - c_trial
            state.x, state.r, state.cost = trial, r_trial, c_trial
            state.damping = max(state.damping / 3.0, 1e-12)
            return gain
        state.damping *= 4.0
    return None
