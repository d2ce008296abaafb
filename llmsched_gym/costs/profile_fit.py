"""Measured calibration points, validation statistics, and the schema-1 form ``tile_knee_linear`` with its fit.

Schema-2 profiles fit the operator form instead (:mod:`llmsched_gym.costs.operator_fit`); schema-1 profiles keep
loading and evaluating with this form. The form (``tile_knee_linear``, documented in docs/profiles.md)::

    t = c0 + c_tok * max(0, tile_ceil(T) - knee) + c_attn * Σ c (x + c / 2) + c_pre_ctx * Σ x
           + c_dec * n_decodes + c_kv * decode_context_sum

with ``T`` all batch tokens, chunks ``c`` over cached context ``x``. Below the knee the linear layers are
memory-bound (flat, absorbed in ``c0``); above it time grows per (tile-rounded) token. All coefficients are
>= 0, so the model is monotone in tokens and context, and it is linear in them for a fixed knee, so the fit
is a non-negative least squares per candidate knee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.cost_kernels import TILE_KNEE_LINEAR, CompiledCost
from llmsched_gym.costs._common import nonneg_lstsq
from llmsched_gym.costs.operator import BatchColumns, OperatorParams, predict

COEFFICIENTS = ("c0", "c_tok", "c_attn", "c_pre_ctx", "c_dec", "c_kv")
MIN_INTERCEPT_S = 1e-9
ROLES = ("train", "holdout")
FLAGS = ("noisy", "outlier")


@dataclass(frozen=True, slots=True)
class MeasuredPoint:
    """One measured iteration: the batch summary fields and the measured duration.

    Attributes:
        prefill_tokens: Chunk sizes.
        prefill_context: Cached tokens before each chunk (same length as ``prefill_tokens``).
        n_decodes: Decode rows.
        decode_context_sum: Sum of the decode rows' cached tokens.
        n_seqs: Sequences in the batch.
        seconds: Measured duration (> 0): the median of the repeats.
        role: ``"train"`` (fitted) or ``"holdout"`` (kept out of the fit, validates it).
        flag: ``None``, ``"noisy"`` (the repeats disagree; kept) or ``"outlier"`` (implausible; excluded).
        spread: Relative spread of the repeats, ``(p90 - p10) / median``, if measured.
        repeats: Number of timed repeats, if measured.
    """

    prefill_tokens: tuple[int, ...]
    prefill_context: tuple[int, ...]
    n_decodes: int
    decode_context_sum: int
    n_seqs: int
    seconds: float
    role: str = "train"
    flag: str | None = None
    spread: float | None = None
    repeats: int | None = None

    def __post_init__(self) -> None:
        """Check consistency and positivity."""
        if len(self.prefill_tokens) != len(self.prefill_context):
            raise ValueError(
                f"MeasuredPoint: prefill_tokens has {len(self.prefill_tokens)} entries but prefill_context has "
                f"{len(self.prefill_context)}; give one context per chunk"
            )
        if any(c < 1 for c in self.prefill_tokens) or any(x < 0 for x in self.prefill_context):
            raise ValueError("MeasuredPoint: prefill_tokens must be >= 1 and prefill_context >= 0")
        if self.n_decodes < 0 or self.decode_context_sum < 0 or self.n_seqs < 0:
            raise ValueError(
                f"MeasuredPoint: n_decodes={self.n_decodes}, decode_context_sum={self.decode_context_sum} and "
                f"n_seqs={self.n_seqs} must be >= 0"
            )
        if not (self.seconds > 0.0 and math.isfinite(self.seconds)):
            raise ValueError(f"MeasuredPoint: seconds={self.seconds} must be a positive finite duration")
        if self.role not in ROLES:
            raise ValueError(f"MeasuredPoint: role={self.role!r} must be one of {ROLES}")
        if self.flag is not None and self.flag not in FLAGS:
            raise ValueError(f"MeasuredPoint: flag={self.flag!r} must be None or one of {FLAGS}")

    @classmethod
    def from_summary(cls, batch: BatchSummary, seconds: float, **extra: object) -> MeasuredPoint:
        """Record ``batch`` measured at ``seconds`` (``extra``: ``role``, ``flag``, ``spread``, ``repeats``)."""
        return cls(
            tuple(int(c) for c in batch.prefill_tokens),
            tuple(int(x) for x in batch.prefill_context),
            int(batch.n_decodes),
            int(batch.decode_context_sum),
            int(batch.n_seqs),
            float(seconds),
            **extra,  # type: ignore[arg-type]
        )

    @property
    def total_tokens(self) -> int:
        """All tokens of the batch (chunk tokens plus one per decode)."""
        return sum(self.prefill_tokens) + self.n_decodes

    def summary(self) -> BatchSummary:
        """The point's batch as a :class:`BatchSummary`."""
        return BatchSummary(
            np.array(self.prefill_tokens, dtype=np.int64),
            np.array(self.prefill_context, dtype=np.int64),
            self.n_decodes,
            self.decode_context_sum,
            self.n_seqs,
        )


