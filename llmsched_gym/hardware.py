"""Hardware and model shapes: GPU specs, transformer shapes, KV-cache sizing.

The catalogs are immutable mappings keyed by canonical name; look entries up with :func:`get_gpu`
and :func:`get_model` (case-insensitive). Numbers are vendor datasheet values unless marked measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from llmsched_gym.errors import UnknownNameError

GIB = 1 << 30
DEFAULT_ACTIVATION_RESERVE_BYTES = GIB
"""Per-GPU memory kept free for activations and workspaces (about vLLM's profiled peak for a 7B model)."""


def _require(cond: bool, owner: str, message: str) -> None:
    if not cond:
        raise ValueError(f"{owner}: {message}")


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One accelerator's datasheet numbers, plus optional measured ceilings.

    Attributes:
        name: Canonical name, e.g. ``"H100-80GB"``.
        memory_bytes: Device memory in bytes.
        peak_flops: Peak dense bf16 tensor-core FLOP/s (no sparsity).
        hbm_bandwidth: Peak HBM bandwidth in bytes/s.
        interconnect_bandwidth: Per-direction GPU-to-GPU (NVLink) bandwidth in bytes/s, or None if unknown.
        measured_flops: Best measured bf16 GEMM FLOP/s on this GPU, if measured.
        measured_bandwidth: Best measured device-to-device copy bandwidth (bytes read + written per second).
        clock_hz: Boost clock of the SMs in Hz, if known (the roofline scales its launch floors with it).
    """

    name: str
    memory_bytes: int
    peak_flops: float
    hbm_bandwidth: float
    interconnect_bandwidth: float | None = None
    measured_flops: float | None = None
    measured_bandwidth: float | None = None
    clock_hz: float | None = None

    def __post_init__(self) -> None:
        """Check that every quantity is positive."""
        owner = f"GPUSpec({self.name!r})"
        _require(bool(self.name), owner, "name is empty; give the GPU a name such as 'H100-80GB'")
        _require(self.memory_bytes > 0, owner, f"memory_bytes={self.memory_bytes} must be > 0 (bytes, not GiB)")
        _require(self.peak_flops > 0, owner, f"peak_flops={self.peak_flops} must be > 0 (FLOP/s)")
        _require(self.hbm_bandwidth > 0, owner, f"hbm_bandwidth={self.hbm_bandwidth} must be > 0 (bytes/s)")
        for field_name in ("interconnect_bandwidth", "measured_flops", "measured_bandwidth", "clock_hz"):
            value = getattr(self, field_name)
            _require(value is None or value > 0, owner, f"{field_name}={value} must be > 0 or None")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The shape of a decoder-only transformer (Llama-style by default: gated MLP, untied embeddings).

    Attributes:
        name: Canonical name, e.g. ``"Llama-2-7B"``.
        n_layers: Number of decoder layers.
        hidden: Hidden size.
        n_heads: Query heads.
        n_kv_heads: Key/value heads (``n_heads`` for MHA, fewer for GQA).
        head_dim: Dimension of one head.
        intermediate: MLP intermediate size (gate, up and down projections).
        vocab: Vocabulary size (embedding table and LM head).
        dtype_bytes: Bytes per weight and per KV element (2 for bf16/fp16).
        gated_mlp: Whether the MLP has three matrices (gate, up, down; Llama) or two (up, down; BLOOM, GPT).
        tied_embeddings: Whether the LM head shares the embedding table (BLOOM) instead of its own (Llama).
    """

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    dtype_bytes: int = 2
    gated_mlp: bool = True
    tied_embeddings: bool = False

    def __post_init__(self) -> None:
        """Check that the shape is consistent."""
        owner = f"ModelSpec({self.name!r})"
        _require(bool(self.name), owner, "name is empty; give the model a name such as 'Llama-2-7B'")
        for field_name in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "intermediate", "vocab"):
            value = getattr(self, field_name)
            _require(isinstance(value, int) and value > 0, owner, f"{field_name}={value!r} must be a positive int")
        _require(
            self.n_heads % self.n_kv_heads == 0,
            owner,
            f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} (GQA groups)",
        )
        _require(self.dtype_bytes in (1, 2, 4), owner, f"dtype_bytes={self.dtype_bytes} must be 1, 2 or 4")

    @property
    def layer_linear_params(self) -> int:
        """Weights of the GEMMs of one layer (q, k, v, o projections and the MLP's two or three matrices)."""
        q_and_o = 2 * self.hidden * self.n_heads * self.head_dim
        k_and_v = 2 * self.hidden * self.n_kv_heads * self.head_dim
        mlp_matrices = 3 if self.gated_mlp else 2
        return q_and_o + k_and_v + mlp_matrices * self.hidden * self.intermediate

    @property
    def n_params(self) -> int:
        """Total parameters: layers (linear + 2 norms), embedding, final norm and LM head (biases ignored)."""
        per_layer = self.layer_linear_params + 2 * self.hidden
        tables = 1 if self.tied_embeddings else 2
        return self.n_layers * per_layer + tables * self.vocab * self.hidden + self.hidden

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights."""
        return self.n_params * self.dtype_bytes

    @property
    def streamed_weight_bytes(self) -> int:
        """Bytes every forward pass reads: all weights except an untied embedding table (only gathered rows)."""
        gathered_only = 0 if self.tied_embeddings else self.vocab * self.hidden
        return (self.n_params - gathered_only) * self.dtype_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """KV-cache bytes one token occupies on one GPU: ``2 * layers * kv_heads * head_dim * dtype / tp``.

        With ``tp`` larger than ``n_kv_heads`` each GPU keeps one (replicated) KV head.

        Args:
            tp: Tensor-parallel degree.
        """
        check_tp(self, tp)
        kv_heads_per_gpu = math.ceil(self.n_kv_heads / tp)
        return 2 * self.n_layers * kv_heads_per_gpu * self.head_dim * self.dtype_bytes


def check_tp(model: ModelSpec, tp: int) -> None:
    """Raise ValueError unless ``tp`` is a valid tensor-parallel degree for ``model``.

    Args:
        model: The model shape.
        tp: Tensor-parallel degree; must be >= 1 and divide ``n_heads``.
    """
    if not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tp={tp!r} must be an int >= 1 (the number of GPUs a replica spans)")
    if model.n_heads % tp:
        raise ValueError(f"tp={tp} must divide n_heads={model.n_heads} of {model.name}; use a divisor such as 1, 2, 4")


def kv_capacity_blocks(
    gpu: GPUSpec,
    model: ModelSpec,
    *,
    tp: int = 1,
    memory_utilization: float = 0.9,
    block_size: int = 16,
    activation_reserve_bytes: int = DEFAULT_ACTIVATION_RESERVE_BYTES,
) -> int:
    """KV blocks that fit on a replica after the weights and the activation reserve.

    Per GPU: ``floor((memory_utilization * memory - weight_bytes / tp - reserve) / (kv_bytes_per_token(tp) *
    block_size))``. For ``tp = 1`` this is ``floor((util * mem - weights - reserve) / (kv_per_token * block))``.

    Args:
        gpu: The GPU (all ``tp`` GPUs are alike).
        model: The model shape.
        tp: Tensor-parallel degree: weights and KV heads split over ``tp`` GPUs.
        memory_utilization: Fraction of device memory the engine may use (vLLM's ``gpu_memory_utilization``).
        block_size: Tokens per KV block.
        activation_reserve_bytes: Per-GPU bytes kept for activations and workspaces.

    Returns:
        The number of KV blocks (each holds ``block_size`` tokens of every layer).

    Raises:
        ValueError: If an argument is out of range or the weights and reserve leave no room for one block.
    """
    check_tp(model, tp)
    if not 0.0 < memory_utilization <= 1.0:
        raise ValueError(f"memory_utilization={memory_utilization} must be in (0, 1], e.g. 0.9")
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be >= 1 (tokens per KV block, usually 16)")
    if activation_reserve_bytes < 0:
        raise ValueError(f"activation_reserve_bytes={activation_reserve_bytes} must be >= 0")
    usable = memory_utilization * gpu.memory_bytes
    free = usable - model.weight_bytes / tp - activation_reserve_bytes
    block_bytes = model.kv_bytes_per_token(tp) * block_size
    if free < block_bytes:
        raise ValueError(
            f"{model.name} needs {model.weight_bytes / tp / GIB:.1f} GiB of weights per GPU at tp={tp} plus "
            f"{activation_reserve_bytes / GIB:.1f} GiB reserve, but {gpu.name} offers {usable / GIB:.1f} GiB at "
            f"memory_utilization={memory_utilization}: raise tp, use a larger GPU or lower the reserve"
        )
    return int(free // block_bytes)


GPUS: Mapping[str, GPUSpec] = MappingProxyType(
    {
        g.name: g
        for g in (
            GPUSpec("H100-80GB", 80 * GIB, 989e12, 3.35e12, 450e9, 764e12, 2.92e12, clock_hz=1.98e9),
            GPUSpec("H200", 141 * 10**9, 989e12, 4.8e12, 450e9, clock_hz=1.98e9),
            GPUSpec("A100-80GB", 80 * GIB, 312e12, 2.039e12, 300e9, clock_hz=1.41e9),
            GPUSpec("H100-80GB-PCAP", 80 * GIB, 989e12 / 1.3, 3.35e12, 450e9, clock_hz=1.98e9),
        )
    }
)
"""Built-in GPUs (SXM parts). H100 measured ceilings come from design/executor.md.

``H100-80GB-PCAP`` is the power-capped H100 of the Splitwise characterisation (../shared/calibration): its
prefills take 1.30x the uncapped H100's at every size and TP while its decode steps are unchanged, so it is
modelled as an H100 with 1/1.3 of the peak FLOP/s (derived from those measurements, not a datasheet value).
"""

MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        m.name: m
        for m in (
            ModelSpec("Llama-2-7B", 32, 4096, 32, 32, 128, 11008, 32000),
            ModelSpec("Llama-2-13B", 40, 5120, 40, 40, 128, 13824, 32000),
            ModelSpec("Mistral-7B", 32, 4096, 32, 8, 128, 14336, 32000),
            ModelSpec("Llama-3-8B", 32, 4096, 32, 8, 128, 14336, 128256),
            ModelSpec("Llama-2-70B", 80, 8192, 64, 8, 128, 28672, 32000),
            ModelSpec("BLOOM-176B", 70, 14336, 112, 112, 128, 57344, 250880, gated_mlp=False, tied_embeddings=True),
        )
    }
)
"""Built-in model shapes (bf16). BLOOM-176B (the Splitwise characterisation's second model) has a two-matrix
GeLU MLP, tied embeddings and ALiBi positions; its biases (0.003 % of the weights) are not counted."""


def _lookup(kind: str, catalog: Mapping[str, GPUSpec] | Mapping[str, ModelSpec], name: str) -> str:
    wanted = name.strip().lower()
    for key in catalog:
        if key.lower() == wanted:
            return key
    raise UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(catalog)}")


def get_gpu(name: str | GPUSpec) -> GPUSpec:
    """Return the catalog GPU called ``name`` (case-insensitive); a GPUSpec is returned unchanged.

    Raises:
        UnknownNameError: If the name is not in the catalog (the message lists the known names).
    """
    if isinstance(name, GPUSpec):
        return name
    return GPUS[_lookup("GPU", GPUS, name)]


def get_model(name: str | ModelSpec) -> ModelSpec:
    """Return the catalog model called ``name`` (case-insensitive); a ModelSpec is returned unchanged.

    Raises:
        UnknownNameError: If the name is not in the catalog (the message lists the known names).
    """
    if isinstance(name, ModelSpec):
        return name
    return MODELS[_lookup("model", MODELS, name)]
