"""The iteration-time models the theory papers assume: unit time (MC-SF), affine in KV (WAIT), tile steps (SLAI).

See specs/baselines.md §2 and docs/cost_models.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.costs._common import check_k, prefill_aggregates


@dataclass(frozen=True, slots=True)
class UnitCostModel:
    """Every iteration takes the same time whatever the batch (MC-SF's theory model: one round = one unit).

    Formula: ``t = duration`` (1.0 by default, so simulated "seconds" count iterations).

    Attributes:
        duration: Time of every iteration.
    """

    name: ClassVar[str] = "unit"
    duration: float = 1.0

    def __post_init__(self) -> None:
        """Check the duration is positive and finite."""
        if not (self.duration > 0.0 and math.isfinite(self.duration)):
            raise ValueError(f"UnitCostModel: duration={self.duration} must be a positive finite number (e.g. 1.0)")

    def iteration_time(self, batch: BatchSummary) -> float:
        """Return ``duration``."""
        return self.duration

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Return ``k`` copies of ``duration``."""
        check_k(k)
        return np.full(k, self.duration, dtype=np.float64)


def batch_kv_tokens(batch: BatchSummary) -> int:
    """KV tokens the batch's sequences hold at the end of the iteration (WAIT's Σ (l_i + s_i)).

    A decode row with ``x`` cached tokens holds ``x + 1`` afterwards; a prefill chunk of ``c`` tokens over ``x``
    cached tokens holds ``x + c``. Total: ``decode_context_sum + n_decodes + Σ (prefill_context + prefill_tokens)``.
    For WAIT's unchunked requests (prompt ``l``, decode stage ``s``, stage 0 = the prefill iteration) this is
    exactly ``Σ (l_i + s_i)``.
    """
    s_c, _, _, s_x = prefill_aggregates(batch)
    return batch.decode_context_sum + batch.n_decodes + s_c + s_x


@dataclass(frozen=True, slots=True)
class AffineKVCostModel:
    """Affine in the KV tokens of the batch (WAIT / Nested WAIT, Ao et al., arXiv 2504.11320 §2.2 Eq. 1).

    Formula: ``t = d0 + d1 * K`` with ``K`` = :func:`batch_kv_tokens` (``decode_context_sum + n_decodes +
    Σ (prefill_context + prefill_tokens)``, the KV held after the iteration). The paper's Llama-2-7B / A100 fit is
    d0 ≈ 0.276 s and d1 ≈ 1.15e-5 s per token, but that intercept times a whole batch run; prefer
    :func:`~llmsched_gym.costs.fitting.fit_affine_kv` on a per-iteration model (specs/baselines.md §2).

    Attributes:
        d0: Intercept, seconds per iteration (> 0).
        d1: Seconds per KV token of the batch (>= 0).
    """

    name: ClassVar[str] = "affine_kv"
    d0: float
    d1: float

    def __post_init__(self) -> None:
        """Check the coefficients."""
        if not (self.d0 > 0.0 and math.isfinite(self.d0)):
            raise ValueError(f"AffineKVCostModel: d0={self.d0} must be a positive finite number of seconds")
        if not (self.d1 >= 0.0 and math.isfinite(self.d1)):
            raise ValueError(f"AffineKVCostModel: d1={self.d1} must be >= 0 (seconds per KV token)")

    def iteration_time(self, batch: BatchSummary) -> float:
        """Return ``d0 + d1 * batch_kv_tokens(batch)``."""
        return self.d0 + self.d1 * batch_kv_tokens(batch)

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Each repetition adds ``n_decodes + Σ prefill_tokens`` KV tokens (vectorised)."""
        check_k(k)
        growth = batch.n_decodes + prefill_aggregates(batch)[0]
        return self.iteration_time(batch) + (self.d1 * growth) * np.arange(k, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class TileStepCostModel:
    """GEMM tile steps plus a decode term (SLAI/RAD, Bari et al., arXiv 2508.01002 §4; Sarathi-Serve §4.3).

    Formula: ``t = base_s + per_tile_s * ceil(T / tile) + per_decode_s * n_decodes + per_kv_token_s *
    decode_context_sum`` with ``T`` all tokens of the batch (prefill chunk tokens plus one per decode). Time is a
    step function of ``T`` that jumps exactly after each multiple of ``tile`` (257 tokens cost one tile more than
    256 with ``tile = 128``). Prefill context is ignored, as in the papers' model. The defaults are
    :func:`~llmsched_gym.costs.fitting.fit_tile_step` of the roofline's ``cuda-graphs`` preset (H100,
    Llama-2-7B), rounded.

    Attributes:
        tile: Tile size in tokens (>= 1).
        per_tile_s: Seconds per started tile of tokens.
        base_s: Fixed seconds per iteration (> 0).
        per_decode_s: Seconds per decode row.
        per_kv_token_s: Seconds per cached token read by decode rows.
    """

    name: ClassVar[str] = "tile_step"
    tile: int = 128
    per_tile_s: float = 3.1e-3
    base_s: float = 5.4e-3
    per_decode_s: float = 0.0
    per_kv_token_s: float = 2.3e-7

    def __post_init__(self) -> None:
        """Check the parameters."""
        if self.tile < 1:
            raise ValueError(f"TileStepCostModel: tile={self.tile} must be >= 1 token (e.g. 64 or 128)")
        if not (self.base_s > 0.0 and math.isfinite(self.base_s)):
            raise ValueError(f"TileStepCostModel: base_s={self.base_s} must be a positive finite number of seconds")
        for name in ("per_tile_s", "per_decode_s", "per_kv_token_s"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"TileStepCostModel: {name}={value} must be a finite number >= 0")

    def _fixed_part(self, batch: BatchSummary) -> float:
        """Base, tile and decode-count terms (everything but the decode-context term)."""
        n_dec = batch.n_decodes
        tokens = n_dec + prefill_aggregates(batch)[0]
        return self.base_s + self.per_tile_s * -(-tokens // self.tile) + self.per_decode_s * n_dec

    def iteration_time(self, batch: BatchSummary) -> float:
        """Return the tile-step time of ``batch``."""
        return self._fixed_part(batch) + self.per_kv_token_s * batch.decode_context_sum

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Token count is fixed, only the decode context grows (vectorised)."""
        check_k(k)
        slope = self.per_kv_token_s * batch.n_decodes
        return self.iteration_time(batch) + slope * np.arange(k, dtype=np.float64)
