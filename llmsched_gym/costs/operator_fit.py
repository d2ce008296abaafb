"""Fit the operator form to measured points: outlier screening, hold-out, multi-start Levenberg-Marquardt.

Procedure (docs/profiles.md, "Fitting"):

1. **Screen**: a first fit on every point; a point whose error exceeds ``outlier_error`` (relative) and
   ``outlier_sigmas`` robust standard deviations (1.4826 x the median absolute deviation of the log errors) is
   flagged ``"outlier"`` and used neither to fit nor to validate (a data defect, listed in the profile).
2. **Split**: points measured as ``role="holdout"`` (the profiler's random mixed batches) validate; a seeded random
   ``holdout_fraction`` of the others is held out as well.
3. **Fit** the free coefficients on the training points by least squares of the log ratio predicted / measured
   (relative error, so short decode steps and long prefills weigh alike), from several seeded starts, for each
   candidate GEMM tile; the best training cost wins. Free exponents are then snapped to the neighbouring powers
   of two (the kernel's fast path) and the other coefficients refitted; the best combination wins.
4. **Validate**: median, p90, mean and maximum absolute relative error on the held-out points (or, for a small
   grid without held-out points, ``folds``-fold cross-validation over the training points).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from llmsched_gym.core.batch import FloatArray
from llmsched_gym.costs._common import nonneg_lstsq
from llmsched_gym.costs.lsq import levenberg_marquardt
from llmsched_gym.costs.operator import EXPONENTS, MAX_EXPONENT, BatchColumns, OperatorParams, predict
from llmsched_gym.costs.profile_fit import MeasuredPoint, Validation, relative_errors

SINGLE_GPU_FREE = tuple(
    f.name for f in fields(OperatorParams) if f.name not in ("tile_tokens", "comm_s", "comm_latency_s")
)
"""Coefficients fitted by default: all but the tile (searched) and the TP communication terms (a profile is
measured at one TP degree, where communication is indistinguishable from the per-token and fixed terms)."""
DEFAULT_BASE = OperatorParams(fixed_s=1e-3)
"""Values of the coefficients a fit leaves out of ``free`` (and the exponents' start)."""
_FLOOR_VALUE = 1e-13
_LOG_FLOOR = float(np.log(_FLOOR_VALUE))


@dataclass(frozen=True, slots=True)
class OperatorFitConfig:
    """Settings of :func:`fit_operator`.

    Attributes:
        tiles: Candidate GEMM tiles (0: none); the one with the smallest training error wins.
        free: Coefficients to fit; the others keep their value in ``base``.
        base: Values of the coefficients that are not fitted.
        holdout_fraction: Fraction of the ``role="train"`` points held out at random, in [0, 1).
        folds: With ``folds >= 2`` and no held-out points, validate by ``folds``-fold cross-validation instead
            (every point is predicted once by a fit on the other folds; the returned fit uses all points), for
            small grids where a single held-out split would leave too few points on either side.
        seed: Seed of the hold-out split and of the random starts.
        starts: Optimisation starts (the first from a linear fit, the others perturbed).
        outlier_error: Smallest relative error of a point flagged as an outlier by the screening fit.
        outlier_sigmas: Robust standard deviations of the log errors beyond which a point is an outlier.
    """

    tiles: tuple[int, ...] = (0,)
    free: tuple[str, ...] = SINGLE_GPU_FREE
    base: OperatorParams = DEFAULT_BASE
    holdout_fraction: float = 0.0
    folds: int = 0
    seed: int = 0
    starts: int = 4
    outlier_error: float = 0.5
    outlier_sigmas: float = 6.0

    def __post_init__(self) -> None:
        """Check ranges and names."""
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"OperatorFitConfig: holdout_fraction={self.holdout_fraction} must be in [0, 1)")
        known = {f.name for f in fields(OperatorParams)} - {"tile_tokens"}
        unknown = sorted(set(self.free) - known)
        if unknown or not self.free:
            raise ValueError(f"OperatorFitConfig: free={self.free} must be non-empty names from {sorted(known)}")
        if self.starts < 1 or not self.tiles or min(self.tiles) < 0:
            raise ValueError(f"OperatorFitConfig: starts={self.starts} must be >= 1 and tiles={self.tiles} >= 0")
        if self.folds < 0 or self.folds == 1:
            raise ValueError(f"OperatorFitConfig: folds={self.folds} must be 0 (off) or >= 2")
        if self.outlier_error <= 0 or self.outlier_sigmas <= 0:
            raise ValueError("OperatorFitConfig: outlier_error and outlier_sigmas must be > 0")