@dataclass(frozen=True, slots=True)
class Features:
    """Per-point aggregates the fitted form needs (aligned float64 arrays).

    Attributes:
        tokens: All batch tokens ``T``.
        attention: ``Σ c (x + c / 2)`` over prefill chunks.
        prefill_context: ``Σ x`` over prefill chunks.
        n_decodes: Decode rows.
        decode_context_sum: Decode context sum.
    """

    tokens: FloatArray
    attention: FloatArray
    prefill_context: FloatArray
    n_decodes: FloatArray
    decode_context_sum: FloatArray

    @classmethod
    def of(cls, points: Sequence[MeasuredPoint]) -> Features:
        """Aggregate ``points``."""
        rows = [
            (
                sum(p.prefill_tokens) + p.n_decodes,
                sum(c * x for c, x in zip(p.prefill_tokens, p.prefill_context, strict=True))
                + 0.5 * sum(c * c for c in p.prefill_tokens),
                sum(p.prefill_context),
                p.n_decodes,
                p.decode_context_sum,
            )
            for p in points
        ]
        cols = np.array(rows, dtype=np.float64).reshape(len(rows), 5).T
        return cls(cols[0], cols[1], cols[2], cols[3], cols[4])


def _tile_ceil_array(tokens: FloatArray, tile: int) -> FloatArray:
    return np.ceil(tokens / tile) * tile if tile > 1 else tokens


@dataclass(frozen=True, slots=True)
class FittedParams:
    """Coefficients of the ``tile_knee_linear`` form (module docstring); times in seconds.

    Attributes:
        tile_tokens: GEMM tile for the token count (0 or 1: no rounding).
        knee_tokens: Tile-rounded token count below which the token term is zero.
        c0: Intercept (> 0).
        c_tok: Seconds per tile-rounded token above the knee.
        c_attn: Seconds per unit of ``Σ c (x + c / 2)`` (prefill attention).
        c_pre_ctx: Seconds per cached token read by prefill chunks.
        c_dec: Seconds per decode row.
        c_kv: Seconds per cached token read by decode rows.
    """

    form: ClassVar[str] = "tile_knee_linear"
    tile_tokens: int
    knee_tokens: int
    c0: float
    c_tok: float
    c_attn: float
    c_pre_ctx: float
    c_dec: float
    c_kv: float

    def __post_init__(self) -> None:
        """Check that the coefficients keep times positive and monotone."""
        if self.tile_tokens < 0 or self.knee_tokens < 0:
            raise ValueError(
                f"FittedParams: tile_tokens={self.tile_tokens}, knee_tokens={self.knee_tokens} must be >= 0"
            )
        if not (self.c0 > 0.0 and math.isfinite(self.c0)):
            raise ValueError(f"FittedParams: c0={self.c0} must be > 0 seconds (every iteration takes time)")
        for name in COEFFICIENTS[1:]:
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"FittedParams: {name}={value} must be a finite number >= 0 (keeps time monotone)")

    def coefficients(self) -> dict[str, float]:
        """The coefficients by name (``c0`` ... ``c_kv``)."""
        return {name: float(getattr(self, name)) for name in COEFFICIENTS}

    def compiled(self) -> CompiledCost:
        """The compiled form (``TILE_KNEE_LINEAR``) that evaluates these coefficients."""
        values = {**self.coefficients(), "tile_tokens": self.tile_tokens, "knee_tokens": self.knee_tokens}
        return CompiledCost.of(TILE_KNEE_LINEAR, values)


@dataclass(frozen=True, slots=True)
class Validation:
    """Error of a fitted model on held-out points (on the training points when none were held out).

    Attributes:
        mape: Mean absolute percentage error, as a fraction (0.02 = 2%).
        max_abs_rel_error: Largest absolute relative error, as a fraction.
        n_train: Points used to fit.
        n_holdout: Points used to validate (0: validated on the training points).
        median_abs_error: Median absolute relative error (schema 2; None in schema-1 profiles).
        p90_abs_error: 90th percentile of the absolute relative errors (schema 2; None in schema-1 profiles).
    """

    mape: float
    max_abs_rel_error: float
    n_train: int
    n_holdout: int
    median_abs_error: float | None = None
    p90_abs_error: float | None = None

    def __post_init__(self) -> None:
        """Check the statistics."""
        stats = (self.mape, self.max_abs_rel_error, self.median_abs_error or 0.0, self.p90_abs_error or 0.0)
        if not all(v >= 0.0 for v in stats):
            raise ValueError(
                f"Validation: mape={self.mape}, max_abs_rel_error={self.max_abs_rel_error}, median_abs_error="
                f"{self.median_abs_error} and p90_abs_error={self.p90_abs_error} must be >= 0"
            )
        if self.n_train < 0 or self.n_holdout < 0:
            raise ValueError(f"Validation: n_train={self.n_train} and n_holdout={self.n_holdout} must be >= 0")

    @classmethod
    def of_errors(cls, rel_errors: FloatArray, n_train: int, n_holdout: int) -> Validation:
        """Statistics of signed relative errors ``predicted / measured - 1``."""
        a = np.abs(np.asarray(rel_errors, dtype=np.float64))
        if a.size == 0:
            raise ValueError("Validation.of_errors: no errors to summarise (validate on at least one point)")
        return cls(float(a.mean()), float(a.max()), n_train, n_holdout, float(np.median(a)), float(np.quantile(a, 0.9)))


