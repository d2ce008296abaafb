"""Compiled (numba) forms of the closed-form cost models, for the engine's fused step.

A cost model that can be evaluated here exposes ``compiled_form()`` returning a
:class:`CompiledCost`: a form number and its coefficient vector. The kernels reproduce the Python
models' ``iteration_time`` and ``stretch_times`` operation for operation, so simulated times are
bit-identical whichever path computes them (tested in ``tests/costs/test_compiled.py``).

Forms and coefficient layouts:

* :data:`ROOFLINE` — ``[overhead, tile, c_lin, c_head, t_weights, c_attn, c_kv, c_ar, ar_lat]``
  (:class:`~llmsched_gym.costs.roofline.RooflineCostModel`);
* :data:`TILE_KNEE_LINEAR` — ``[c0, tile, c_tok, knee, c_dec, c_kv, c_attn, c_pre_ctx]``
  (:class:`~llmsched_gym.costs.profile.ProfileCostModel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from llmsched_gym.core.batch import FloatArray

ROOFLINE = 1
TILE_KNEE_LINEAR = 2
_N_COEF = {ROOFLINE: 9, TILE_KNEE_LINEAR: 8}


@dataclass(frozen=True, slots=True)
class CompiledCost:
    """A cost model in compiled form.

    Attributes:
        form: :data:`ROOFLINE` or :data:`TILE_KNEE_LINEAR`.
        coef: The form's coefficients (layout in the module docstring).
    """

    form: int
    coef: FloatArray

    def __post_init__(self) -> None:
        """Check the form and the coefficient count."""
        if self.form not in _N_COEF:
            raise ValueError(f"CompiledCost: form={self.form} must be one of {sorted(_N_COEF)}")
        if self.coef.shape != (_N_COEF[self.form],) or self.coef.dtype != np.float64:
            raise ValueError(
                f"CompiledCost: form {self.form} needs {_N_COEF[self.form]} float64 coefficients, "
                f"got shape {self.coef.shape} of {self.coef.dtype}"
            )


@njit(cache=True)
def _gemm_tokens(tokens, tile):  # type: ignore[no-untyped-def]
    if tile > 1:
        return -(-tokens // tile) * tile
    return tokens


@njit(cache=True)
def _roofline_linear(coef, tokens, n_seqs):  # type: ignore[no-untyped-def]
    return max(coef[2] * _gemm_tokens(tokens, np.int64(coef[1])) + coef[3] * n_seqs, coef[4])


@njit(cache=True)
def _roofline_fixed(coef, tokens, n_seqs):  # type: ignore[no-untyped-def]
    return coef[0] + _roofline_linear(coef, tokens, n_seqs) + coef[7] * tokens + coef[8]


@njit(cache=True)
def _knee_fixed(coef, tokens, n_dec):  # type: ignore[no-untyped-def]
    gemm = _gemm_tokens(tokens, np.int64(coef[1]))
    return coef[0] + coef[2] * max(gemm - np.int64(coef[3]), 0) + coef[4] * n_dec


@njit(cache=True)
def iteration_time(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs):  # type: ignore[no-untyped-def]
    """One iteration's duration from the batch aggregates (``s_*`` as in ``prefill_aggregates``)."""
    tokens = s_c + n_dec
    if form == ROOFLINE:
        t = coef[0] + _roofline_linear(coef, tokens, n_seqs) + coef[6] * (dec_ctx + n_dec) + coef[7] * tokens
        if s_c:
            t += max(coef[5] * (s_cx + 0.5 * s_cc), coef[6] * (s_x + s_c))
        return t + coef[8]
    t = _knee_fixed(coef, tokens, n_dec) + coef[5] * dec_ctx
    if s_c:
        t += coef[6] * (s_cx + 0.5 * s_cc) + coef[7] * s_x
    return t


@njit(cache=True)
def stretch_times(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs, k):  # type: ignore[no-untyped-def]
    """Durations of ``k`` repetitions with growing contexts, as the models' ``stretch_times``."""
    out = np.empty(k, np.float64)
    if form == ROOFLINE:
        c_kv = coef[6]
        first = _roofline_fixed(coef, s_c + n_dec, n_seqs) + c_kv * (dec_ctx + n_dec)
        slope = c_kv * n_dec
        for j in range(k):
            jf = np.float64(j)
            v = first + slope * jf
            if s_c:
                compute = coef[5] * (s_cx + 0.5 * s_cc) + (coef[5] * s_cc) * jf
                v += max(compute, c_kv * (s_x + s_c) + (c_kv * s_c) * jf)
            out[j] = v
        return out
    first = _knee_fixed(coef, s_c + n_dec, n_dec) + coef[5] * dec_ctx
    slope = coef[5] * n_dec
    if s_c:
        first += coef[6] * (s_cx + 0.5 * s_cc) + coef[7] * s_x
        slope += coef[6] * s_cc + coef[7] * s_c
    for j in range(k):
        out[j] = first + slope * np.float64(j)
    return out


@njit(cache=True)
def aggregates(pre_tokens, pre_ctx):  # type: ignore[no-untyped-def]
    """``(Σ c, Σ c·x, Σ c², Σ x)`` over prefill chunks ``c`` with cached context ``x``."""
    s_c = s_cx = s_cc = s_x = 0
    for i in range(pre_tokens.size):
        c = pre_tokens[i]
        x = pre_ctx[i]
        s_c += c
        s_cx += c * x
        s_cc += c * c
        s_x += x
    return s_c, s_cx, s_cc, s_x


def times(cost: CompiledCost, chunks: list[tuple[int, int]], n_dec: int, dec_ctx: int, k: int) -> FloatArray:
    """Python entry for tests: durations of ``k`` iterations (``k == 1``: ``iteration_time``)."""
    tok = np.array([c for c, _ in chunks], dtype=np.int64)
    ctx = np.array([x for _, x in chunks], dtype=np.int64)
    s_c, s_cx, s_cc, s_x = aggregates(tok, ctx)
    n_seqs = len(chunks) + n_dec
    if k == 1:
        return np.array([iteration_time(cost.form, cost.coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs)])
    out: FloatArray = stretch_times(cost.form, cost.coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs, k)
    return out
