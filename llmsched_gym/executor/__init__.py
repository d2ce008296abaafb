"""Live GPU executor: real model forwards on a paged KV cache, one iteration per scheduling decision.

Modules (import them directly; this package imports nothing heavy at import time):

* :mod:`~llmsched_gym.executor.models`: build HF transformers models (built-in shapes or safetensors weights).
* :mod:`~llmsched_gym.executor.kv_pool`: the block manager (the engine's accounting) and the paged KV tensors.
* :mod:`~llmsched_gym.executor.attention`: the registered paged attention function and its per-step metadata.
* :mod:`~llmsched_gym.executor.triton_decode`: the Triton split-K paged decode kernel (CUDA only).
* :mod:`~llmsched_gym.executor.cuda_graphs`: CUDA graphs for decode-only batches, bucketed by batch size.
* :mod:`~llmsched_gym.executor.runner`: :class:`~llmsched_gym.executor.runner.LiveRunner`, the engine's runner.
* :mod:`~llmsched_gym.executor.driver`: a small Sarathi-style work generator for tests and benchmarks.
* :mod:`~llmsched_gym.executor.live`: wall-clock replay of a trace through the engine and timing records.
* :mod:`~llmsched_gym.executor.cli`: the ``llmsched live`` subcommand.
"""

from __future__ import annotations
