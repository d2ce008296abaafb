"""Compiled (numba) cost forms: the single source of every closed-form iteration-time formula.

A cost model with a closed form exposes ``compiled_form()`` returning a :class:`CompiledCost`: a form number
and its coefficient vector. The Python cost models evaluate themselves by calling these kernels, and the
engine's fused step calls the same kernels from compiled code, so both paths compute every time with one
formula (tested in ``tests/costs/test_compiled.py``). Coefficients are named: :data:`COEFFICIENT_NAMES` lists
each form's names in vector order, and the kernels index the vector through the named constants below.

Forms (docs/cost_models.md, docs/profiles.md):

* :data:`OPERATOR` — the operator form of the roofline and of schema-2 calibration profiles. With ``T`` batch
  tokens (``T_g`` rounded up to ``tile_tokens``), ``S`` sequences, ``N`` decodes with context sum ``D`` and
  prefill chunks ``c`` over cached context ``x``::

      gemm = smax(weights_s, token_s * T_g + seq_s * S; gemm_p)                 linear layers and LM head
      gpu  = gemm + chunk_s * (S - N) + attn_s * Σ c (x + c / 2) + prefill_ctx_s * Σ x
           + decode_s * N + kv_s * D + [T > 0] (comm_latency_s + comm_s * T)
      host = floor_s + host_seq_s * S                                          launches, per-row host work
      t    = fixed_s + smax(host, gpu; overlap_p)

  where ``smax(a, b; p) = (a^p + b^p)^(1/p)`` is a smooth maximum (``p = 1``: the sum; large ``p``: the max).
* :data:`TILE_KNEE_LINEAR` — the form of schema-1 calibration profiles::

      t = c0 + c_tok * max(0, T_g - knee) + c_dec * N + c_kv * D + c_attn * Σ c (x + c / 2) + c_pre_ctx * Σ x

Every coefficient is >= 0 (``overlap_p``, ``gemm_p`` >= 1), so times are non-negative and never decrease when
tokens, sequences or contexts grow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numba import njit

from llmsched_gym.core.batch import FloatArray

TILE_KNEE_LINEAR = 2
OPERATOR = 3

COEFFICIENT_NAMES: Mapping[int, tuple[str, ...]] = MappingProxyType(
    {
        TILE_KNEE_LINEAR: ("c0", "tile_tokens", "c_tok", "knee_tokens", "c_dec", "c_kv", "c_attn", "c_pre_ctx"),
        OPERATOR: (
            "fixed_s",
            "floor_s",
            "host_seq_s",
            "overlap_p",
            "weights_s",
            "token_s",
            "seq_s",
            "gemm_p",
            "tile_tokens",
            "chunk_s",
            "attn_s",
            "prefill_ctx_s",
            "decode_s",
            "kv_s",
            "comm_s",
            "comm_latency_s",
        ),
    }
)
"""Coefficient names of each form, in the order of the coefficient vector."""
FORM_NAMES: Mapping[int, str] = MappingProxyType({TILE_KNEE_LINEAR: "tile_knee_linear", OPERATOR: "operator"})

# Named positions in the coefficient vectors (numba reads module constants as compile-time constants).
K_C0, K_TILE, K_TOK, K_KNEE, K_DEC, K_KV, K_ATTN, K_PRE_CTX = range(8)
(
    O_FIXED,
    O_FLOOR,
    O_HOST_SEQ,
    O_OVERLAP_P,
    O_WEIGHTS,
    O_TOKEN,
    O_SEQ,
    O_GEMM_P,
    O_TILE,
    O_CHUNK,
    O_ATTN,
    O_PRE_CTX,
    O_DECODE,
    O_KV,
    O_COMM,
    O_COMM_LAT,
) = range(16)


@dataclass(frozen=True, slots=True)
class CompiledCost:
    """A cost model in compiled form.

    Attributes:
        form: :data:`OPERATOR` or :data:`TILE_KNEE_LINEAR`.
        coef: The form's coefficients, in the order of ``COEFFICIENT_NAMES[form]``.
    """

    form: int
    coef: FloatArray

    def __post_init__(self) -> None:
        """Check the form and the coefficient count."""
        if self.form not in COEFFICIENT_NAMES:
            raise ValueError(f"CompiledCost: form={self.form} must be one of {sorted(COEFFICIENT_NAMES)}")
        n = len(COEFFICIENT_NAMES[self.form])
        if self.coef.shape != (n,) or self.coef.dtype != np.float64:
            raise ValueError(
                f"CompiledCost: form {self.form} needs {n} float64 coefficients, "
                f"got shape {self.coef.shape} of {self.coef.dtype}"
            )

    @classmethod
    def of(cls, form: int, values: Mapping[str, float]) -> CompiledCost:
        """Build from named coefficients (every name of the form is required, no other name is accepted)."""
        names = COEFFICIENT_NAMES.get(form)
        if names is None:
            raise ValueError(f"CompiledCost: form={form} must be one of {sorted(COEFFICIENT_NAMES)}")
        missing = [n for n in names if n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise ValueError(f"CompiledCost.of({FORM_NAMES[form]}): missing {missing}, unknown {unknown}")
        return cls(form, np.array([float(values[n]) for n in names], dtype=np.float64))

    def named(self) -> dict[str, float]:
        """The coefficients by name."""
        return dict(zip(COEFFICIENT_NAMES[self.form], self.coef.tolist(), strict=True))


@njit(cache=True)
def _gemm_tokens(tokens, tile):  # type: ignore[no-untyped-def]
    if tile > 1:
        return -(-tokens // tile) * tile
    return tokens


@njit(cache=True)
def smooth_max(a, b, p):  # type: ignore[no-untyped-def]
    """``(a^p + b^p)^(1/p)`` for ``a, b >= 0`` and ``p >= 1``, without overflow.

    For ``p`` a power of two (what fits and presets use) it takes ``log2 p`` squarings and square roots instead of
    two ``pow`` calls, a few nanoseconds; any other ``p`` falls back to ``pow``.
    """
    hi = max(a, b)
    lo = min(a, b)
    if lo <= 0.0:
        return max(hi, 0.0)
    ratio_p = lo / hi
    q = p
    while q > 1.0:
        ratio_p *= ratio_p
        q *= 0.5
    if q != 1.0:
        return hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)
    s = 1.0 + ratio_p
    q = p
    while q > 1.0:
        s = np.sqrt(s)
        q *= 0.5
    return hi * s


@njit(cache=True)
def _operator_gpu(coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs):  # type: ignore[no-untyped-def]
    """The GPU-work part ``gpu`` of the operator form (module docstring)."""
    tokens = s_c + n_dec
    gemm_tokens = _gemm_tokens(tokens, np.int64(coef[O_TILE]))
    linear = coef[O_TOKEN] * gemm_tokens + coef[O_SEQ] * n_seqs
    gpu = smooth_max(coef[O_WEIGHTS], linear, coef[O_GEMM_P]) + coef[O_CHUNK] * (n_seqs - n_dec)
    gpu += coef[O_DECODE] * n_dec + coef[O_KV] * dec_ctx
    if s_c:
        gpu += coef[O_ATTN] * (s_cx + 0.5 * s_cc) + coef[O_PRE_CTX] * s_x
    if tokens:
        gpu += coef[O_COMM_LAT] + coef[O_COMM] * tokens
    return gpu


@njit(cache=True)
def _knee_fixed(coef, tokens, n_dec):  # type: ignore[no-untyped-def]
    gemm = _gemm_tokens(tokens, np.int64(coef[K_TILE]))
    return coef[K_C0] + coef[K_TOK] * max(gemm - np.int64(coef[K_KNEE]), 0) + coef[K_DEC] * n_dec


@njit(cache=True)
def iteration_time(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs):  # type: ignore[no-untyped-def]
    """One iteration's duration from the batch aggregates (``s_*`` as returned by :func:`aggregates`)."""
    if form == OPERATOR:
        gpu = _operator_gpu(coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs)
        host = coef[O_FLOOR] + coef[O_HOST_SEQ] * n_seqs
        return coef[O_FIXED] + smooth_max(host, gpu, coef[O_OVERLAP_P])
    t = _knee_fixed(coef, s_c + n_dec, n_dec) + coef[K_KV] * dec_ctx
    if s_c:
        t += coef[K_ATTN] * (s_cx + 0.5 * s_cc) + coef[K_PRE_CTX] * s_x
    return t


