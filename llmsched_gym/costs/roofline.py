"""The default cost model: an operator-level roofline of a transformer on one GPU or a tensor-parallel group.

The roofline derives the coefficients of the operator form (:mod:`llmsched_gym.core.cost_kernels`) from the GPU's
datasheet, the model's shape and a few efficiencies. Its defaults are fitted to public measurements of a serving
engine at tensor parallelism 2, 4 and 8 (docs/cost_models.md; ``python -m llmsched_gym.costs.public_fit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

from llmsched_gym.costs._common import CompiledCostModel
from llmsched_gym.costs.operator import MAX_EXPONENT, OperatorParams
from llmsched_gym.hardware import GPUSpec, ModelSpec, check_tp, get_gpu, get_model

# Defaults fitted by llmsched_gym.costs.public_fit.fit_roofline_defaults() to the Splitwise characterisation
# (the imported profiles); a test keeps them equal to the rounded fit. Efficiencies are fractions of datasheet peaks;
# floors are GPU clock cycles per layer (A100 1.41 GHz, H100 1.98 GHz).
DEFAULT_COMPUTE_EFFICIENCY = 0.75
DEFAULT_GEMM_SMOOTHNESS = 2.0
DEFAULT_MEMORY_EFFICIENCY = 0.85
DEFAULT_ATTENTION_EFFICIENCY = 0.087
DEFAULT_OVERHEAD_S = 3.0e-3
DEFAULT_LAYER_FLOOR_CYCLES = 650e3
DEFAULT_SEQ_FLOOR_CYCLES = 7.0e3
DEFAULT_CHUNK_CYCLES = 351e3
DEFAULT_OVERLAP = 2.0
DEFAULT_ALLREDUCE_EFFICIENCY = 0.22
DEFAULT_ALLREDUCE_LATENCY_S = 10e-6
FLASH_ATTENTION_EFFICIENCY = 0.31
"""FlashAttention-2 varlen prefill attention measured ~310 TFLOP/s on an H100 (design/executor.md)."""
REFERENCE_CLOCK_HZ = 1.41e9
"""Clock assumed for a GPU whose spec has no ``clock_hz`` (the A100's boost clock)."""


@dataclass(frozen=True, slots=True)
class RooflineParams:
    """Efficiencies, floors and overheads of :class:`RooflineCostModel`.

    Attributes:
        compute_efficiency: Fraction of peak FLOP/s large GEMMs reach (the asymptote of the linear layers).
        gemm_smoothness: Smooth-maximum exponent between weight streaming and GEMM compute: small values make the
            linear layers' time grow smoothly from the first tokens on, large ones give a sharp roofline knee.
        memory_efficiency: Fraction of peak HBM bandwidth achieved when streaming weights and KV.
        attention_efficiency: Fraction of peak FLOP/s prefill attention reaches (the public engine's 0.087 is far
            below FlashAttention-2's measured ~0.31).
        overhead_s: Fixed per-iteration time that never overlaps GPU work (scheduling, sampling), seconds.
        layer_floor_cycles: Host floor per layer in GPU clock cycles (eager kernel launches and the minimum
            duration of small kernels); 0 for an executor that replays CUDA graphs.
        seq_floor_cycles: Host cycles per layer and sequence (per-row work of an eager engine).
        chunk_cycles: Cycles per layer and prefill chunk (per-row launches of the prefill path).
        overlap: Smooth-maximum exponent between the host floors and the GPU work (1: added; large: the larger).
        tile_tokens: GEMM tile: the GEMM token count is rounded up to a multiple of it; 0 or 1 turns tiling off.
        allreduce_efficiency: Fraction of the GPU's interconnect bandwidth an all-reduce achieves (tp > 1).
        allreduce_latency_s: Fixed latency of one all-reduce, seconds (tp > 1).
        allreduce_bandwidth: Interconnect bandwidth in bytes/s; None uses the GPU spec's.
    """

    compute_efficiency: float = DEFAULT_COMPUTE_EFFICIENCY
    gemm_smoothness: float = DEFAULT_GEMM_SMOOTHNESS
    memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY
    attention_efficiency: float = DEFAULT_ATTENTION_EFFICIENCY
    overhead_s: float = DEFAULT_OVERHEAD_S
    layer_floor_cycles: float = DEFAULT_LAYER_FLOOR_CYCLES
    seq_floor_cycles: float = DEFAULT_SEQ_FLOOR_CYCLES
    chunk_cycles: float = DEFAULT_CHUNK_CYCLES
    overlap: float = DEFAULT_OVERLAP
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
        for name in ("overhead_s", "allreduce_latency_s", "layer_floor_cycles", "seq_floor_cycles", "chunk_cycles"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"RooflineParams: {name}={value} must be a finite number >= 0")
        for name in ("gemm_smoothness", "overlap"):
            value = getattr(self, name)
            if not 1.0 <= value <= MAX_EXPONENT:
                raise ValueError(f"RooflineParams: {name}={value} must be in [1, {MAX_EXPONENT:g}] (a p-norm exponent)")
        if self.tile_tokens < 0:
            raise ValueError(f"RooflineParams: tile_tokens={self.tile_tokens} must be >= 0 (0 turns tiling off)")
        if self.allreduce_bandwidth is not None and not self.allreduce_bandwidth > 0:
            raise ValueError(f"RooflineParams: allreduce_bandwidth={self.allreduce_bandwidth} must be > 0 or None")

    @classmethod
    def cuda_graphs(cls) -> RooflineParams:
        """The project's executor: CUDA-graph decode steps and FlashAttention prefill on an H100, no eager floor.

        Fitted by :func:`llmsched_gym.costs.anchors.fit_cuda_graph_preset` to the measured H100 / Llama-2-7B
        anchors of design/executor.md (a test keeps them equal to the rounded fit).
        """
        return cls(
            compute_efficiency=0.55, memory_efficiency=0.68, attention_efficiency=FLASH_ATTENTION_EFFICIENCY,
            overhead_s=2.9e-3, layer_floor_cycles=0.0, seq_floor_cycles=0.0, chunk_cycles=0.0,
        )  # fmt: skip


PRESETS = {"public": RooflineParams, "cuda-graphs": RooflineParams.cuda_graphs}
"""Named parameter sets: ``public`` (the defaults, fitted to public measurements of an eager engine) and
``cuda-graphs`` (the project's executor with CUDA-graph decode steps)."""


def roofline_coefficients(gpu: GPUSpec, model: ModelSpec, tp: int, p: RooflineParams) -> OperatorParams:
    """The operator-form coefficients of the roofline of ``model`` on ``tp`` GPUs like ``gpu`` (per GPU)."""
    check_tp(model, tp)
    flops = p.compute_efficiency * gpu.peak_flops
    bandwidth = p.memory_efficiency * gpu.hbm_bandwidth
    cycle_s = model.n_layers / (gpu.clock_hz or REFERENCE_CLOCK_HZ)
    kv_s = model.kv_bytes_per_token(tp) / bandwidth
    comm_s = comm_latency_s = 0.0
    if tp > 1:
        link = p.allreduce_bandwidth or gpu.interconnect_bandwidth
        if link is None:
            raise ValueError(f"{gpu.name} has no interconnect_bandwidth; pass allreduce_bandwidth= for tp={tp}")
        bytes_per_token = 2.0 * (tp - 1) / tp * model.hidden * model.dtype_bytes
        comm_s = 2 * model.n_layers * bytes_per_token / (p.allreduce_efficiency * link)
        comm_latency_s = 2 * model.n_layers * p.allreduce_latency_s
    attn_flops = 4.0 * model.n_layers * model.n_heads * model.head_dim / tp
    return OperatorParams(
        fixed_s=p.overhead_s, floor_s=p.layer_floor_cycles * cycle_s, host_seq_s=p.seq_floor_cycles * cycle_s,
        overlap_p=p.overlap, weights_s=model.streamed_weight_bytes / tp / bandwidth,
        token_s=2.0 * model.n_layers * model.layer_linear_params / tp / flops,
        seq_s=2.0 * model.vocab * model.hidden / tp / flops, gemm_p=p.gemm_smoothness, tile_tokens=p.tile_tokens,
        chunk_s=p.chunk_cycles * cycle_s, attn_s=attn_flops / (p.attention_efficiency * gpu.peak_flops),
        prefill_ctx_s=kv_s, decode_s=kv_s, kv_s=kv_s, comm_s=comm_s, comm_latency_s=comm_latency_s,
    )  # fmt: skip


class RooflineCostModel(CompiledCostModel):
    """Operator-level roofline of one iteration (Sarathi-Serve §3.1 / Vidur style), per GPU of a TP group.

    With ``T`` batch tokens (``T_g`` after optional tile rounding), ``S`` sequences, chunks ``c`` over cached
    context ``x``, decode context sum ``D``, ``N`` decodes and ``smax(a, b; p) = (a^p + b^p)^(1/p)``::

        linear = smax(W / tp / (e_m B),  2 P_lin T_g / tp / (e_c F) + 2 V H S / tp / (e_c F);  gemm_smoothness)
        gpu    = linear + chunk * (S - N) + 4 L h d / tp * Σ c (x + c / 2) / (e_a F)
               + kv * (Σ x + N + D) / (e_m B) + [tp > 1] 2 L (2 (tp - 1) / tp H T dtype / (e_r NVLink) + latency)
        host   = L (layer_floor_cycles + seq_floor_cycles * S) / clock
        t      = overhead + smax(host, gpu; overlap)

    where ``P_lin`` are a layer's GEMM weights, ``V H`` the LM head (one row per sequence), ``W`` the streamed
    weight bytes, ``kv`` the KV bytes per token per GPU, ``F`` / ``B`` the GPU's peak dense FLOP/s and HBM
    bandwidth and ``clock`` its boost clock. The formula is evaluated by the compiled operator form.

    Attributes:
        gpu: The GPU.
        model: The model shape.
        tp: Tensor-parallel degree.
        params: Efficiencies, floors and overheads.
        coefficients: The operator-form coefficients derived from them.
    """

    name: ClassVar[str] = "roofline"
    __slots__ = ("coefficients", "gpu", "model", "params", "tp")

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
        values = {f.name: getattr(base, f.name) for f in fields(RooflineParams)}
        unknown = set(overrides) - set(values)
        if unknown:
            raise TypeError(f"RooflineCostModel: unknown parameter(s) {sorted(unknown)}; known: {sorted(values)}")
        self.params = RooflineParams(**{**values, **overrides})  # type: ignore[arg-type]
        self.coefficients = roofline_coefficients(self.gpu, self.model, tp, self.params)
        self._compiled = self.coefficients.compiled()

    def __repr__(self) -> str:
        return f"RooflineCostModel({self.gpu.name!r}, {self.model.name!r}, tp={self.tp}, params={self.params!r})"
