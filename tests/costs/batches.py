"""Random batch summaries and the cost models the contract tests run over."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.core.protocols import CostModel
from llmsched_gym.costs import FittedParams, OperatorParams, ProfileCostModel, make_cost_model
from llmsched_gym.hardware import GPUS, MODELS

OPERATOR_SAMPLE = OperatorParams(
    fixed_s=1e-3, floor_s=2e-2, host_seq_s=3e-4, overlap_p=2.5, weights_s=8e-3, token_s=2e-5, seq_s=4e-5,
    gemm_p=3.0, tile_tokens=64, chunk_s=5e-4, attn_s=2e-11, prefill_ctx_s=1e-8, decode_s=1e-5, kv_s=2e-8,
    comm_s=1e-6, comm_latency_s=2e-4,
)  # fmt: skip
SAMPLE_PARAMS = FittedParams(
    tile_tokens=64, knee_tokens=256, c0=8e-3, c_tok=2.4e-5, c_attn=1.3e-11, c_pre_ctx=2e-7, c_dec=1e-5, c_kv=2.3e-7
)

Case = tuple[str, str, dict[str, object]]


def _case(case_id: str, name: str, **kwargs: object) -> Case:
    return case_id, name, kwargs


# (id, registry name, kwargs). Every registry entry, over every GPU x model for the hardware-dependent ones.
MODEL_CASES: tuple[Case, ...] = (
    _case("unit", "unit"),
    _case("profile", "profile"),
    _case("profile-operator", "profile"),
    _case("profile-shipped-A100-70B-tp4", "profile", gpu="A100-80GB", model="Llama-2-70B", tp=4),
    _case("roofline-cuda-graphs", "roofline", preset="cuda-graphs"),
    *(
        _case(f"{name}-{g}-{m}", name, gpu=g, model=m)
        for name in ("roofline", "affine_kv", "tile_step")
        for g in GPUS
        for m in MODELS
    ),
    *(_case(f"roofline-tiled-{g}", "roofline", gpu=g, tile_tokens=128) for g in GPUS),
    _case("roofline-70B-tp2", "roofline", model="Llama-2-70B", tp=2),
    _case("roofline-70B-tp8-A100", "roofline", model="Llama-2-70B", tp=8, gpu="A100-80GB"),
    _case("roofline-mistral-tp4", "roofline", model="Mistral-7B", tp=4),
)
CASE_IDS = tuple(case[0] for case in MODEL_CASES)
# Hypothesis runs over every roofline case and one case of each structurally linear model (the seeded random-batch
# contract tests cover all cases).
PROPERTY_CASE_IDS = tuple(
    c for c in CASE_IDS if not c.startswith(("affine_kv", "tile_step")) or c.endswith("H100-80GB-Llama-2-7B")
)


@functools.cache
def build(case_id: str) -> CostModel:
    """The cost model of a case (cached: fitted analytic models fit once per session)."""
    _, name, kwargs = next(case for case in MODEL_CASES if case[0] == case_id)
    if case_id == "profile":
        return ProfileCostModel(SAMPLE_PARAMS)
    if case_id == "profile-operator":
        return ProfileCostModel(OPERATOR_SAMPLE)
    return make_cost_model(name, **kwargs)  # type: ignore[arg-type]


def random_batch(rng: np.random.Generator, *, max_chunks: int = 4, max_decodes: int = 256) -> BatchSummary:
    """A random mixed batch (chunks up to 2048 tokens over up to 8000 cached, decodes up to 8000 context)."""
    n_chunks = int(rng.integers(0, max_chunks + 1))
    n_dec = int(rng.integers(0, max_decodes + 1))
    chunks = rng.integers(1, 2049, size=n_chunks).astype(np.int64)
    context = rng.integers(0, 8001, size=n_chunks).astype(np.int64)
    dsum = int(rng.integers(0, 8001, size=n_dec).sum())
    return BatchSummary(chunks, context, n_dec, dsum, n_chunks + n_dec)


def make_batch(pairs: list[tuple[int, int]], decode_contexts: list[int]) -> BatchSummary:
    """A batch from ``(chunk, context)`` pairs and per-decode contexts."""
    return BatchSummary.of(pairs, len(decode_contexts), sum(decode_contexts))


chunk_pairs = st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 16384)), max_size=4)
decode_contexts = st.lists(st.integers(0, 16384), max_size=300)