@njit(cache=True)
def stretch_times(form, coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs, k):  # type: ignore[no-untyped-def]
    """Durations of ``k`` repetitions of one plan (``CostModel.stretch_times``).

    Repetition ``j`` has every decode context grown by ``j`` and every chunk's context by ``j`` times its size.
    """
    out = np.empty(k, np.float64)
    if form == OPERATOR:
        first = _operator_gpu(coef, s_c, s_cx, s_cc, s_x, n_dec, dec_ctx, n_seqs)
        host = coef[O_FLOOR] + coef[O_HOST_SEQ] * n_seqs
        slope = coef[O_KV] * n_dec
        if s_c:
            slope += coef[O_ATTN] * s_cc + coef[O_PRE_CTX] * s_c
        for j in range(k):
            out[j] = coef[O_FIXED] + smooth_max(host, first + slope * np.float64(j), coef[O_OVERLAP_P])
        return out
    first = _knee_fixed(coef, s_c + n_dec, n_dec) + coef[K_KV] * dec_ctx
    slope = coef[K_KV] * n_dec
    if s_c:
        first += coef[K_ATTN] * (s_cx + 0.5 * s_cc) + coef[K_PRE_CTX] * s_x
        slope += coef[K_ATTN] * s_cc + coef[K_PRE_CTX] * s_c
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
