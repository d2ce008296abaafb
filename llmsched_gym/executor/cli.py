"""The ``llmsched live`` subcommand: serve a workload with a registered scheduler on a real model.

Wiring (main CLI)::

    from llmsched_gym.executor.cli import add_live_parser, run_live
    add_live_parser(subparsers)          # adds "live" with set_defaults(handler=run_live)
    ...
    return args.handler(args)            # exit status

Options are validated by the main CLI's validation layer before torch is imported; torch is imported only when the
command runs, so building the parser is cheap, and a missing torch is one line naming the install command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmsched_gym.cli.arguments import add_workload_arguments, folder, scheduler_name
from llmsched_gym.cli.errors import HANDLED, report
from llmsched_gym.cli.validate import CommandError, UsageError, integer, lookup, name_of, number, out_file
from llmsched_gym.core.request import Request

GIB = 1 << 30
DTYPES = ("bfloat16", "float16", "float32", "bf16", "fp16", "half", "fp32", "float")


def device_name(text: str) -> str:
    """An argparse type: ``cuda``, ``cuda:N`` or ``cpu`` (case-insensitive)."""
    low = text.strip().lower()
    kind, _, index = low.partition(":")
    if (kind == "cpu" and not index) or (kind == "cuda" and (not index or index.isdigit())):
        return low
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cuda, cuda:N or cpu (cpu: tiny models only)")


def add_live_parser(subparsers: Any) -> None:
    """Add the ``live`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "live",
        help="serve a workload on a real model (GPU) with any scheduler",
        description="Replay a workload in wall-clock time through the engine with a live executor and print "
        "the same summary as `simulate`; optionally write per-iteration timings for calibration. Needs the "
        "executor extra (torch, transformers): pip install -e '.[executor]'.",
    )
    add_workload_arguments(p)
    p.add_argument("--time-scale", type=number(low=0, low_open=True), default=1.0,
                   help="multiply arrival times (<1 replays faster)")  # fmt: skip
    p.add_argument("--scheduler", type=scheduler_name, default="sarathi", help="registered scheduler (sarathi)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="scheduler parameter, repeatable (see `llmsched params NAME`)")  # fmt: skip
    p.add_argument("--model", default="llama-2-7b", help="built-in model shape (random weights), e.g. tiny-llama")
    p.add_argument("--weights", type=folder, default=None, help="local HF model folder (config.json + *.safetensors)")
    p.add_argument("--dtype", type=name_of("dtype", lambda: DTYPES), default="bfloat16",
                   help="bfloat16 | float16 | float32")  # fmt: skip
    p.add_argument("--device", type=device_name, default="cuda", help="cuda (default), cuda:N or cpu (tiny models)")
    p.add_argument("--num-blocks", type=integer(low=1), default=None, help="KV blocks (default: from free memory)")
    p.add_argument("--gpu-memory-fraction", type=number(low=0, low_open=True, high=1.0), default=0.9,
                   help="share of free memory for KV blocks")  # fmt: skip
    p.add_argument("--block-size", type=integer(low=1), default=16, help="tokens per KV block (default 16)")
    p.add_argument("--max-seqs", type=integer(low=1), default=1024, help="requests holding KV at once")
    p.add_argument("--no-cuda-graphs", action="store_true", help="run decode iterations eagerly")
    p.add_argument("--timings-out", type=out_file(".jsonl", ".json", ".ndjson"), default=None,
                   help="write per-iteration timings (JSON lines) to this file")  # fmt: skip
    p.add_argument("--drop-too-long", action="store_true", help="drop requests longer than the model's context")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=run_live)


def run_live(args: argparse.Namespace) -> int:
    """Run ``llmsched live``; returns the exit status (2: bad input or no GPU; 1: nothing could be served)."""
    try:
        return _serve(args)
    except HANDLED as exc:
        return report("live", exc, None, args)


def load_requests(args: argparse.Namespace) -> list[Request]:
    """The workload of ``args`` (``--trace`` or ``--workload``), arrival-sorted and time-scaled."""
    from llmsched_gym.cli.setup import draw_requests, workload_choice
    from llmsched_gym.executor.live import scale_arrivals

    reqs = draw_requests(workload_choice(args))
    return scale_arrivals(reqs, args.time_scale) if args.time_scale != 1.0 else reqs


class _Progress:
    """A scheduler seen through a progress bar (finished requests out of the total)."""

    def __init__(self, inner: Any, bar: Any) -> None:
        self.inner, self.bar = inner, bar
        self.name = inner.name
        self.requirements = inner.requirements

    def reset(self, *, seed: int | None = None) -> None:
        self.inner.reset(seed=seed)

    def schedule(self, view: Any) -> Any:
        self.bar.update(len(view.finished))
        return self.inner.schedule(view)


def _model_name(args: argparse.Namespace) -> str | None:
    if args.weights is not None:
        return None
    from llmsched_gym.executor.models import builtin_model_names

    return lookup(args.model, builtin_model_names(), kind="model", flag="--model")


def _serve(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from llmsched_gym.cli.setup import build_scheduler, scheduler_params
    from llmsched_gym.core.engine import EngineConfig
    from llmsched_gym.core.kv import KVConfig
    from llmsched_gym.executor.live import RecordingRunner, serve_live, write_timings
    from llmsched_gym.executor.models import build_model, resolve_device
    from llmsched_gym.executor.runner import LiveRunnerConfig
    from llmsched_gym.metrics.summary import summarize

    params = scheduler_params(args.scheduler, args.param)
    scheduler = build_scheduler(args.scheduler, params)
    requests = load_requests(args)
    model_name = _model_name(args)
    device = resolve_device(args.device)
    print(f"llmsched live: loading {args.weights or model_name} on {device}", file=sys.stderr, flush=True)
    model = build_model(model_name, dtype=args.dtype, device=device, weights_dir=args.weights, seed=args.seed)
    num_blocks = args.num_blocks or default_num_blocks(model, args.block_size, args.gpu_memory_fraction)
    cfg = LiveRunnerConfig(
        num_blocks=num_blocks, block_size=args.block_size, max_seqs=args.max_seqs,
        cuda_graphs=not args.no_cuda_graphs, seed=args.seed,
    )  # fmt: skip
    requests = _fit_context(requests, model, args.drop_too_long)
    runner = _runner(model, cfg, requests, record=args.timings_out is not None)
    engine_cfg = EngineConfig(kv=KVConfig(num_blocks=num_blocks, block_size=args.block_size))
    bar = tqdm(total=len(requests), unit="req", desc="serving", disable=args.no_progress)
    with bar:
        result = serve_live(requests, _Progress(scheduler, bar), runner, engine_cfg, seed=args.seed)
        summary = summarize(result)
        bar.update(summary.finished - bar.n)  # the last step's finishes are seen by no further decision
    executor = {"model": str(args.weights or model_name), "dtype": args.dtype, "device": str(device),
                "num_blocks": num_blocks, "block_size": args.block_size}  # fmt: skip
    _print(args, summary, executor, params, len(requests))
    if isinstance(runner, RecordingRunner):
        path = write_timings(args.timings_out, runner.records)
        print(f"wrote {len(runner.records)} iteration timings to {path}")
    from llmsched_gym.cli.report import LIVE_KV_FIX, check_served

    check_served(result, summary, kv_fix=LIVE_KV_FIX)
    return 0


def _runner(model: Any, cfg: Any, requests: list[Request], *, record: bool) -> Any:
    """The warmed-up live runner (wrapped to record iteration timings when asked)."""
    from llmsched_gym.executor.live import RecordingRunner
    from llmsched_gym.executor.runner import LiveRunner

    live = LiveRunner(model, cfg, requests=requests)
    print("llmsched live: warming up (CUDA graphs, kernels)", file=sys.stderr, flush=True)
    live.warmup()
    return RecordingRunner(live) if record else live


def _print(args: argparse.Namespace, summary: Any, executor: dict[str, Any], params: dict[str, Any], n: int) -> None:
    from llmsched_gym.cli.metadata import RunRecord
    from llmsched_gym.cli.output import dumps
    from llmsched_gym.cli.setup import effective_params

    record = RunRecord(
        command="live", scheduler=args.scheduler, scheduler_params=effective_params(args.scheduler, params),
        workload=str(args.trace or args.workload or "synthetic-sharegpt"), workload_options={}, requests=n,
        n_requests=args.n_requests, rate=args.rate, duration=args.duration, seed=args.seed,
        slo_ttft_s=args.slo_ttft, slo_tbt_s=args.slo_tbt, hardware=executor,
    )  # fmt: skip
    if args.json:
        print(dumps({"run": record.as_dict(), **summary.as_dict(), "executor": executor}))
    else:
        print(f"run: {record.line()}")
        print(_table(summary))
        print(f"executor: {executor}")


def _fit_context(requests: list[Request], model: Any, drop: bool) -> list[Request]:
    """The requests that fit the model's context; raise (or drop them with ``drop``) otherwise."""
    from llmsched_gym.executor.models import ModelShape

    limit = ModelShape.of(model.config).max_context
    fits = [r for r in requests if r.prompt_len + r.target_output_len <= limit]
    if len(fits) < len(requests) and not drop:
        bad = next(r for r in requests if r.prompt_len + r.target_output_len > limit)
        raise CommandError(
            None,
            f"{len(requests) - len(fits)} requests (e.g. id {bad.id}) exceed the model's context of {limit} "
            "tokens; pass --drop-too-long or use a model with a longer context",
        )
    if not fits:
        raise CommandError(None, f"nothing could be served: no request fits the model's context of {limit} tokens")
    return fits


def default_num_blocks(model: Any, block_size: int, fraction: float, reserve_bytes: int = 3 * GIB) -> int:
    """KV blocks that fit in ``fraction`` of free device memory after an activation reserve (CUDA only)."""
    import torch

    from llmsched_gym.executor.kv_pool import KVCache
    from llmsched_gym.executor.models import ModelShape

    param = next(model.parameters())
    if param.device.type != "cuda":
        raise UsageError("--num-blocks", "is required on the CPU (e.g. --num-blocks 256)")
    free, _ = torch.cuda.mem_get_info(param.device)
    budget = int(free * fraction) - reserve_bytes
    blocks = KVCache.blocks_for_memory(ModelShape.of(model.config), block_size, param.dtype, budget)
    if blocks < 1:
        raise CommandError(
            "--gpu-memory-fraction", f"no room for KV blocks: {free / GIB:.1f} GiB free after loading the model"
        )
    return blocks


def _table(summary: Any) -> str:
    """The ``simulate`` summary table."""
    from llmsched_gym.cli.output import summary_table

    table: str = summary_table([summary])
    return table
