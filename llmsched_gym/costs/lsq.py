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
    cost = float(r @ r)
    damping = 1e-3
    accepted = 0
    for _ in range(max_iter):
        jac = _jacobian(fun, x, r)
        normal = jac.T @ jac
        grad = jac.T @ r
        improved = False
        while damping < 1e12:
            scaled = normal + damping * np.diag(np.diag(normal) + 1e-12)
            try:
                step = np.linalg.solve(scaled, -grad)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = np.clip(x + step, lo, hi)
            r_trial = fun(trial)
            c_trial = float(r_trial @ r_trial)
            if np.isfinite(c_trial) and c_trial < cost:
                gain = cost - c_trial
                x, r, cost = trial, r_trial, c_trial
                damping = max(damping / 3.0, 1e-12)
                accepted += 1
                improved = gain > rtol * max(cost, 1e-300)
                break
            damping *= 4.0
        if not improved:
            break
    return LSQResult(x, cost, accepted)