@dataclass(frozen=True, slots=True)
class ProfileFit:
    """Result of :func:`fit_profile`.

    Attributes:
        params: The fitted coefficients.
        validation: Their error on the held-out points.
    """

    params: FittedParams
    validation: Validation


def relative_errors(params: FittedParams | OperatorParams, points: Sequence[MeasuredPoint]) -> FloatArray:
    """Signed relative errors ``(predicted - measured) / measured`` of ``params`` on ``points``."""
    measured = np.array([p.seconds for p in points], dtype=np.float64)
    cols = BatchColumns.of([p.summary() for p in points])
    return predict(params.compiled(), cols) / measured - 1.0


def _design(features: Features, tile: int, knee: float) -> FloatArray:
    over = np.maximum(_tile_ceil_array(features.tokens, tile) - knee, 0.0)
    ones = np.ones_like(over)
    cols = (ones, over, features.attention, features.prefill_context, features.n_decodes, features.decode_context_sum)
    return np.column_stack(cols)


def _fit_knee(features: Features, seconds: FloatArray, tile: int, knee: int) -> tuple[float, FittedParams]:
    design = _design(features, tile, knee) / seconds[:, None]  # relative-error weighting
    coef = nonneg_lstsq(design, np.ones_like(seconds))
    residual = float(np.sum((design @ coef - 1.0) ** 2))
    values = dict(zip(COEFFICIENTS, coef.tolist(), strict=True))
    values["c0"] = max(values["c0"], MIN_INTERCEPT_S)
    return residual, FittedParams(tile_tokens=tile, knee_tokens=knee, **values)


def default_knees(features: Features, tile: int, max_candidates: int = 64) -> list[int]:
    """Candidate knees: 0 and up to ``max_candidates`` quantiles of the tile-rounded token counts."""
    tokens = np.unique(_tile_ceil_array(features.tokens, tile))
    if len(tokens) > max_candidates:
        tokens = np.unique(np.quantile(tokens, np.linspace(0.0, 1.0, max_candidates), method="nearest"))
    return sorted({0, *(int(t) for t in tokens)})


def fit_profile(
    points: Sequence[MeasuredPoint],
    *,
    tile_tokens: int = 0,
    knees: Sequence[int] | None = None,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> ProfileFit:
    """Fit the ``tile_knee_linear`` form to measured points by non-negative least squares on relative error.

    For each candidate knee the coefficients solve a linear least squares problem; the knee with the smallest
    training error wins. A seeded random ``holdout_fraction`` of the points is kept out of the fit and used for
    :class:`Validation`.

    Args:
        points: Measured points (at least 6 after the hold-out).
        tile_tokens: GEMM tile used to round the token count (0: none).
        knees: Candidate knees in tokens; default :func:`default_knees`.
        holdout_fraction: Fraction of points held out for validation, in [0, 1).
        seed: Seed of the hold-out split.

    Returns:
        The fitted parameters and their validation error.

    Raises:
        ValueError: Too few points, or an argument out of range.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction={holdout_fraction} must be in [0, 1), e.g. 0.2")
    order = np.random.default_rng(seed).permutation(len(points))
    n_hold = round(holdout_fraction * len(points))
    train = [points[i] for i in order[n_hold:]]
    hold = [points[i] for i in order[:n_hold]]
    if len(train) < len(COEFFICIENTS):
        raise ValueError(f"fit_profile: {len(train)} training points; need at least {len(COEFFICIENTS)} (measure more)")
    features = Features.of(train)
    seconds = np.array([p.seconds for p in train], dtype=np.float64)
    candidates = list(knees) if knees is not None else default_knees(features, tile_tokens)
    best = min((_fit_knee(features, seconds, tile_tokens, int(k)) for k in candidates), key=lambda r: r[0])
    params = best[1]
    validation = Validation.of_errors(relative_errors(params, hold or train), len(train), len(hold))
    return ProfileFit(params, validation)
