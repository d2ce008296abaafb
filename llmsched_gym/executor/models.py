"""Model construction: HF transformers model classes with random weights or local safetensors weights.

Built-in shapes (random weights; iteration time does not depend on weight values):

* ``llama-2-7b``: 32 layers, hidden 4096, 32 heads (MHA), MLP 11008, vocab 32000.
* ``mistral-7b``: 32 layers, hidden 4096, 32 heads / 8 KV heads, MLP 14336, vocab 32000, no sliding window.
* ``llama-3-8b``: 32 layers, hidden 4096, 32 heads / 8 KV heads, MLP 14336, vocab 128256, rope theta 5e5.
* ``tiny-llama`` / ``tiny-mistral``: 2 layers, hidden 64, 4 heads / 2 KV heads, vocab 256 (CPU tests).
* ``small-llama``: 2 layers, hidden 512, 4 heads of dim 128 / 2 KV heads, vocab 2048 (GPU tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmsched_gym.errors import DeviceUnavailableError, UnknownNameError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


def builtin_model_names() -> tuple[str, ...]:
    """Names accepted by :func:`model_config` and :func:`build_model`."""
    return ("llama-2-7b", "mistral-7b", "llama-3-8b", "tiny-llama", "tiny-mistral", "small-llama")


def _shape_kwargs(name: str) -> tuple[str, dict[str, Any]]:
    """Model type and config keyword arguments of a built-in shape."""
    big = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "rms_norm_eps": 1e-5}
    tiny = {
        "vocab_size": 256,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "initializer_range": 0.1,
    }
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "llama-2-7b": (
            "llama",
            {
                **big,
                "vocab_size": 32000,
                "intermediate_size": 11008,
                "num_key_value_heads": 32,
                "max_position_embeddings": 4096,
            },
        ),
        "mistral-7b": (
            "mistral",
            {
                **big,
                "vocab_size": 32000,
                "intermediate_size": 14336,
                "num_key_value_heads": 8,
                "max_position_embeddings": 32768,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
                "sliding_window": None,
            },
        ),
        "llama-3-8b": (
            "llama",
            {
                **big,
                "vocab_size": 128256,
                "intermediate_size": 14336,
                "num_key_value_heads": 8,
                "max_position_embeddings": 8192,
                "rope_parameters": {"rope_type": "default", "rope_theta": 500_000.0},
                "bos_token_id": 128000,
                "eos_token_id": 128001,
            },
        ),
        "tiny-llama": ("llama", tiny),
        "tiny-mistral": ("mistral", {**tiny, "sliding_window": None}),
        "small-llama": (
            "llama",
            {**tiny, "vocab_size": 2048, "hidden_size": 512, "intermediate_size": 1024, "initializer_range": 0.02},
        ),
    }
    if name not in table:
        raise UnknownNameError(f"unknown model {name!r}; built-in models are {', '.join(builtin_model_names())}")
    return table[name]


def model_config(name: str) -> PretrainedConfig:
    """The HF config of a built-in model shape.

    Args:
        name: One of :func:`builtin_model_names` (case-insensitive).

    Returns:
        A fresh ``LlamaConfig`` or ``MistralConfig``.

    Raises:
        UnknownNameError: If ``name`` is not a built-in model.
    """
    from transformers import LlamaConfig, MistralConfig

    kind, kwargs = _shape_kwargs(name.lower())
    cls = MistralConfig if kind == "mistral" else LlamaConfig
    return cls(**kwargs)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Parse a dtype name (``"bf16"``, ``"float16"``, ``"fp32"``, ...) or pass a ``torch.dtype`` through."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = dtype.lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of bfloat16, float16, float32")
    return _DTYPES[key]


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse a device and check that it exists.

    Raises:
        DeviceUnavailableError: If CUDA is requested but ``torch.cuda.is_available()`` is False.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device={str(device)!r} needs CUDA but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); run on a machine with an NVIDIA GPU and a CUDA build of torch, "
            "or pass device='cpu' with a tiny model"
        )
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the executor needs to know about a model's attention and vocabulary.

    Attributes:
        num_layers: Decoder layers.
        num_heads: Query heads.
        num_kv_heads: Key/value heads.
        head_dim: Dimension of one head.
        vocab_size: Vocabulary size.
        max_context: Longest sequence (prompt plus output) the model serves; capped by the sliding window
            when the config has one, since the executor does not implement sliding-window attention.
        special_tokens: BOS, EOS and PAD ids (excluded from generated prompts).
    """

    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int
    special_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        """Validate the shape."""
        for name in ("num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size", "max_context"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelShape: {name}={getattr(self, name)} must be >= 1")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelShape: num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )

    @classmethod
    def of(cls, config: PretrainedConfig) -> ModelShape:
        """Read the shape of an HF config (Llama/Mistral-style attributes)."""
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        max_ctx = int(config.max_position_embeddings)
        window = getattr(config, "sliding_window", None)
        if window is not None:
            max_ctx = min(max_ctx, int(window))
        specials: set[int] = set()
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(config, attr, None)
            specials.update([value] if isinstance(value, int) else list(value or ()))
        kv = getattr(config, "num_key_value_heads", None) or heads
        layers, vocab = int(config.num_hidden_layers), int(config.vocab_size)
        return cls(layers, heads, int(kv), int(head_dim), vocab, max_ctx, tuple(sorted(specials)))


def build_model(
    name_or_config: str | PretrainedConfig | None,
    *,
    dtype: str | torch.dtype = "bfloat16",
    device: str | torch.device = "cuda",
    weights_dir: str | Path | None = None,
    seed: int | None = 0,
) -> PreTrainedModel:
    """Build a causal-LM model in eval mode on ``device``.

    Args:
        name_or_config: A built-in name (:func:`builtin_model_names`), an HF config, or ``None`` to read
            ``config.json`` from ``weights_dir``.
        dtype: Parameter dtype.
        device: Target device; weights are created there directly (no CPU copy of a 7B model).
        weights_dir: Optional local directory with ``config.json`` and ``*.safetensors`` files; when given the
            weights are loaded from it (shapes must match the config), otherwise they are random.
        seed: Seed of the random initialisation (``None`` leaves torch's global RNG as it is).

    Returns:
        The model (``torch.nn.Module``), with gradients disabled.

    Raises:
        DeviceUnavailableError: If CUDA is requested but absent.
        ValueError: If weights are missing or have the wrong shape.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if name_or_config is None:
        if weights_dir is None:
            raise ValueError("build_model: give a model name, a config, or weights_dir with a config.json")
        config = AutoConfig.from_pretrained(str(weights_dir), local_files_only=True)
    elif isinstance(name_or_config, str):
        config = model_config(name_or_config)
    else:
        config = name_or_config
    fork_devices = [dev.index] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), torch.device(dev):
        if seed is not None:
            torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dt, attn_implementation="sdpa")
    if weights_dir is not None:
        load_safetensors_weights(model, weights_dir)
    model.eval()
    model.requires_grad_(False)
    return model


def load_safetensors_weights(model: torch.nn.Module, weights_dir: str | Path) -> None:
    """Copy every ``*.safetensors`` tensor of ``weights_dir`` into ``model``'s parameters and buffers.

    Args:
        model: A model whose state-dict names match the checkpoint (HF naming).
        weights_dir: Directory with one or more ``*.safetensors`` files.

    Raises:
        ValueError: If there are no files, a tensor has an unknown name or a wrong shape, or a parameter
            is missing from the checkpoint (tied LM heads excepted).
    """
    from safetensors import safe_open

    files = sorted(Path(weights_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"no *.safetensors files in {weights_dir}; point weights_dir at an HF model directory")
    state = model.state_dict()
    loaded: set[str] = set()
    with torch.no_grad():
        for path in files:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                    if key not in state:
                        if key.endswith("rotary_emb.inv_freq"):
                            continue
                        raise ValueError(f"{path.name}: tensor {key!r} is not a parameter of {type(model).__name__}")
                    tensor = f.get_tensor(key)
                    if tuple(tensor.shape) != tuple(state[key].shape):
                        raise ValueError(
                            f"{path.name}: {key} has shape {tuple(tensor.shape)}, the model expects "
                            f"{tuple(state[key].shape)}; the config does not match the checkpoint"
                        )
                    state[key].copy_(tensor)
                    loaded.add(key)
    _check_complete(model, state.keys(), loaded, weights_dir)


def _check_complete(model: torch.nn.Module, names: Any, loaded: set[str], weights_dir: str | Path) -> None:
    """Raise if a persistent parameter was not loaded (tied output embeddings excepted)."""
    config = getattr(model, "config", None)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    missing = [k for k in names if k not in loaded and not (tied and k == "lm_head.weight")]
    if missing:
        shown = ", ".join(missing[:5])
        raise ValueError(f"{weights_dir}: {len(missing)} parameters missing from the checkpoint (e.g. {shown})")


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters (tied tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def read_config_json(weights_dir: str | Path) -> dict[str, Any]:
    """The raw ``config.json`` of a weights directory (for error messages and provenance)."""
    path = Path(weights_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{weights_dir} has no config.json; save the model with save_pretrained() first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
