"""The default cost model: an operator-level roofline of a Llama-style transformer on one GPU (or a TP group).

See docs/cost_models.md for the formula, the provenance of the default efficiencies and their fit to the
measured H100 anchors (``python -m llmsched_gym.costs.anchors`` regenerates that table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.cost_kernels import ROOFLINE, CompiledCost
from llmsched_gym.costs._common import check_k, prefill_aggregates
from llmsched_gym.hardware import GPUSpec, ModelSpec, check_tp, get_gpu, get_model

# Defaults fitted by llmsched_gym.costs.anchors.fit_roofline_defaults() to the H100 / Llama-2-7B measurements of
# design/executor.md (a test keeps them within rounding of the fit). Efficiencies are fractions of datasheet peaks.
DEFAULT_COMPUTE_EFFICIENCY = 0.54
DEFAULT_MEMORY_EFFICIENCY = 0.67
DEFAULT_ATTENTION_EFFICIENCY = 0.31
DEFAULT_OVERHEAD_S = 2.7e-3
DEFAULT_ALLREDUCE_EFFICIENCY = 0.8
DEFAULT_ALLREDUCE_LATENCY_S = 10e-6


@dataclass(frozen=True, slots=True)
class RooflineParams:
    """Efficiency and overhead parameters of :class:`RooflineCostModel`.

    Attributes:
        compute_efficiency: Fraction of peak FLOP/s the linear layers (GEMMs) reach when compute-bound.
        memory_efficiency: Fraction of peak HBM bandwidth achieved when streaming weights and KV.
        attention_efficiency: Fraction of peak FLOP/s prefill attention reaches (FlashAttention-2 measured ~0.31).
        overhead_s: Fixed per-iteration time (launches, scheduling, sampling, host work), seconds.
        tile_tokens: GEMM tile: the GEMM token count is rounded up to a multiple of it; 0 or 1 turns tiling off.
        allreduce_efficiency: Fraction of the GPU's interconnect bandwidth an all-reduce achieves (tp > 1).
        allreduce_latency_s: Fixed latency of one all-reduce, seconds (tp > 1).
        allreduce_bandwidth: Interconnect bandwidth in bytes/s; None uses the GPU spec's.
    """

    compute_efficiency: float = DEFAULT_COMPUTE_EFFICIENCY
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY
    attention_efficiency: float = DEFAULT_ATTENTION_EFFICIENCY
    overhead_s: float = DEFAULT_OVERHEAD_S
    tile_tokens: int = 0
    allreduce_efficiency: float = DEFAULT_ALLREDUCE_EFFICIENCY
    allreduce_latency_s: float = DEFAULT_ALLREDUCE_LATENCY_S
    allreduce_bandwidth: float | None = None

    def __post_init__(self) -> None:
        """Check ranges."""
        for name in ("compute_efficiency", "memory_efficiency", "attention_efficiency", "allreduce_efficiency"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"RooflineParams: {name}={value} must be in (0, 1] (a fraction of the peak)")
        for name in ("overhead_s", "allreduce_latency_s"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise ValueError(f"RooflineParams: {name}={value} must be >= 0 seconds")
        if self.tile_tokens < 0:
            raise ValueError(f"RooflineParams: tile_tokens={self.tile_tokens} must be >= 0 (0 turns tiling off)")
        if self.allreduce_bandwidth is not None and not self.allreduce_bandwidth > 0:
            raise ValueError(f"RooflineParams: allreduce_bandwidth={self.allreduce_bandwidth} must be > 0 or None")


class RooflineCostModel:
    """Operator-level roofline of one iteration (Sarathi-Serve §3.1 / Vidur style), per GPU of a TP group.

    With ``T`` batch tokens (``T_g`` after optional tile rounding), ``S`` sequences, chunks ``c`` over cached
    context ``x``, decode context sum ``D`` and ``N`` decodes::

        t = overhead
          + max(2 * P_lin * T_g / tp / (e_c * F) + 2 * V * H * S / tp / (e_c * F),  W / tp / (e_m * B))   # linear
          + max(4 * L * h * d / tp * sum(c * (x + c / 2)) / (e_a * F),  kv * sum(x + c) / (e_m * B))     # prefill attn
          + kv * (D + N) / (e_m * B)                                                                     # decode attn
          + [tp > 1] * 2 * L * (2 * (tp - 1) / tp * H * T * dtype / (e_r * NVLink) + latency)            # all-reduce

    where ``P_lin`` are the layers' GEMM weights, ``V * H`` the LM head (applied to one row per sequence),
    ``W`` the streamed weight bytes (all but the embedding table), ``kv`` the KV bytes per token per GPU,
    ``F`` / ``B`` the GPU's peak dense bf16 FLOP/s and HBM bandwidth. Defaults fit the H100 measurements of
    design/executor.md (docs/cost_models.md). It is the default model until measured profiles exist.

    Attributes:
        gpu: The GPU.
        model: The model shape.
        tp: Tensor-parallel degree.
        params: Efficiencies and overheads.
    """

    name: ClassVar[str] = "roofline"
    __slots__ = (
        "_ar_lat",
        "_c_ar",
        "_c_attn",
        "_c_head",
        "_c_kv",
        "_c_lin",
        "_overhead",
        "_t_weights",
        "_tile",
        "gpu",
        "model",
        "params",
        "tp",
    )

    def __init__(
        self,
        gpu: str | GPUSpec = "H100-80GB",
        model: str | ModelSpec = "Llama-2-7B",
        tp: int = 1,
        params: RooflineParams | None = None,
        **overrides: float | int | None,
    ) -> None:
        """Build the model.

        Args:
            gpu: GPU name or spec.
            model: Model name or spec.
            tp: Tensor-parallel degree (weights, heads and KV split over ``tp`` GPUs).
            params: Efficiency parameters; defaults to :class:`RooflineParams` ().
            **overrides: Individual :class:`RooflineParams` fields replacing those of ``params``.
        """
        self.gpu = get_gpu(gpu)
        self.model = get_model(model)
        check_tp(self.model, tp)
        self.tp = tp
        base = params or RooflineParams()
        fields = {name: getattr(base, name) for name in RooflineParams.__dataclass_fields__}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise TypeError(f"RooflineCostModel: unknown parameter(s) {sorted(unknown)}; known: {sorted(fields)}")
        self.params = RooflineParams(**{**fields, **overrides})  # type: ignore[arg-type]
        self._precompute()

    def _precompute(self) -> None:
        g, m, p, tp = self.gpu, self.model, self.params, self.tp
        flops = p.compute_efficiency * g.peak_flops
        bandwidth = p.memory_efficiency * g.hbm_bandwidth
        self._overhead = p.overhead_s
        self._tile = p.tile_tokens
        self._c_lin = 2.0 * m.n_layers * m.layer_linear_params / tp / flops
        self._c_head = 2.0 * m.vocab * m.hidden / tp / flops
        self._t_weights = m.streamed_weight_bytes / tp / bandwidth
        self._c_attn = 4.0 * m.n_layers * m.n_heads * m.head_dim / tp / (p.attention_efficiency * g.peak_flops)
        self._c_kv = m.kv_bytes_per_token(tp) / bandwidth
        self._c_ar = 0.0
        self._ar_lat = 0.0
        if tp > 1:
            link = p.allreduce_bandwidth or g.interconnect_bandwidth
            if link is None:
                raise ValueError(f"{g.name} has no interconnect_bandwidth; pass allreduce_bandwidth= for tp={tp}")
            bytes_per_token = 2.0 * (tp - 1) / tp * m.hidden * m.dtype_bytes
            self._c_ar = 2 * m.n_layers * bytes_per_token / (p.allreduce_efficiency * link)
            self._ar_lat = 2 * m.n_layers * p.allreduce_latency_s

    def __repr__(self) -> str:
        return f"RooflineCostModel({self.gpu.name!r}, {self.model.name!r}, tp={self.tp}, params={self.params!r})"

    def compiled_form(self) -> CompiledCost:
        """The model as coefficients of the compiled roofline form (the engine's fused step uses it)."""
        coef = [self._overhead, self._tile, self._c_lin, self._c_head, self._t_weights, self._c_attn, self._c_kv]
        return CompiledCost(ROOFLINE, np.array([*coef, self._c_ar, self._ar_lat], dtype=np.float64))

    def iteration_time(self, batch: BatchSummary) -> float:
        """Duration of one iteration computing ``batch``, in seconds (formula in the class docstring)."""
        s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
        n_dec = batch.n_decodes
        tokens = s_c + n_dec
        tile = self._tile
        gemm_tokens = -(-tokens // tile) * tile if tile > 1 else tokens
        linear = max(self._c_lin * gemm_tokens + self._c_head * batch.n_seqs, self._t_weights)
        t = self._overhead + linear + self._c_kv * (batch.decode_context_sum + n_dec) + self._c_ar * tokens
        if s_c:
            t += max(self._c_attn * (s_cx + 0.5 * s_cc), self._c_kv * (s_x + s_c))
        return t + self._ar_lat

    def _fixed_part(self, tokens: int, n_seqs: int) -> float:
        """Overhead, linear layers and all-reduce: the terms that do not depend on context lengths."""
        tile = self._tile
        gemm_tokens = -(-tokens // tile) * tile if tile > 1 else tokens
        linear = max(self._c_lin * gemm_tokens + self._c_head * n_seqs, self._t_weights)
        return self._overhead + linear + self._c_ar * tokens + self._ar_lat

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Durations of ``k`` consecutive iterations of ``batch`` with contexts growing (vectorised)."""
        check_k(k)
        s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
        n_dec = batch.n_decodes
        j = np.arange(k, dtype=np.float64)
        c_kv = self._c_kv
        first = self._fixed_part(s_c + n_dec, batch.n_seqs) + c_kv * (batch.decode_context_sum + n_dec)
        out = first + (c_kv * n_dec) * j
        if s_c:  # both attention bounds are affine in j: a0 + a1 j and b0 + b1 j
            compute = self._c_attn * (s_cx + 0.5 * s_cc) + (self._c_attn * s_cc) * j
            out += np.maximum(compute, c_kv * (s_x + s_c) + (c_kv * s_c) * j)
        return out
