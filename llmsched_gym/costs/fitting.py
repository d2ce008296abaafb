"""Derive the papers' analytic models (WAIT's affine-in-KV, SLAI's tile steps) from any cost model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.protocols import CostModel
from llmsched_gym.costs._common import nonneg_lstsq
from llmsched_gym.costs.analytic import AffineKVCostModel, TileStepCostModel, batch_kv_tokens

MIN_INTERCEPT_S = 1e-9
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_CONTEXTS = (128, 256, 512, 1024, 2048)


def _relative_fit(features: FloatArray, seconds: FloatArray) -> FloatArray:
    """Non-negative least squares of ``features @ coef ≈ seconds`` minimising relative error."""
    return nonneg_lstsq(features / seconds[:, None], np.ones_like(seconds))


def fit_affine_kv(
    model: CostModel,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    contexts: Sequence[int] = DEFAULT_CONTEXTS,
) -> AffineKVCostModel:
    """Fit WAIT's ``t = d0 + d1 * KV tokens`` (specs/baselines.md §2) to ``model`` over decode-only batches.

    The grid has, for every batch size ``B`` and context ``c``, a batch of ``B`` decodes each with ``c`` cached
    tokens (WAIT App. H.3 profiles decode batches of 1 to 256 sequences). Coefficients minimise the squared relative
    error and are non-negative; ``d0`` is at least 1 ns.

    Args:
        model: Any cost model (usually the roofline or a profile).
        batch_sizes: Decode batch sizes of the grid.
        contexts: Per-sequence cached tokens of the grid.

    Returns:
        The fitted :class:`AffineKVCostModel`.
    """
    batches = [BatchSummary.of(n_decodes=b, decode_context_sum=b * c) for b in batch_sizes for c in contexts]
    if len(batches) < 2:
        raise ValueError("fit_affine_kv needs at least 2 grid batches; pass more batch_sizes or contexts")
    seconds = np.array([model.iteration_time(b) for b in batches], dtype=np.float64)
    kv = np.array([batch_kv_tokens(b) for b in batches], dtype=np.float64)
    d0, d1 = _relative_fit(np.column_stack((np.ones_like(kv), kv)), seconds)
    return AffineKVCostModel(max(float(d0), MIN_INTERCEPT_S), float(d1))


def fit_tile_step(
    model: CostModel,
    *,
    tile: int = 128,
    batch_tokens: Sequence[int] = (64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096),
    decode_counts: Sequence[int] = (0, 8, 32, 64, 128, 256),
    contexts: Sequence[int] = (256, 1024, 2048),
) -> TileStepCostModel:
    """Fit SLAI's tile-step model to ``model`` with SLAI's profiling recipe (N decodes plus a filler prefill).

    Each grid batch has ``N`` decodes with ``c`` cached tokens each and one prefill chunk of ``B - N`` tokens over
    an empty context (``hold_n_scheduler.py`` in the SLAI repo), for every ``B``, ``N < B`` and ``c``. Coefficients
    minimise the squared relative error and are non-negative.

    Args:
        model: Any cost model.
        tile: Tile size of the fitted model.
        batch_tokens: Total batch tokens ``B`` of the grid.
        decode_counts: Decode counts ``N``.
        contexts: Decode cached tokens ``c``.

    Returns:
        The fitted :class:`TileStepCostModel`.
    """
    batches = [
        BatchSummary.of([(b - n, 0)] if b > n else [], n_decodes=n, decode_context_sum=n * c)
        for b in batch_tokens
        for n in decode_counts
        if n <= b
        for c in contexts
    ]
    if len(batches) < 4:
        raise ValueError("fit_tile_step needs at least 4 grid batches; pass more batch_tokens or decode_counts")
    seconds = np.array([model.iteration_time(b) for b in batches], dtype=np.float64)
    tiles = np.array([-(-b.total_tokens // tile) for b in batches], dtype=np.float64)
    n_dec = np.array([b.n_decodes for b in batches], dtype=np.float64)
    dsum = np.array([b.decode_context_sum for b in batches], dtype=np.float64)
    coef = _relative_fit(np.column_stack((np.ones_like(tiles), tiles, n_dec, dsum)), seconds)
    base, per_tile, per_decode, per_kv = (float(v) for v in coef)
    return TileStepCostModel(tile, per_tile, max(base, MIN_INTERCEPT_S), per_decode, per_kv)
