"""Turning command-line arguments into a workload, a cost model, a KV pool and a scheduler."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.protocols import CostModel, Scheduler
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request

DEFAULT_WORKLOAD = "synthetic-sharegpt"


def add_setup_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``simulate``, ``capacity`` and ``compare``."""
    w = p.add_argument_group("workload")
    w.add_argument("--workload", default=DEFAULT_WORKLOAD, help="workload name (see `llmsched workloads`)")
    w.add_argument("--n-requests", type=int, default=None, help="number of requests (default: workload's)")
    w.add_argument("--rate", type=float, default=None, help="arrival rate in requests/s (default: workload's)")
    w.add_argument("--duration", type=float, default=None, help="keep arrivals before this many seconds")
    w.add_argument("--trace-dir", default=None, help="folder with public trace files (default: ../shared/traces)")
    w.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    w.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="workload option, repeatable (e.g. --workload-option max_total=4096 --workload-option cv=2)",
    )
    h = p.add_argument_group("hardware and cost model")
    h.add_argument("--gpu", default="H100-80GB", help="GPU: H100-80GB, H200, A100-80GB (default H100-80GB)")
    h.add_argument("--model", default="Llama-2-7B", help="model shape, e.g. Llama-2-7B, Mistral-7B, Llama-3-8B")
    h.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    h.add_argument(
        "--cost-model", default="roofline", help="roofline (default), profile[:PATH], unit, affine_kv, tile_step"
    )
    h.add_argument("--num-blocks", type=int, default=None, help="KV blocks (default: from GPU memory and model)")
    h.add_argument("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    h.add_argument("--memory-utilization", type=float, default=0.9, help="GPU memory fraction (default 0.9)")
    s = p.add_argument_group("scheduler")
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scheduler parameter, repeatable (e.g. --param chunk_size=512); values parse as int/float/bool/str",
    )
    s.add_argument("--no-fast-forward", action="store_true", help="step one iteration at a time (for checking)")


def parse_value(text: str) -> Any:
    """Parse a ``--param`` value: int, float, true/false, none, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def scheduler_params(pairs: list[str], flag: str = "--param") -> dict[str, Any]:
    """``["k=v", ...]`` to a dict, with a clear error for malformed pairs."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {flag} chunk_size=512")
        out[key.strip()] = parse_value(value.strip())
    return out


@dataclass(frozen=True, slots=True)
class Setup:
    """Everything a run needs except the scheduler instance."""

    cost_model: CostModel
    engine_config: EngineConfig
    scheduler_params: dict[str, Any]


def build_setup(args: argparse.Namespace, *, sample_dt: float | None = 1.0) -> Setup:
    """Cost model, KV pool and engine configuration from parsed arguments."""
    from llmsched_gym.costs import make_cost_model
    from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks

    cost = make_cost_model(args.cost_model, gpu=args.gpu, model=args.model, tp=args.tp)
    blocks = args.num_blocks
    if blocks is None:
        blocks = kv_capacity_blocks(
            get_gpu(args.gpu),
            get_model(args.model),
            tp=args.tp,
            memory_utilization=args.memory_utilization,
            block_size=args.block_size,
        )
    config = EngineConfig(
        KVConfig(num_blocks=blocks, block_size=args.block_size),
        fast_forward=not args.no_fast_forward,
        recorder=RecorderConfig(sample_dt=sample_dt),
    )
    return Setup(cost, config, scheduler_params(args.param))


def build_workload(args: argparse.Namespace, rate: float | None = None, seed: int | None = None) -> Iterator[Request]:
    """The workload stream for ``args`` (optionally at another rate or seed)."""
    from llmsched_gym.workloads import make_workload

    rng = np.random.default_rng(args.seed if seed is None else seed)
    return make_workload(
        args.workload,
        rng=rng,
        n_requests=args.n_requests,
        rate=args.rate if rate is None else rate,
        duration=args.duration,
        trace_dir=args.trace_dir,
        **scheduler_params(args.workload_option, "--workload-option"),
    )


def build_scheduler(name: str, params: dict[str, Any]) -> Scheduler:
    """A registered scheduler with ``--param`` overrides (a bad parameter names the scheduler)."""
    from llmsched_gym.schedulers import make_scheduler

    try:
        return make_scheduler(name, **params)
    except TypeError as exc:
        raise SystemExit(f"scheduler {name!r}: bad --param ({exc})") from None
