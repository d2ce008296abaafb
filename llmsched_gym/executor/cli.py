"""The ``llmsched live`` subcommand: serve a workload with a registered scheduler on a real model.

Wiring (main CLI)::

    from llmsched_gym.executor.cli import add_live_parser, run_live
    add_live_parser(subparsers)          # adds "live" with set_defaults(handler=run_live)
    ...
    return args.handler(args)            # exit status

torch is imported only when the command runs, so building the parser is cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmsched_gym.core.request import Request
from llmsched_gym.errors import DeviceUnavailableError, LLMSchedError

GIB = 1 << 30


def add_live_parser(subparsers: Any) -> None:
    """Add the ``live`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "live",
        help="serve a workload on a real model (GPU) with any scheduler",
        description="Replay a workload in wall-clock time through the engine with a live executor and print "
        "the same summary as `simulate`; optionally write per-iteration timings for calibration.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", help="named workload (see `llmsched workloads`)")
    src.add_argument("--trace", help="native-format trace file (csv or jsonl)")
    p.add_argument("--n-requests", type=int, default=None, help="stop after this many requests")
    p.add_argument("--rate", type=float, default=None, help="request rate (requests/s) of the workload")
    p.add_argument("--trace-dir", default=None, help="folder with trace files")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply arrival times (<1 replays faster)")
    p.add_argument("--scheduler", default="sarathi", help="registered scheduler name (default: sarathi)")
    p.add_argument("--model", default="llama-2-7b", help="built-in model shape (random weights)")
    p.add_argument("--weights", default=None, help="local HF model directory (config.json + *.safetensors)")
    p.add_argument("--dtype", default="bfloat16", help="bfloat16 | float16 | float32")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (tiny models only)")
    p.add_argument("--num-blocks", type=int, default=None, help="KV blocks (default: from free GPU memory)")
    p.add_argument("--gpu-memory-fraction", type=float, default=0.9, help="share of free memory for KV blocks")
    p.add_argument("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    p.add_argument("--max-seqs", type=int, default=1024, help="requests holding KV at once")
    p.add_argument("--no-cuda-graphs", action="store_true", help="run decode iterations eagerly")
    p.add_argument("--timings-out", default=None, help="write per-iteration timings (JSON lines) here")
    p.add_argument("--seed", type=int, default=0, help="seed of the workload, prompts and scheduler")
    p.add_argument("--drop-too-long", action="store_true", help="drop requests longer than the model's context")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run_live)


def run_live(args: argparse.Namespace) -> int:
    """Run ``llmsched live``; returns the exit status (2 when no GPU is available)."""
    try:
        return _serve(args)
    except DeviceUnavailableError as err:
        print(f"llmsched live: {err}", file=sys.stderr)
        return 2
    except (LLMSchedError, ValueError, FileNotFoundError) as err:
        print(f"llmsched live: {err}", file=sys.stderr)
        return 1


def load_requests(args: argparse.Namespace) -> list[Request]:
    """The workload of ``args`` (``--trace`` or ``--workload``), arrival-sorted and time-scaled."""
    import numpy as np

    from llmsched_gym.executor.live import scale_arrivals

    if args.trace:
        from llmsched_gym.workloads.native import load_native

        reqs = list(load_native(args.trace))
        if args.n_requests is not None:
            reqs = reqs[: args.n_requests]
    else:
        from llmsched_gym.workloads.registry import make_workload

        rng = np.random.default_rng(args.seed)
        reqs = list(
            make_workload(args.workload, rng=rng, n_requests=args.n_requests, rate=args.rate, trace_dir=args.trace_dir)
        )
    return scale_arrivals(reqs, args.time_scale) if args.time_scale != 1.0 else reqs


def _serve(args: argparse.Namespace) -> int:
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.kv import KVConfig
    from llmsched_gym.executor.live import RecordingRunner, serve_live, write_timings
    from llmsched_gym.executor.models import build_model, resolve_device
    from llmsched_gym.executor.runner import LiveRunner, LiveRunnerConfig
    from llmsched_gym.metrics.summary import summarize
    from llmsched_gym.schedulers import make_scheduler

    device = resolve_device(args.device)
    scheduler = make_scheduler(args.scheduler)
    requests = load_requests(args)
    model = build_model(args.model if args.weights is None else None, dtype=args.dtype, device=device,
                        weights_dir=args.weights, seed=args.seed)  # fmt: skip
    num_blocks = args.num_blocks or default_num_blocks(model, args.block_size, args.gpu_memory_fraction)
    cfg = LiveRunnerConfig(
        num_blocks=num_blocks, block_size=args.block_size, max_seqs=args.max_seqs,
        cuda_graphs=not args.no_cuda_graphs, seed=args.seed,
    )  # fmt: skip
    requests = _fit_context(requests, model, args.drop_too_long)
    live = LiveRunner(model, cfg, requests=requests)
    live.warmup()
    runner = RecordingRunner(live) if args.timings_out else live
    engine_cfg = EngineConfig(kv=KVConfig(num_blocks=num_blocks, block_size=args.block_size))
    result = serve_live(requests, scheduler, runner, engine_cfg, seed=args.seed)
    summary = summarize(result)
    executor = {"model": args.weights or args.model, "dtype": args.dtype, "num_blocks": num_blocks}
    if args.json:
        print(json.dumps({**summary.as_dict(), "executor": executor}, indent=1, default=str))
    else:
        print(_table(summary))
        print(f"executor: {executor}")
    if isinstance(runner, RecordingRunner):
        path = write_timings(args.timings_out, runner.records)
        print(f"wrote {len(runner.records)} iteration timings to {path}")
    return 0


def _fit_context(requests: list[Request], model: Any, drop: bool) -> list[Request]:
    """The requests that fit the model's context; raise (or drop them with ``drop``) otherwise."""
    from llmsched_gym.executor.models import ModelShape

    limit = ModelShape.of(model.config).max_context
    fits = [r for r in requests if r.prompt_len + r.target_output_len <= limit]
    if len(fits) < len(requests) and not drop:
        bad = next(r for r in requests if r.prompt_len + r.target_output_len > limit)
        raise ValueError(
            f"{len(requests) - len(fits)} requests (e.g. id {bad.id}) exceed the model's context of {limit} "
            "tokens; pass --drop-too-long or use a model with a longer context"
        )
    if not fits:
        raise ValueError(f"no request fits the model's context of {limit} tokens")
    return fits


def default_num_blocks(model: Any, block_size: int, fraction: float, reserve_bytes: int = 3 * GIB) -> int:
    """KV blocks that fit in ``fraction`` of free device memory after an activation reserve (CUDA only)."""
    import torch

    from llmsched_gym.executor.kv_pool import KVCache
    from llmsched_gym.executor.models import ModelShape

    param = next(model.parameters())
    if param.device.type != "cuda":
        raise ValueError("--num-blocks is required on the CPU")
    free, _ = torch.cuda.mem_get_info(param.device)
    budget = int(free * fraction) - reserve_bytes
    blocks = KVCache.blocks_for_memory(ModelShape.of(model.config), block_size, param.dtype, budget)
    if blocks < 1:
        raise ValueError(f"no room for KV blocks: {free / GIB:.1f} GiB free after loading the model")
    return blocks


def _table(summary: Any) -> str:
    """The ``simulate`` summary table (falls back to a JSON dump if the main CLI is not installed)."""
    try:
        from llmsched_gym.cli.output import summary_table
    except ImportError:
        return json.dumps(summary.as_dict(), indent=1, default=str)
    table: str = summary_table([summary])
    return table
