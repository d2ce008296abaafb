"""The executor being calibrated: building it, its limits, its identity (GPU, model shape, versions)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import torch

import llmsched_gym
from gpu_calibration.design import Limits
from llmsched_gym.executor.kv_pool import KVCache
from llmsched_gym.executor.models import ModelShape, build_model, resolve_device
from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
from llmsched_gym.hardware import GPUS, ModelSpec

GIB = 1 << 30
_GPU_NAMES = (("H200", "H200"), ("H100", "H100-80GB"), ("A100", "A100-80GB"))


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """The executor to calibrate (the same settings the live run will use).

    Attributes:
        model: Built-in model shape (``tiny-llama`` on the CPU, ``llama-2-7b`` on a GPU, ...).
        device: ``cpu`` or ``cuda``.
        dtype: Weights and KV dtype.
        block_size: KV block size.
        num_blocks: KV blocks; None: from free GPU memory (CUDA) or 4096 (CPU).
        cuda_graphs: Replay decode-only iterations from CUDA graphs (as ``llmsched live`` does by default).
        max_tokens: Most tokens per designed iteration.
        max_seqs: Rows per iteration and requests holding KV at once.
        memory_fraction: Share of free GPU memory given to KV blocks when ``num_blocks`` is None.
        seed: Seed of the random weights.
    """

    model: str = "tiny-llama"
    device: str = "cpu"
    dtype: str = "float32"
    block_size: int = 16
    num_blocks: int | None = None
    cuda_graphs: bool = True
    max_tokens: int = 8192
    max_seqs: int = 512
    memory_fraction: float = 0.85
    seed: int = 0


def _num_blocks(model: torch.nn.Module, config: TargetConfig, device: torch.device) -> int:
    if config.num_blocks is not None:
        return config.num_blocks
    if device.type != "cuda":
        return 4096
    free, _ = torch.cuda.mem_get_info(device)
    param = next(model.parameters())
    budget = int(free * config.memory_fraction) - 4 * GIB
    shape = ModelShape.of(model.config)  # type: ignore[arg-type]
    return max(1, KVCache.blocks_for_memory(shape, config.block_size, param.dtype, budget))


def build_runner(config: TargetConfig) -> LiveRunner:
    """The model (random weights) on a live runner that keeps a timing breakdown, warmed up (graphs captured)."""
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    model = build_model(config.model, dtype=config.dtype, device=device, seed=config.seed)
    cfg = LiveRunnerConfig(
        num_blocks=_num_blocks(model, config, device), block_size=config.block_size, max_seqs=config.max_seqs,
        cuda_graphs=config.cuda_graphs, seed=config.seed, record_timing=True,
    )  # fmt: skip
    runner = LiveRunner(model, cfg)
    runner.warmup()
    return runner


def limits_of(runner: LiveRunner, config: TargetConfig) -> Limits:
    """What a designed batch may use on ``runner``."""
    return Limits(
        max_tokens=config.max_tokens,
        kv_tokens=runner.config.num_blocks * runner.config.block_size,
        max_context=runner.max_context,
        max_rows=min(config.max_seqs, runner.config.max_seqs),
        block_size=runner.config.block_size,
    )


def model_spec(runner: LiveRunner, name: str) -> ModelSpec:
    """The runner's model shape as a :class:`ModelSpec` (catalog name where the shape is a catalog model)."""
    c: Any = runner.model.config
    spec = ModelSpec(
        name, int(c.num_hidden_layers), int(c.hidden_size), int(c.num_attention_heads),
        int(c.num_key_value_heads), int(getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads),
        int(c.intermediate_size), int(c.vocab_size), runner.dtype.itemsize,
    )  # fmt: skip
    from llmsched_gym.hardware import MODELS

    same = [m for m in MODELS.values() if (m.n_layers, m.hidden, m.n_kv_heads, m.intermediate, m.vocab) ==
            (spec.n_layers, spec.hidden, spec.n_kv_heads, spec.intermediate, spec.vocab)]  # fmt: skip
    return same[0] if same and spec.dtype_bytes == 2 else spec


def device_identity(device: torch.device) -> tuple[str, int]:
    """(GPU catalog name or device name, memory bytes) of ``device``; the CPU reports ``CPU`` and the RAM."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = int(torch.cuda.get_device_properties(device).total_memory)
        for key, catalog in _GPU_NAMES:
            if key in name and catalog in GPUS:
                return catalog, memory
        return name, memory
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return "CPU", int(pages * size)


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def executor_info(runner: LiveRunner, config: TargetConfig) -> dict[str, Any]:
    """Versions and settings that identify what was measured (recorded in the profile's ``executor.info``)."""
    import transformers

    device = runner.device
    info: dict[str, Any] = {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        platform.processor() or platform.machine(), "dtype": str(runner.dtype).removeprefix("torch."),
        "model": config.model, "num_blocks": runner.config.num_blocks, "decode_impl": runner.decode_impl,
        "prefill_impl": runner.prefill_impl, "cuda_graph_buckets": list(runner.config.graph_buckets)
        if runner.graphs is not None else [], "cpu_threads": torch.get_num_threads(),
    }  # fmt: skip
    if device.type == "cuda":
        info.update(cuda=torch.version.cuda, driver=_driver_version())
    return info


def now_iso() -> str:
    """The current UTC time, ISO-8601, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


EXECUTOR_VERSION = f"llmsched_gym.executor {llmsched_gym.__version__}"