@dataclass(frozen=True, slots=True)
class OperatorFit:
    """Result of :func:`fit_operator`.

    Attributes:
        params: The fitted coefficients.
        validation: Their error on the held-out points.
        points: The input points with their final ``role`` and ``flag`` (outliers flagged).
        holdout_errors: Signed relative errors on the held-out points, in point order (with cross-validation: of
            every training point, each predicted by the fit that did not see it).
    """

    params: OperatorParams
    validation: Validation
    points: tuple[MeasuredPoint, ...]
    holdout_errors: FloatArray


class _Problem:
    """Log-ratio residuals of a set of points as a function of the free coefficients (transformed)."""

    def __init__(self, points: Sequence[MeasuredPoint], free: Sequence[str], base: OperatorParams) -> None:
        self.cols = BatchColumns.of([p.summary() for p in points])
        self.log_measured = np.log(np.array([p.seconds for p in points], dtype=np.float64))
        self.free = tuple(free)
        self.base = base
        self.exponent = np.array([n in EXPONENTS for n in free])

    def params(self, theta: FloatArray) -> OperatorParams:
        values = np.where(self.exponent, np.minimum(1.0 + np.exp(theta), MAX_EXPONENT), np.exp(theta))
        values = np.where(self.exponent | (values > _FLOOR_VALUE * 1.0001), values, 0.0)
        return self.base.with_values(**dict(zip(self.free, values.tolist(), strict=True)))

    def theta(self, params: OperatorParams) -> FloatArray:
        values = np.array([getattr(params, n) for n in self.free], dtype=np.float64)
        values = np.where(self.exponent, values - 1.0, values)
        return np.log(np.maximum(values, _FLOOR_VALUE))

    def residuals(self, theta: FloatArray) -> FloatArray:
        try:
            predicted = predict(self.params(theta).compiled(), self.cols)
        except ValueError:  # all of fixed_s, floor_s and weights_s vanished
            return np.full(self.log_measured.size, 1e3)
        return np.log(np.maximum(predicted, 1e-300)) - self.log_measured

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        upper = np.where(self.exponent, np.log(MAX_EXPONENT - 1.0), 5.0)
        return np.full(len(self.free), _LOG_FLOOR), upper


def _linear_start(problem: _Problem) -> OperatorParams:
    """Starting point: every term added (exponents 1), constants split between the fixed terms, by NNLS."""
    p1 = problem.base.with_values(**{n: 1.0 for n in problem.free if n in EXPONENTS})
    linear = [n for n in problem.free if n not in EXPONENTS]
    columns = []
    for name in linear:
        values = {n: 0.0 for n in linear} | {"fixed_s": 1e-300} | {name: 1.0}
        columns.append(predict(p1.with_values(**values).compiled(), problem.cols))
    measured = np.exp(problem.log_measured)
    design = np.column_stack(columns) / measured[:, None]
    coef = nonneg_lstsq(design, np.ones_like(measured))
    values = dict(zip(linear, coef.tolist(), strict=True))
    constant = sum(values.get(n, 0.0) for n in ("fixed_s", "floor_s", "weights_s")) or float(np.median(measured))
    for name in ("fixed_s", "floor_s", "weights_s"):
        if name in values:
            values[name] = constant / 3.0
    exponents = {n: 2.0 for n in EXPONENTS if n in problem.free}
    return p1.with_values(**{n: max(v, 1e-12) for n, v in values.items()}, **exponents)


def _solve(
    problem: _Problem, starts: int, seed: int, start: OperatorParams | None = None
) -> tuple[float, OperatorParams]:
    rng = np.random.default_rng(seed)
    lower, upper = problem.bounds()
    x0 = problem.theta(start or _linear_start(problem))
    best: tuple[float, OperatorParams] | None = None
    for i in range(starts):
        x = x0 if i == 0 else x0 + rng.normal(0.0, 1.0, x0.size)
        result = levenberg_marquardt(problem.residuals, np.clip(x, lower, upper), lower=lower, upper=upper)
        if best is None or result.cost < best[0]:
            best = (result.cost, problem.params(result.x))
    assert best is not None
    return best


def snap_exponent(p: float) -> tuple[float, ...]:
    """The powers of two nearest ``p`` (below and above, within [1, 64]): the exponents the fast kernel path takes."""
    k = np.log2(min(max(p, 1.0), MAX_EXPONENT))
    return tuple(sorted({float(2.0 ** np.floor(k)), float(2.0 ** np.ceil(k))}))


def _snapped(
    points: Sequence[MeasuredPoint], config: OperatorFitConfig, fitted: OperatorParams
) -> tuple[float, OperatorParams]:
    """Refit with every free exponent fixed to a neighbouring power of two; the best combination wins."""
    free_exp = [n for n in EXPONENTS if n in config.free]
    linear = tuple(n for n in config.free if n not in EXPONENTS)
    best: tuple[float, OperatorParams] | None = None
    for combo in itertools.product(*(snap_exponent(getattr(fitted, n)) for n in free_exp)):
        base = fitted.with_values(**dict(zip(free_exp, combo, strict=True)))
        result = _solve(_Problem(points, linear, base), 1, config.seed, start=base)
        if best is None or result[0] < best[0]:
            best = result
    assert best is not None
    return best


def _fit_tiles(points: Sequence[MeasuredPoint], config: OperatorFitConfig) -> OperatorParams:
    if len(points) < len(config.free) + 1:
        raise ValueError(
            f"fit_operator: {len(points)} training points for {len(config.free)} free coefficients; measure more "
            "points or fix some coefficients (OperatorFitConfig.free)"
        )
    results = []
    for tile in config.tiles:
        problem = _Problem(points, config.free, replace(config.base, tile_tokens=int(tile)))
        results.append(_solve(problem, config.starts, config.seed))
    fitted = min(results, key=lambda r: r[0])[1]
    if not any(n in EXPONENTS for n in config.free):
        return fitted
    return _snapped(points, config, fitted)[1]


def _screen(points: Sequence[MeasuredPoint], config: OperatorFitConfig) -> list[bool]:
    """Which points are outliers (module docstring, step 1).

    The worst point is flagged and the rest refitted until every error is within the limit (one at a time, so a
    gross defect cannot bend the fit onto good points).
    """
    quick = replace(config, starts=1, tiles=config.tiles[:1])
    bad = [p.flag == "outlier" for p in points]
    while True:
        kept = [p for p, b in zip(points, bad, strict=True) if not b]
        if len(kept) <= len(config.free) + 1:
            return bad
        log_err = np.log1p(relative_errors(_fit_tiles(kept, quick), points))
        kept_err = log_err[~np.array(bad)]
        scale = 1.4826 * float(np.median(np.abs(kept_err - np.median(kept_err))))
        limit = max(float(np.log1p(config.outlier_error)), config.outlier_sigmas * scale)
        worst = int(np.argmax(np.where(bad, -np.inf, np.abs(log_err))))
        if abs(log_err[worst]) <= limit:
            return bad
        bad[worst] = True


def _cross_validate(train: Sequence[MeasuredPoint], cfg: OperatorFitConfig, rng: np.random.Generator) -> FloatArray:
    """Signed relative errors of every training point predicted by a fit on the other folds (in point order)."""
    fold = rng.permutation(len(train)) % cfg.folds
    errors = np.empty(len(train), dtype=np.float64)
    for k in range(cfg.folds):
        inside = [p for p, f in zip(train, fold, strict=True) if f != k]
        index = np.flatnonzero(fold == k)
        errors[index] = relative_errors(_fit_tiles(inside, cfg), [train[int(i)] for i in index])
    return errors


def fit_operator(points: Sequence[MeasuredPoint], config: OperatorFitConfig | None = None) -> OperatorFit:
    """Fit the operator form to ``points`` (module docstring) and validate it on held-out points.

    Raises:
        ValueError: Too few points to fit or to validate.
    """
    cfg = config or OperatorFitConfig()
    outlier = _screen(points, cfg)
    rng = np.random.default_rng(cfg.seed)
    marked = [
        replace(p, flag="outlier" if bad else (p.flag if p.flag != "outlier" else None))
        for p, bad in zip(points, outlier, strict=True)
    ]
    candidates = [i for i, p in enumerate(marked) if p.role == "train" and p.flag != "outlier"]
    n_extra = round(cfg.holdout_fraction * len(candidates))
    extra = set(rng.permutation(candidates)[:n_extra].tolist())
    marked = [replace(p, role="holdout") if i in extra else p for i, p in enumerate(marked)]
    train = [p for p in marked if p.role == "train" and p.flag != "outlier"]
    hold = [p for p in marked if p.role == "holdout" and p.flag != "outlier"]
    params = _fit_tiles(train, cfg)
    if hold:
        errors = relative_errors(params, hold)
        validation = Validation.of_errors(errors, len(train), len(hold))
    elif cfg.folds:
        errors = _cross_validate(train, cfg, rng)
        validation = Validation.of_errors(errors, len(train), len(train))
    else:
        errors = np.zeros(0)
        validation = Validation.of_errors(relative_errors(params, train), len(train), 0)
    return OperatorFit(params, validation, tuple(marked), errors)
